//! The housekeeping thread: persists the acknowledgement cursor, then deletes the segments wholly
//! below it — in that order, so a crash between the two leaves only deletable segments behind.
//! With `persist = fsync` it also keeps a preallocated spare segment ready for the writer.

use std::fs;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use super::cursor;
use super::queue::Queue;
use super::segment::{self, sync_dir};
use super::shared::{SegMeta, Shared, refresh_gauges};
use super::writer::Cmd;
use crate::config::PersistPolicy;

/// After a failed preallocation (a full disk, say), how long before trying again.
const SPARE_RETRY: Duration = Duration::from_secs(60);

/// How often the cursor is persisted and acknowledged segments deleted.
pub(crate) const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(100);

/// Persists the cursor, then deletes wholly acknowledged segments; every 100 ms until stopped.
pub(crate) fn housekeep(s: Arc<Shared>, queue: Arc<Queue>, stop: std_mpsc::Receiver<()>) {
    let mut spare_failed: Option<Instant> = None;
    loop {
        let done = !matches!(
            stop.recv_timeout(HOUSEKEEPING_EVERY),
            Err(std_mpsc::RecvTimeoutError::Timeout)
        );
        if let Err(e) = persist_and_release(&s) {
            tracing::error!(error = %e, "buffer housekeeping failed; will retry");
        }
        refresh_gauges(&s);
        if done {
            return;
        }
        if s.failed.load(Ordering::Acquire) {
            // The writer could not put the log back after a failed write: nudge it to try again
            // (it backs off on its own). If the queue is full, it is busy anyway.
            let _ = queue.try_push(Cmd::Repair);
        }
        if s.cfg.persist == PersistPolicy::Fsync
            && !s.spare_ready.load(Ordering::Acquire)
            && spare_failed.is_none_or(|t| t.elapsed() >= SPARE_RETRY)
        {
            match ensure_spare(&s) {
                Ok(()) => spare_failed = None,
                Err(e) => {
                    tracing::warn!(error = %e, "could not preallocate the next segment; will retry");
                    let _ = fs::remove_file(s.dir.join(segment::SPARE_PARTIAL));
                    spare_failed = Some(Instant::now());
                }
            }
        }
    }
}

/// Prepares the spare segment unless one is ready.
pub(crate) fn ensure_spare(s: &Shared) -> io::Result<()> {
    let _guard = crate::locks::lock(&s.spare_lock);
    if !s.spare_ready.load(Ordering::Acquire) {
        segment::prepare_spare(&s.dir, s.cfg.segment_max_bytes)?;
        s.spare_ready.store(true, Ordering::Release);
    }
    Ok(())
}

fn persist_and_release(s: &Shared) -> io::Result<()> {
    let cursor_now = crate::locks::lock(&s.acks).cursor();
    let durable = s.durable_cursor.load(Ordering::Acquire);
    if cursor_now > durable {
        cursor::store(&s.dir, cursor_now)?;
        s.durable_cursor.store(cursor_now, Ordering::Release);
    }
    let durable = s
        .durable_cursor
        .load(Ordering::Acquire)
        .min(s.retain_from.load(Ordering::Acquire));
    let doomed: Vec<SegMeta> = {
        let mut segs = crate::locks::lock(&s.segments);
        let mut n = 0;
        while n + 1 < segs.len() && segs[n + 1].first_seq <= durable && segs[n].sealed {
            n += 1;
        }
        segs.drain(..n).collect()
    };
    if doomed.is_empty() {
        return Ok(());
    }
    let mut result = Ok(());
    let mut kept = Vec::new();
    for seg in doomed {
        match fs::remove_file(s.dir.join(segment::file_name(seg.first_seq))) {
            Ok(()) => {
                s.used_bytes.fetch_sub(seg.len, Ordering::AcqRel);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                s.used_bytes.fetch_sub(seg.len, Ordering::AcqRel);
            }
            Err(e) => {
                // Windows refuses to delete a file a reader still has open: try again later.
                kept.push(seg);
                result = Err(e);
            }
        }
    }
    if !kept.is_empty() {
        let mut segs = crate::locks::lock(&s.segments);
        for (i, seg) in kept.into_iter().enumerate() {
            segs.insert(i, seg);
        }
    }
    sync_dir(&s.dir)?;
    s.space_freed.notify_waiters();
    result
}
