//! The writer thread: owns the active segment, and commits in groups.
//!
//! It takes every queued request at once (see [`Queue`]), frames them into one
//! buffer, writes it with one call, syncs once (`persist = fsync`), publishes the new records to
//! readers, and only then answers each appender.
//!
//! **A failed group leaves no trace.** Before a group is written the writer marks where the log
//! ends (segment, length, next sequence number). On any I/O error — a full disk, no file
//! descriptor for the next segment, EIO on one write or sync — it puts the log back to that mark:
//! segments the group created are removed, the segment it started in is cut back to the mark
//! and synced, and readers are told to re-read (they never saw the group: it was not
//! published). Every appender of the group is answered with the error, and nothing of the group
//! is stored, so a retry stores each event exactly once.
//!
//! **Recovery is automatic.** If putting the log back fails too (the same shortage), the buffer
//! refuses appends (a retryable error) and the writer tries again, with backoff, whenever the
//! housekeeping thread nudges it (every 100 ms). Only when it has failed for
//! [`undo::GIVE_UP_AFTER`] does the buffer declare itself failed for good ([`super::Buffer::fatal`]),
//! so that the process exits and its service manager restarts it.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::frame;
use super::queue::Queue;
use super::record::Entry;
use super::segment::{self, sync_dir};
use super::shared::{SegMeta, Shared};
use crate::config::PersistPolicy;
use undo::{Broken, Mark};

mod undo;

/// Bytes after which a group stops waiting for more appenders.
pub const MAX_GROUP_BYTES: u64 = 8 * 1024 * 1024;

/// Longest the writer waits for more appenders to join a group.
const MAX_COMMIT_DELAY: Duration = Duration::from_micros(500);

/// Waits until `want` requests are queued or `deadline` passes, yielding between looks rather
/// than spinning: the appenders need the cores to resubmit.
fn wait_for(queue: &Queue, want: usize, deadline: Instant) {
    while queue.queued() < want && Instant::now() < deadline {
        std::thread::yield_now();
    }
}

/// Where a `Close` is answered.
type CloseReply = oneshot::Sender<io::Result<()>>;

/// An append's records.
pub type Batch = Vec<Entry>;

/// An append waiting in a group: its records and where to answer.
type Pending = (Batch, oneshot::Sender<io::Result<u64>>);

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
        /// The records.
        records: Batch,
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
    /// Try again to put the log back after a failed group (sent by housekeeping while the
    /// buffer refuses appends).
    Repair,
}

/// The active segment and the writer's position.
pub struct Writer {
    shared: Arc<Shared>,
    file: File,
    /// The first sequence number of the segment `file` is.
    file_first_seq: u64,
    seg_len: u64,
    next_seq: u64,
    buf: Vec<u8>,
    /// Recent largest group, decaying (commit delay): how many appenders are usually in flight.
    usual_group: f64,
    /// Duration of the previous sync (commit delay).
    last_sync: Duration,
    /// The completer task on the runtime the buffer was opened in, if any.
    completer: Option<mpsc::UnboundedSender<Replies>>,
    /// Set while a failed group could not be undone yet.
    broken: Option<Broken>,
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
        let file_first_seq = {
            let segs = crate::locks::lock(&shared.segments);
            segs.last().map_or(next_seq, |s| s.first_seq)
        };
        Writer {
            shared,
            file,
            file_first_seq,
            seg_len,
            next_seq,
            buf: Vec::with_capacity(1 << 20),
            usual_group: 0.0,
            last_sync: Duration::ZERO,
            completer,
            broken: None,
        }
    }

    /// Runs until a `Close` arrives (or the queue is closed and empty).
    pub fn run(mut self, queue: &Queue) {
        queue.register_writer();
        let mut cmds: Vec<Cmd> = Vec::new();
        let mut appends: Vec<Pending> = Vec::new();
        loop {
            let mut deadline = self.linger(queue);
            if !queue.try_take(&mut cmds) {
                deadline = None;
                if !queue.take(&mut cmds) {
                    break;
                }
            }
            let close = self.gather(queue, &mut cmds, &mut appends, deadline);
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

    /// How long a group waits for appenders it usually has: one sync's duration, at most
    /// [`MAX_COMMIT_DELAY`]; nothing without `persist = fsync` or a usual group of one.
    fn commit_delay(&self) -> Option<(usize, Duration)> {
        let want = self.usual_group.floor() as usize;
        (self.shared.cfg.persist == PersistPolicy::Fsync && want >= 2)
            .then(|| (want, self.last_sync.min(MAX_COMMIT_DELAY)))
    }

    /// After a group, while appenders usually come in groups: waits until the next group has
    /// gathered in the queue or the commit delay has passed, instead of parking at once.
    /// Parking would make the first appender of the next group pay for waking this thread and
    /// this thread for a context switch, on every sync (measured: the next group was taken
    /// 25 µs later when the writer parked until the group was complete, 45 against 70 µs).
    /// Returns the delay's deadline.
    fn linger(&self, queue: &Queue) -> Option<Instant> {
        let (want, delay) = self.commit_delay()?;
        let deadline = Instant::now() + delay;
        wait_for(queue, want, deadline);
        Some(deadline)
    }

    /// Turns taken requests into one group.
    ///
    /// Commit delay: with `persist = fsync`, when fewer appenders have arrived than usually share
    /// a sync, the others were just answered and are resubmitting; waiting up to one sync's
    /// duration (at most [`MAX_COMMIT_DELAY`]) lets them share the next sync instead of paying
    /// for two. A lone appender never waits (its usual group is one). `deadline` is the delay's
    /// end when it began before these requests were taken ([`Self::linger`]).
    fn gather(
        &mut self,
        queue: &Queue,
        cmds: &mut Vec<Cmd>,
        appends: &mut Vec<Pending>,
        deadline: Option<Instant>,
    ) -> Option<CloseReply> {
        let delay = self.commit_delay();
        let deadline = deadline.unwrap_or_else(|| Instant::now() + delay.map_or(Duration::ZERO, |d| d.1));
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
                    Cmd::Repair => self.repair(),
                }
            }
            let Some((want, _)) = delay else { break };
            if close.is_some() || bytes >= MAX_GROUP_BYTES || appends.len() >= want || Instant::now() >= deadline {
                break;
            }
            // Take only once the rest have arrived (or at the deadline): taking each arrival on
            // its own would contend with the appenders for the queue's lock.
            wait_for(queue, want - appends.len(), deadline);
            queue.try_take(cmds);
        }
        self.usual_group = (appends.len() as f64).max(self.usual_group * 0.95);
        close
    }

    fn commit(&mut self, appends: &mut Vec<Pending>) {
        let before = self.next_seq;
        let (records, senders): (Vec<_>, Vec<_>) = appends.drain(..).unzip();
        if self.broken.is_some() {
            self.repair();
        }
        if self.broken.is_some() {
            let msg = "the buffer is recovering from a disk error; nothing was stored, retry later";
            self.answer(senders.into_iter().map(|r| (r, Err(io::Error::other(msg)))).collect());
            return;
        }
        let mark = Mark {
            seg_first_seq: self.file_first_seq,
            seg_len: self.seg_len,
            next_seq: self.next_seq,
        };
        let mut firsts = Vec::with_capacity(records.len());
        let result = self.write_group(&records, &mut firsts);
        // Answer first; the records are freed after, off the appenders' critical path.
        match result {
            Ok(()) => {
                self.publish();
                // Before answering: an appender that hears "stored" sees the error cleared.
                self.shared.set_write_error(None);
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
                tracing::error!(error = %e, "buffer write failed; undoing the group");
                self.shared.set_write_error(Some(e.to_string()));
                if let Err(e2) = self.undo(mark) {
                    tracing::error!(error = %e2, "cannot undo the failed group yet; refusing appends until it is");
                    let now = Instant::now();
                    self.broken = Some(Broken {
                        mark,
                        since: now,
                        next_try: now,
                        backoff: Duration::from_millis(100),
                    });
                    self.shared.failed.store(true, Ordering::SeqCst);
                }
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

    fn write_group(&mut self, appends: &[Batch], firsts: &mut Vec<u64>) -> io::Result<()> {
        let max = self.shared.cfg.segment_max_bytes;
        self.buf.clear();
        #[cfg(test)]
        self.shared.faults.take("write")?;
        #[cfg(test)]
        if self.shared.faults.take("panic").is_err() {
            panic!("a writer fault injected by a test");
        }
        // The accept time stored in each record's envelope: when its group is written (one
        // clock read a group rather than one an append; within the commit delay of the append).
        let accepted_ms = crate::timefmt::now_ms();
        for batch in appends {
            firsts.push(self.next_seq);
            for e in batch {
                let fl = frame::framed_len(e.stored_len());
                let pending = self.seg_len + self.buf.len() as u64;
                if pending > 0 && pending + fl > max {
                    self.flush_buf()?;
                    self.roll()?;
                }
                let start = frame::begin(&mut self.buf);
                e.envelope(accepted_ms, &mut self.buf);
                self.buf.extend_from_slice(&e.payload);
                frame::seal(self.next_seq, start, &mut self.buf);
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
            #[cfg(test)]
            self.shared.faults.take("flush")?;
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
        #[cfg(test)]
        self.shared.faults.take("roll")?;
        let file = match self.take_spare(&path) {
            Some(f) => f,
            None => crate::private_fs::file_options()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&path)?,
        };
        #[cfg(test)]
        self.shared.faults.take("roll_dir")?;
        sync_dir(dir)?;
        {
            let mut segs = crate::locks::lock(&self.shared.segments);
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
        self.file_first_seq = self.next_seq;
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
            let mut segs = crate::locks::lock(&self.shared.segments);
            if let Some(last) = segs.last_mut() {
                last.len = self.seg_len;
            }
        }
        self.shared.next_seq.store(self.next_seq, Ordering::Release);
        self.shared.data_ready.notify_waiters();
    }
}
