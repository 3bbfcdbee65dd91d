//! The buffer: the durability boundary between sources and sinks.
//!
//! An event counts as *accepted* only once [`Buffer::append`] has returned for it; it leaves the
//! buffer only after a sink confirmed it and its reader acknowledged it. The contract fits the
//! embedded disk log ([`disk::DiskBuffer`], the default) and a Kafka topic (at scale) alike:
//!
//! - **Keyed appends.** Each [`Entry`] has a [`Kind`] (its stream: interaction events, later user
//!   statuses and changes) and a key (the interaction, the user); a partitioned buffer keeps each
//!   key in order. The buffer stamps each record with its accept time, so latency is measured
//!   from the record itself, by whichever process delivers it.
//! - **Opaque positions.** A [`Record`] says where it is with a [`Position`] that callers only
//!   hand back: the disk log's sequence number, a partition and offset in Kafka.
//! - **Owned readers.** [`Buffer::reader`] gives one named owner a cursor; a second reader is
//!   refused, and acknowledgements go through the owner's [`Acker`], so no reader can acknowledge
//!   what another has not delivered. Acknowledgements arrive in any order and are folded per
//!   partition ([`acks`]).
//!
//! # The disk log: design
//!
//! **Layout.** Under `<data_dir>/buffer/`: segment files `<first seq, 20 digits>.log`, the
//! acknowledgement cursor `ack.cursor`, and `LOCK` (an advisory lock held while a process owns
//! the directory). Every record has a sequence number one higher than the one before, across
//! segments; a segment's name is the sequence number of its first record.
//!
//! **Record frame** (little-endian), see [`frame`]:
//! `magic u32 = "CICR" | len u32 | seq u64 | crc u32 | payload[len]`, where `crc` is CRC32C
//! (Castagnoli) over `len`, `seq` and the payload. The magic lets a reader find the next frame
//! after damage; the CRC makes a false match practically impossible.
//! The payload is the record's envelope (kind, accept time, key) and its bytes ([`record`]).
//!
//! **Appends and group commit.** One writer thread owns the active segment. Appenders hand it
//! whole batches through a bounded queue; it takes everything queued at once, writes it with
//! one `write`, then with `persist = fsync` calls `fdatasync` once for all of them, and only then
//! answers every appender. So concurrent appends share one sync, and no caller hears "stored"
//! before its bytes are on disk. When fewer appenders have arrived than usually share a sync, the
//! writer waits for the rest for up to one sync's duration (at most 500 µs: the commit delay),
//! so that closely following appenders do not each pay for a sync of their own; after answering
//! a group it waits the same way for the next before it sleeps, so that the next group's
//! appenders do not pay for waking it. The writer stamps each group's records with one accept
//! time as it writes them. With
//! `persist = flush` the answer comes after the `write`: the data is in the OS page cache and
//! survives a crash of the process, not of the machine.
//!
//! **A failed append leaves no trace.** The writer marks where the log ends before each group;
//! on any I/O error (a full disk, no descriptor for the next segment, EIO) it removes the
//! segments the group created and cuts the log back to the mark, synced, before answering the
//! group's appenders with the error. If that fails too, appends are refused (retryably) while
//! the writer tries again with backoff; after a minute of failing the buffer reports itself
//! failed for good ([`Buffer::fatal`]) and the process exits for its service manager to restart
//! it. See [`writer`].
//!
//! **Rolling.** When a segment would pass `segment_max_bytes`, the writer cuts off the space it
//! did not use and syncs it (whatever the persist policy), creates the next segment and syncs the
//! directory, so a segment's existence and contents are durable before anything is written after
//! it.
//!
//! **Preallocation.** With `persist = fsync` the housekeeping thread keeps a spare segment ready:
//! `spare.prealloc`, `segment_max_bytes` of zeros, synced, renamed from a `.partial` file only
//! when whole. At a roll the writer renames it to the new segment's name (or, if none is ready,
//! creates an empty file — it never waits for one). A buffer's first segment (a new directory,
//! or one whose records were all acknowledged) starts the same way: the spare, prepared at open
//! if none is waiting (so a fresh conduit's syncs are data-only from its first record). Appends
//! then overwrite allocated blocks without growing the file, so each `fdatasync` flushes the data
//! alone instead of also committing the file system's journal for the new size and blocks — the
//! most expensive part of a sync on ext4 and XFS. Because no frame starts with a zero byte, a
//! segment's records end where only zeros follow: readers, recovery and `buffer inspect` treat
//! that as unused space, not as damage. A torn write into that space leaves non-zero bytes where
//! the records end, so it is still found and cut as a torn tail.
//!
//! **Acknowledgements.** Acks may arrive out of order; the cursor (the lowest unacknowledged
//! sequence number) advances only over a contiguous acknowledged prefix. A housekeeping thread
//! persists the cursor at most every 100 ms (write a temporary file, sync it, rename it over
//! `ack.cursor`, sync the directory) and only *then* deletes the segments wholly below the
//! durable cursor — and below the point the sources' carried state was saved at
//! ([`Buffer::retain_from`]): the records after it are what brings that state up to date after a
//! crash. A crash between the two leaves deletable segments, removed at the next open;
//! a crash before the cursor is durable means some acknowledged records are delivered again —
//! at-least-once, never lost.
//!
//! **Recovery.** Opening lists the segment files (no reading), drops those wholly below the
//! cursor, removes a partial spare, and scans only the last segment (its preallocated zeros are
//! read once, at disk speed): a torn tail (an incomplete or failing frame with no
//! valid frame after it) is truncated and counted, and damaged records before the last valid
//! frame are counted in `conduit_buffer_corrupt_records_total` right away (a reader meeting them
//! later does not count them again) and shown in `/health`. Damage in the middle of a segment is skipped
//! by readers, which resynchronise on the next valid frame, count the lost records in
//! `conduit_buffer_corrupt_records_total`, and acknowledge them so the cursor moves on. So
//! opening never reads the backlog, its time and memory do not grow with it, no damage causes a
//! crash loop, and no damage needs the buffer deleted.
//!
//! **Size cap.** Bytes of records on disk plus bytes reserved by in-flight appends never pass
//! `max_bytes` (preallocated space, at most two segments, is not counted; acknowledged records
//! kept for the sources' carried state are, which is why that state is saved every second while
//! the buffer is more than half full).
//! At the cap, `when_full = block` makes appends wait (up to `block_timeout_ms`, then
//! [`BufferError::Full`], which a source turns into "retry later"); `drop_newest` drops the new
//! records and counts them.
//!
//! **Where the code is.** [`record`]: what every buffer stores and hands back (entries, records,
//! positions, kinds, the envelope); [`disk`]: the handle (open, append, close); `shared`: the state the
//! handle, the writer, the housekeeper and the readers share, and the figures read from it;
//! `recovery`: the torn tail at start-up; `cap`: the size cap's reservations; `writer`: the
//! writer thread and group commit;
//! `housekeeping`: the cursor's persistence, deletion, the spare segment; [`reader`]: the owned
//! sequential reader and its acknowledger; [`frame`], [`scan`], [`segment`], [`cursor`], [`acks`]: the on-disk pieces; [`inspect`]:
//! the offline `buffer` commands. Dependencies go one way: everything uses `shared`, nothing
//! uses [`disk`].

pub mod acks;
mod cap;
pub mod cursor;
pub mod disk;
pub mod frame;
mod housekeeping;
pub mod inspect;
#[cfg(all(feature = "kafka", not(windows)))]
pub mod kafka;
mod kafka_stats;
mod queue;
pub mod reader;
pub mod record;
mod recovery;
pub mod scan;
pub mod segment;
mod shared;
mod writer;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

pub use disk::DiskBuffer;
pub use kafka_stats::{KafkaStats, PartitionStats};
pub use record::{Entry, Kind, Position, Record};

/// A boxed future, so that [`Buffer`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored at the configured persist level.
    Stored {
        /// How many records.
        count: usize,
    },
    /// The buffer was full and `when_full = drop_newest`: nothing was stored.
    Dropped {
        /// How many records were dropped.
        count: usize,
    },
}

/// How a replay from a saved position went ([`Buffer::replay_from`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Records written since the position that are no longer kept.
    pub missing: u64,
    /// The position is beyond the buffer's end: it was saved against another buffer.
    pub foreign: bool,
}

/// A buffer failure.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// At the size cap, and room did not come in time.
    #[error("buffer is full ({used} of {cap} bytes used)")]
    Full {
        /// Bytes in use.
        used: u64,
        /// The cap.
        cap: u64,
    },
    /// One record, or one batch, is too large to ever store.
    #[error("record of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The buffer is shutting down.
    #[error("buffer is closed")]
    Closed,
    /// The buffer's reader is owned already.
    #[error("the buffer's reader is taken (by {owner:?}; asked for by {wanted:?}): each record has one owner")]
    ReaderTaken {
        /// Who owns it.
        owner: String,
        /// Who asked.
        wanted: String,
    },
    /// Another process holds the buffer directory.
    #[error("buffer directory {0} is in use by another process")]
    Locked(PathBuf),
    /// A disk error.
    #[error("buffer I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The buffer's service did not take the records (Kafka brokers down or refusing).
    #[error("buffer unavailable: {0}")]
    Unavailable(String),
}

impl BufferError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            BufferError::Full { .. } | BufferError::Io(_) | BufferError::Closed | BufferError::Unavailable(_)
        )
    }
}

/// A point-in-time view for `/health` and `/metrics`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BufferStats {
    /// The next sequence number to be assigned.
    pub next_seq: u64,
    /// The lowest unacknowledged sequence number.
    pub cursor: u64,
    /// Records not yet acknowledged.
    pub backlog_records: u64,
    /// Bytes on disk (plus reserved by appends in flight).
    pub bytes: u64,
    /// The size cap.
    pub max_bytes: u64,
    /// An append was refused (or dropped) at the size cap, and none has been taken since.
    pub at_cap: bool,
    /// Segment files.
    pub segments: usize,
    /// Whether the writer failed and appends are refused (it recovers by itself).
    pub failed: bool,
    /// The last write error, while no write has succeeded since (a full disk, say).
    pub write_error: Option<String>,
    /// Records lost to on-disk damage since start.
    pub damaged_records: u64,
    /// Seconds since damage was last found, if ever.
    pub damage_secs_ago: Option<u64>,
    /// Why the buffer failed for good, once it has.
    pub fatal: Option<String>,
    /// When the oldest record not yet acknowledged was accepted (ms since the epoch), once a
    /// reader has read it; `None` when nothing waits, or for a Kafka topic.
    pub oldest_accepted_ms: Option<i64>,
    /// A Kafka buffer's topic, partitions and lag.
    pub kafka: Option<KafkaStats>,
}

impl BufferStats {
    /// Seconds since the oldest record waiting was accepted; 0 when unknown or nothing waits.
    pub fn oldest_age_secs(&self) -> f64 {
        self.oldest_accepted_ms.map_or(0.0, |ms| {
            let now = crate::timefmt::now_ms();
            (now.saturating_sub(ms)).max(0) as f64 / 1000.0
        })
    }
}

/// The durable buffer between sources and sinks.
pub trait Buffer: Send + Sync {
    /// Stores a batch, all or nothing, and answers once it is stored at the persist level. Each
    /// record carries its accept time (the time of this call, or of its group's write, within
    /// the commit delay of it); records with one key stay in their order.
    fn append(&self, entries: Vec<Entry>) -> BoxFuture<'_, Result<Appended, BufferError>>;

    /// The reader `name`, from the oldest unacknowledged record: the one owner of what it reads
    /// and acknowledges. While it lives, another is refused ([`BufferError::ReaderTaken`]).
    fn reader(&self, name: &str) -> Result<Box<dyn BufferReader>, BufferError>;

    /// Current figures.
    fn stats(&self) -> BufferStats;

    /// The largest payload [`Buffer::append`] takes (`buffer.max_record_bytes`).
    fn max_record_bytes(&self) -> u64;

    /// Where the next appended record goes: a state saved with it reflects every record before
    /// it (see [`Buffer::retain_from`]).
    fn write_position(&self) -> Position;

    /// Keeps the records from `from` on even once acknowledged, until told another point: the
    /// sources' carried state was saved as of `from` and is brought up to date from them after a
    /// restart. A buffer that cannot keep acknowledged records ignores it.
    fn retain_from(&self, _from: Position) {}

    /// Hands `each` every record still kept from `from` on, oldest first, up to the end of the
    /// log, and says what it could not. Read once at start, before any source runs.
    fn replay_from(&self, _from: Position, _each: &mut dyn FnMut(&Record)) -> Result<Replayed, BufferError> {
        Ok(Replayed::default())
    }

    /// Stops accepting, finishes appends in flight, syncs, persists the cursor.
    fn close(&self) -> BoxFuture<'_, Result<(), BufferError>>;

    /// Resolves, with why, once the buffer has failed for good (it could not recover from a
    /// disk error in time): the process should then exit non-zero so that its service manager
    /// restarts it. Never resolves for a buffer that cannot fail so.
    fn fatal(&self) -> BoxFuture<'_, String> {
        Box::pin(std::future::pending())
    }
}

/// An owned reader: reads records in order (per partition) and acknowledges them.
pub trait BufferReader: Send {
    /// Up to `max` records; waits until at least one is available.
    fn next_batch(&mut self, max: usize) -> BoxFuture<'_, Result<Vec<Record>, BufferError>>;

    /// Acknowledges for this reader, from any task: marks records confirmed downstream (they may
    /// then be deleted). Acknowledgements arrive in any order; each partition's are folded into
    /// its cursor. Once another reader has taken over, this one's are ignored (its records are
    /// read again by the new owner: at-least-once).
    fn acker(&self) -> Acker;
}

/// Takes acknowledgements for one reader.
pub trait Acknowledge: Send + Sync {
    /// Marks `positions` as confirmed downstream.
    fn ack(&self, positions: &[Position]);

    /// Claims the records at `positions` for a request about to go out: for each, whether it is
    /// still this reader's to deliver. A partitioned buffer takes partitions away (a Kafka group
    /// rebalancing): their records not yet in a request are then another reader's (sending them
    /// here too would only send them twice), while those claimed get a bounded time to be
    /// confirmed before the partition goes. A record is claimed once: a second copy of it (read
    /// again after its partition came back) is not this reader's to send.
    fn claim(&self, positions: &[Position]) -> Vec<bool> {
        vec![true; positions.len()]
    }
}

/// A shareable [`Acknowledge`].
pub type Acker = Arc<dyn Acknowledge>;

#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod tests;
