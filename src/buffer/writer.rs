//! The writer thread: owns the active segment, and commits in groups.
//!
//! It takes every queued request at once (see [`Queue`]), frames them into one
//! buffer, writes it with one call, syncs once (`persist = fsync`), publishes the new records to
//! readers, and only then answers each appender. On a write error it re-reads the active
//! segment's tail, truncates what is not a whole frame, answers the group with the error, and
//! carries on; only when that recovery fails too does the buffer refuse further appends. Whole
//! frames of a failed group may survive the cut: their senders were told of the failure and
//! retry, so those events can arrive twice — with the same ids — but never not at all.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::disk::{SegMeta, Shared, recover_tail};
use super::frame;
use super::queue::Queue;
use super::segment::{self, sync_dir};
use crate::config::PersistPolicy;

/// Bytes after which a group stops waiting for more appenders.
pub const MAX_GROUP_BYTES: u64 = 8 * 1024 * 1024;

/// Longest the writer waits for more appenders to join a group.
const MAX_COMMIT_DELAY: Duration = Duration::from_micros(500);

/// Where a `Close` is answered.
type CloseReply = oneshot::Sender<io::Result<()>>;

/// An append waiting in a group: its records and where to answer.
type Pending = (Vec<Vec<u8>>, oneshot::Sender<io::Result<u64>>);

/// Answers for a group of appends.
pub type Replies = Vec<(oneshot::Sender<io::Result<u64>>, io::Result<u64>)>;

/// Sends every answer of a group.
pub fn complete(replies: Replies) {
    for (reply, result) in replies {
        let _ = reply.send(result);
    }
}

/// A request to the writer.
pub enum Cmd {
    /// Append records; answer with the first sequence number.
    Append {
        /// Encoded records.
        records: Vec<Vec<u8>>,
        /// Their framed size.
        bytes: u64,
        /// The answer.
        reply: oneshot::Sender<io::Result<u64>>,
    },
    /// Finish everything queued before this, sync, and stop.
    Close {
        /// The answer.
        reply: CloseReply,
    },
}

/// The active segment and the writer's position.
pub struct Writer {
    shared: Arc<Shared>,
    file: File,
    seg_len: u64,
    next_seq: u64,
    buf: Vec<u8>,
    /// Recent largest group, decaying (commit delay): how many appenders are usually in flight.
    usual_group: f64,
    /// Duration of the previous sync (commit delay).
    last_sync: Duration,
    /// The completer task on the runtime the buffer was opened in, if any.
    completer: Option<mpsc::UnboundedSender<Replies>>,
}

impl Writer {
    /// Takes over the active segment `file` of length `seg_len`; `next_seq` is the next number.
    pub fn new(
        shared: Arc<Shared>,
        file: File,
        seg_len: u64,
        next_seq: u64,
        completer: Option<mpsc::UnboundedSender<Replies>>,
    ) -> Self {
        Writer {
            shared,
            file,
            seg_len,
            next_seq,
            buf: Vec::with_capacity(1 << 20),
            usual_group: 0.0,
            last_sync: Duration::ZERO,
            completer,
        }
    }

    /// Runs until a `Close` arrives (or the queue is closed and empty).
    pub fn run(mut self, queue: &Queue) {
        queue.register_writer();
        let mut cmds: Vec<Cmd> = Vec::new();
        let mut appends: Vec<Pending> = Vec::new();
        loop {
            if !queue.take(&mut cmds) {
                break;
            }
            let close = self.gather(queue, &mut cmds, &mut appends);
            if !appends.is_empty() {
                self.commit(&mut appends);
            }
            if let Some(reply) = close {
                let _ = reply.send(self.file.sync_data());
                return;
            }
        }
        let _ = self.file.sync_data();
    }

    /// Turns taken requests into one group.
    ///
    /// Commit delay: with `persist = fsync`, when fewer appenders have arrived than usually share
    /// a sync, the others were just answered and are resubmitting; waiting up to one sync's
    /// duration (at most [`MAX_COMMIT_DELAY`]) lets them share the next sync instead of paying
    /// for two. A lone appender never waits (its usual group is one).
    fn gather(&mut self, queue: &Queue, cmds: &mut Vec<Cmd>, appends: &mut Vec<Pending>) -> Option<CloseReply> {
        let fsync = self.shared.cfg.persist == PersistPolicy::Fsync;
        let deadline = Instant::now() + self.last_sync.min(MAX_COMMIT_DELAY);
        let mut bytes = 0;
        let mut close = None;
        loop {
            for cmd in cmds.drain(..) {
                match cmd {
                    Cmd::Append {
                        records,
                        bytes: b,
                        reply,
                    } => {
                        bytes += b;
                        appends.push((records, reply));
                    }
                    Cmd::Close { reply } => close = Some(reply),
                }
            }
            let short = (appends.len() as f64) < self.usual_group.floor();
            if close.is_some() || bytes >= MAX_GROUP_BYTES || !fsync || !short || Instant::now() >= deadline {
                break;
            }
            // Take only once the usual group is complete (or at the deadline): taking each
            // arrival on its own would contend with the appenders for the queue's lock. Yield
            // between looks rather than spin: the appenders need the cores to resubmit.
            let want = self.usual_group.floor() as usize;
            if appends.len() + queue.queued() < want {
                std::thread::yield_now();
            }
            if appends.len() + queue.queued() >= want || Instant::now() >= deadline {
                queue.try_take(cmds);
            }
        }
        self.usual_group = (appends.len() as f64).max(self.usual_group * 0.95);
        close
    }

    fn commit(&mut self, appends: &mut Vec<Pending>) {
        let before = self.next_seq;
        let mut firsts = Vec::with_capacity(appends.len());
        let result = self.write_group(appends, &mut firsts);
        // Answer first; the records are freed after, off the appenders' critical path.
        let (records, senders): (Vec<_>, Vec<_>) = appends.drain(..).unzip();
        match result {
            Ok(()) => {
                self.publish();
                self.answer(
                    senders
                        .into_iter()
                        .zip(firsts)
                        .map(|(reply, first)| (reply, Ok(first)))
                        .collect(),
                );
                let m = &self.shared.metrics;
                m.appended.inc_by(self.next_seq - before);
                m.batch_records.observe((self.next_seq - before) as f64);
            }
            Err(e) => {
                tracing::error!(error = %e, "buffer write failed; recovering the segment tail");
                if let Err(e2) = self.recover() {
                    tracing::error!(error = %e2, "buffer recovery failed; refusing appends until restart");
                    self.shared.failed.store(true, Ordering::SeqCst);
                }
                self.publish();
                self.answer(
                    senders
                        .into_iter()
                        .map(|reply| (reply, Err(io::Error::new(e.kind(), e.to_string()))))
                        .collect(),
                );
            }
        }
        drop(records);
    }

    /// Answers a group. Waking each appender's task from this thread costs a trip through the
    /// runtime's shared queue per task (about a microsecond each); handing the whole group to
    /// the completer task on the runtime costs one, and its wake-ups are local and cheap. Without
    /// a runtime (or once it is gone) the answers go out from here.
    fn answer(&self, replies: Replies) {
        let replies = match &self.completer {
            Some(c) => match c.send(replies) {
                Ok(()) => return,
                Err(mpsc::error::SendError(r)) => r,
            },
            None => replies,
        };
        complete(replies);
    }

    fn write_group(&mut self, appends: &[Pending], firsts: &mut Vec<u64>) -> io::Result<()> {
        let max = self.shared.cfg.segment_max_bytes;
        self.buf.clear();
        for (records, _) in appends {
            firsts.push(self.next_seq);
            for r in records {
                let fl = frame::framed_len(r.len());
                let pending = self.seg_len + self.buf.len() as u64;
                if pending > 0 && pending + fl > max {
                    self.flush_buf()?;
                    self.roll()?;
                }
                frame::encode(self.next_seq, r, &mut self.buf);
                self.next_seq += 1;
            }
        }
        self.flush_buf()?;
        if self.shared.cfg.persist == PersistPolicy::Fsync {
            let t = Instant::now();
            self.file.sync_data()?;
            self.last_sync = t.elapsed();
            self.shared.metrics.fsync_seconds.observe(self.last_sync.as_secs_f64());
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.seg_len += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Seals the active segment (synced whatever the persist policy, without the preallocated
    /// space it did not use) and starts the next: the spare if one is ready, else a new file.
    fn roll(&mut self) -> io::Result<()> {
        if self.file.metadata()?.len() > self.seg_len {
            self.file.set_len(self.seg_len)?;
        }
        self.file.sync_data()?;
        let dir = &self.shared.dir;
        let path = dir.join(segment::file_name(self.next_seq));
        let file = match self.take_spare(&path) {
            Some(f) => f,
            None => OpenOptions::new().create(true).write(true).truncate(true).open(&path)?,
        };
        sync_dir(dir)?;
        {
            let mut segs = self.shared.segments.lock().expect("segments lock");
            if let Some(last) = segs.last_mut() {
                last.len = self.seg_len;
                last.sealed = true;
            }
            segs.push(SegMeta {
                first_seq: self.next_seq,
                len: 0,
                sealed: false,
            });
        }
        self.file = file;
        self.seg_len = 0;
        Ok(())
    }

    /// Renames the spare to `path` and opens it, if one is ready (never waiting for one).
    fn take_spare(&self, path: &std::path::Path) -> Option<File> {
        let _guard = self.shared.spare_lock.try_lock().ok()?;
        if !self.shared.spare_ready.swap(false, Ordering::AcqRel) {
            return None;
        }
        match std::fs::rename(self.shared.dir.join(segment::SPARE), path).and_then(|()| segment::open_at(path, 0)) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(error = %e, "could not use the preallocated segment; creating one");
                None
            }
        }
    }

    /// Makes the written records visible to readers and wakes them.
    fn publish(&self) {
        {
            let mut segs = self.shared.segments.lock().expect("segments lock");
            if let Some(last) = segs.last_mut() {
                last.len = self.seg_len;
            }
        }
        self.shared.next_seq.store(self.next_seq, Ordering::Release);
        self.shared.data_ready.notify_waiters();
    }

    /// After a failed write: cut the active segment back to its last whole frame.
    fn recover(&mut self) -> io::Result<()> {
        self.buf.clear();
        let (first_seq, path) = {
            let segs = self.shared.segments.lock().expect("segments lock");
            let last = segs.last().expect("there is always an active segment");
            (last.first_seq, self.shared.dir.join(segment::file_name(last.first_seq)))
        };
        let tail = recover_tail(&path, first_seq)?;
        self.file = segment::open_at(&path, tail.valid_len)?;
        self.seg_len = tail.valid_len;
        self.next_seq = tail.next_seq;
        Ok(())
    }
}
