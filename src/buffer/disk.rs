//! [`DiskBuffer`]: the embedded segmented log (design in the [module docs](super)).

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::thread::JoinHandle;

use tokio::sync::{Notify, mpsc, oneshot};

use super::acks::AckTracker;
use super::cap;
use super::housekeeping::housekeep;
use super::queue::{Full, Queue};
use super::reader::DiskReader;
use super::record::MAX_KEY;
use super::recovery::{Recovered, recover};
use super::segment;
#[cfg(test)]
use super::shared::Faults;
use super::shared::{Damage, Shared, refresh_gauges, replay_from, stats};
use super::writer::{Cmd, Replies, Writer, complete};
use super::{
    Appended, BoxFuture, Buffer, BufferError, BufferReader, BufferStats, Entry, Position, Record, Replayed, frame,
};
use crate::config::{BufferConfig, PersistPolicy};
use crate::metrics::BufferMetrics;

/// Runs a thread of the buffer; a panic in it fails the buffer for good ([`Buffer::fatal`]),
/// which stops the process for its service manager to restart it.
fn fatal_on_panic(shared: &Shared, thread: &str, body: impl FnOnce()) {
    if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        let why = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("a panic without a message");
        shared.set_fatal(format!("the buffer's {thread} thread panicked: {why}"));
    }
}

/// Queued append requests before appenders wait (backpressure).
const WRITER_QUEUE: usize = 1024;

/// The embedded disk buffer.
pub struct DiskBuffer {
    pub(crate) shared: Arc<Shared>,
    queue: Arc<Queue>,
    writer: Mutex<Option<JoinHandle<()>>>,
    housekeeper: Mutex<Option<(JoinHandle<()>, std_mpsc::Sender<()>)>>,
    _lock: File,
}

impl DiskBuffer {
    /// Opens (creating if needed) the buffer under `<data_dir>/buffer`, recovering from whatever
    /// state a crash left. Reads only the last segment.
    pub fn open(cfg: &BufferConfig, metrics: BufferMetrics) -> Result<Self, BufferError> {
        Self::open_retaining(cfg, metrics, None)
    }

    /// As [`Self::open`], keeping the records from `retain_from` on even once acknowledged (see
    /// [`Buffer::retain_from`]): the sources' carried state is to be brought up to date from them.
    pub fn open_retaining(
        cfg: &BufferConfig,
        metrics: BufferMetrics,
        retain_from: Option<Position>,
    ) -> Result<Self, BufferError> {
        let retain_from = retain_from.map_or(u64::MAX, |p| p.offset());
        let dir = cfg.data_dir.join("buffer");
        crate::private_fs::create_dir(&cfg.data_dir)?;
        crate::private_fs::create_own_dir(&dir)?;
        let lock = crate::private_fs::file_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))?;
        if lock.try_lock().is_err() {
            return Err(BufferError::Locked(dir));
        }
        let Recovered {
            metas,
            file,
            seg_len,
            next_seq,
            cursor_at,
            damaged_at_start,
        } = recover(
            &dir,
            &metrics,
            retain_from,
            (cfg.persist == PersistPolicy::Fsync).then_some(cfg.segment_max_bytes),
        )?;
        let used: u64 = metas.iter().map(|m| m.len).sum();
        let segments = metas.len();
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            cfg: cfg.clone(),
            segments: Mutex::new(metas),
            next_seq: AtomicU64::new(next_seq),
            used_bytes: AtomicU64::new(used),
            at_cap: Default::default(),
            acks: Mutex::new(AckTracker::new(cursor_at)),
            reader: Mutex::new(Default::default()),
            durable_cursor: AtomicU64::new(cursor_at),
            retain_from: AtomicU64::new(retain_from),
            data_ready: Notify::new(),
            space_freed: Notify::new(),
            closed: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            spare_ready: AtomicBool::new(segment::check_spare(&dir, cfg.segment_max_bytes)?),
            spare_lock: Mutex::new(()),
            metrics,
            rewound: AtomicU64::new(0),
            write_error: Mutex::new(None),
            damage: Mutex::new(Damage::default()),
            fatal: Mutex::new(None),
            fatal_notify: Notify::new(),
            reads: Mutex::new(Default::default()),
            #[cfg(test)]
            faults: Faults::default(),
        });
        for gap in damaged_at_start {
            shared.count_damage(gap.clone());
            crate::locks::lock(&shared.damage).counted.push(gap);
        }
        tracing::info!(
            dir = %dir.display(), cursor = cursor_at, next_seq, segments = segments, bytes = used,
            "buffer opened"
        );
        let queue = Arc::new(Queue::new(WRITER_QUEUE));
        // Opened within a multi-threaded tokio runtime: answer appends from a task on it (see
        // Writer::answer). Not on a current-thread runtime, which runs tasks only while someone
        // blocks on it.
        let runtime = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let completer = runtime.map(|rt| {
            // Unbounded on purpose, yet bounded in effect: one message per group, and every
            // group's appenders are waiting on it, so there are never more messages than
            // appenders in flight. A bounded channel would make the writer block on the runtime,
            // which could deadlock a runtime that is itself waiting for the writer (on drop).
            let (ctx, mut crx) = mpsc::unbounded_channel::<Replies>();
            rt.spawn(async move {
                while let Some(replies) = crx.recv().await {
                    complete(replies);
                }
            });
            ctx
        });
        let writer = Writer::new(shared.clone(), file, seg_len, next_seq, completer);
        let wq = queue.clone();
        let wshared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("buffer-writer".into())
            .spawn(move || fatal_on_panic(&wshared, "writer", || writer.run(&wq)))?;
        let (htx, hrx) = std_mpsc::channel();
        let (hshared, hs) = (shared.clone(), shared.clone());
        let hqueue = queue.clone();
        let housekeeper = std::thread::Builder::new()
            .name("buffer-housekeeper".into())
            .spawn(move || fatal_on_panic(&hs, "housekeeper", || housekeep(hshared, hqueue, hrx)))?;
        let buf = DiskBuffer {
            shared,
            queue,
            writer: Mutex::new(Some(writer)),
            housekeeper: Mutex::new(Some((housekeeper, htx))),
            _lock: lock,
        };
        buf.refresh_gauges();
        Ok(buf)
    }

    /// Appends bare payloads as keyless interaction records (tests).
    #[cfg(test)]
    pub(crate) fn append_bytes(&self, records: Vec<Vec<u8>>) -> BoxFuture<'_, Result<Appended, BufferError>> {
        let entries = records
            .into_iter()
            .map(|r| Entry::new(super::Kind::Interaction, bytes::Bytes::new(), r))
            .collect();
        self.append(entries)
    }

    /// Acknowledges sequence numbers directly, as the reader's acknowledger does (tests).
    #[cfg(test)]
    pub(crate) fn ack_seqs(&self, seqs: std::ops::Range<u64>) {
        let end = seqs.end.min(self.shared.next_seq.load(Ordering::Acquire));
        self.shared.ack(seqs.start..end);
    }

    /// Prepares the spare segment now rather than at the housekeeper's next turn.
    #[cfg(test)]
    pub(crate) fn prepare_spare_now(&self) -> io::Result<()> {
        super::housekeeping::ensure_spare(&self.shared)
    }

    /// The reader `name` from the oldest unacknowledged record, with the synchronous API too
    /// (see [`Buffer::reader`]).
    pub fn disk_reader(&self, name: &str) -> Result<DiskReader, BufferError> {
        DiskReader::claim(self.shared.clone(), name)
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    fn refresh_gauges(&self) {
        refresh_gauges(&self.shared);
    }

    async fn append_inner(&self, records: Vec<Entry>) -> Result<Appended, BufferError> {
        let s = &self.shared;
        if s.closed.load(Ordering::Acquire) {
            return Err(BufferError::Closed);
        }
        if s.failed.load(Ordering::Acquire) {
            return Err(BufferError::Io(io::Error::other(
                "the buffer is recovering from a disk error; nothing was stored, retry later",
            )));
        }
        let count = records.len();
        if count == 0 {
            return Ok(Appended::Stored { count: 0 });
        }
        let max = u64::from(s.cfg.max_record_bytes);
        let mut bytes = 0;
        for r in &records {
            if r.payload.len() as u64 > max {
                return Err(BufferError::TooLarge {
                    size: r.payload.len() as u64,
                    max,
                });
            }
            if r.key.len() > MAX_KEY {
                return Err(BufferError::TooLarge {
                    size: r.key.len() as u64,
                    max: MAX_KEY as u64,
                });
            }
            bytes += frame::framed_len(r.stored_len());
        }
        if bytes > s.cfg.max_bytes / 2 {
            return Err(BufferError::TooLarge {
                size: bytes,
                max: s.cfg.max_bytes / 2,
            });
        }
        // The slow paths (waiting for room) are boxed so that the common path's future stays
        // small: it is moved into a box per append.
        if !cap::try_reserve(s, bytes) && !Box::pin(cap::reserve(s, bytes, count)).await? {
            return Ok(Appended::Dropped { count });
        }
        let release = || {
            s.used_bytes.fetch_sub(bytes, Ordering::AcqRel);
            s.space_freed.notify_waiters();
        };
        let (reply, rx) = oneshot::channel();
        let pushed = match self.queue.try_push(Cmd::Append { records, bytes, reply }) {
            Ok(()) => true,
            Err(Full::Closed(_)) => false,
            Err(Full::Room(cmd)) => Box::pin(self.queue.push(cmd)).await.is_ok(),
        };
        if !pushed {
            release();
            return Err(BufferError::Closed);
        }
        match rx.await {
            Ok(Ok(_first_seq)) => Ok(Appended::Stored { count }),
            Ok(Err(e)) => {
                release();
                Err(BufferError::Io(e))
            }
            Err(_) => {
                release();
                Err(BufferError::Closed)
            }
        }
    }

    async fn close_inner(&self) -> Result<(), BufferError> {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.space_freed.notify_waiters();
        let (reply, rx) = oneshot::channel();
        let mut result = Ok(());
        if self.queue.close_with(Cmd::Close { reply }).is_ok()
            && let Ok(Err(e)) = rx.await
        {
            result = Err(BufferError::Io(e));
        }
        self.join_threads();
        self.shared.data_ready.notify_waiters();
        result
    }

    fn join_threads(&self) {
        if let Some(w) = crate::locks::lock(&self.writer).take() {
            let _ = w.join();
        }
        if let Some((h, tx)) = crate::locks::lock(&self.housekeeper).take() {
            drop(tx);
            let _ = h.join();
        }
    }
}

impl Drop for DiskBuffer {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        if crate::locks::lock(&self.writer).is_some() {
            let (reply, _rx) = oneshot::channel();
            let _ = self.queue.close_with(Cmd::Close { reply });
        }
        self.join_threads();
    }
}

impl Buffer for DiskBuffer {
    fn append(&self, entries: Vec<Entry>) -> BoxFuture<'_, Result<Appended, BufferError>> {
        Box::pin(self.append_inner(entries))
    }

    fn reader(&self, name: &str) -> Result<Box<dyn BufferReader>, BufferError> {
        Ok(Box::new(self.disk_reader(name)?))
    }

    fn stats(&self) -> BufferStats {
        stats(&self.shared)
    }

    fn max_record_bytes(&self) -> u64 {
        u64::from(self.shared.cfg.max_record_bytes)
    }

    fn write_position(&self) -> Position {
        Position::seq(self.shared.next_seq.load(Ordering::Acquire))
    }

    fn retain_from(&self, from: Position) {
        self.shared.retain_from.store(from.offset(), Ordering::Release);
    }

    fn replay_from(&self, from: Position, each: &mut dyn FnMut(&Record)) -> Result<Replayed, BufferError> {
        replay_from(&self.shared, from.offset(), each)
    }

    fn close(&self) -> BoxFuture<'_, Result<(), BufferError>> {
        Box::pin(self.close_inner())
    }

    fn fatal(&self) -> BoxFuture<'_, String> {
        Box::pin(async move {
            loop {
                let notified = self.shared.fatal_notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(why) = crate::locks::lock(&self.shared.fatal).clone() {
                    return why;
                }
                notified.await;
            }
        })
    }
}
