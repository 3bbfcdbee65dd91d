//! The disk log's shared state: what the handle, the writer thread, the housekeeper and the
//! readers all see (segments, sequence numbers, the acknowledgement tracker, damage, failure),
//! and the figures read from it.

#[cfg(test)]
use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Notify;

use super::acks::AckTracker;
use super::scan::{Scan, Scanner};
use super::{BufferError, BufferStats, Position, Record, Replayed, frame, segment};
use crate::config::BufferConfig;
use crate::metrics::BufferMetrics;

/// Largest frame length a scan accepts; the file's length bounds memory anyway.
pub(crate) const SCAN_MAX_RECORD: u32 = u32::MAX - frame::HEADER_LEN as u32;

/// A segment as the buffer tracks it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegMeta {
    /// Its first sequence number.
    pub first_seq: u64,
    /// Bytes written (for the active segment: published so far).
    pub len: u64,
    /// No more writes will come.
    pub sealed: bool,
}

/// The reader's owner: the disk log has one cursor, so one reader at a time.
#[derive(Debug, Default)]
pub(crate) struct ReaderClaim {
    /// The owner's name, while a reader lives.
    pub owner: Option<String>,
    /// Bumped for each new owner: acknowledgements from an earlier one are ignored.
    pub generation: u64,
}

/// State shared by the handle, the writer, the housekeeper and readers.
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub cfg: BufferConfig,
    pub segments: Mutex<Vec<SegMeta>>,
    /// Every record below this is written and readable.
    pub next_seq: AtomicU64,
    pub used_bytes: AtomicU64,
    /// An append was refused (or dropped) at the size cap, and none has been taken since.
    pub at_cap: std::sync::atomic::AtomicBool,
    pub acks: Mutex<AckTracker>,
    /// Who owns the reader, and how many owners it has had.
    pub reader: Mutex<ReaderClaim>,
    pub durable_cursor: AtomicU64,
    /// Records from here on are kept even once acknowledged (see [`Buffer::retain_from`]).
    pub retain_from: AtomicU64,
    pub data_ready: Notify,
    pub space_freed: Notify,
    pub closed: AtomicBool,
    pub failed: AtomicBool,
    /// A preallocated spare segment is ready (see [`segment::prepare_spare`]).
    pub spare_ready: AtomicBool,
    /// Held while the spare is prepared or taken.
    pub spare_lock: Mutex<()>,
    pub metrics: BufferMetrics,
    /// Bumped when the writer puts the log back after a failed group: readers drop what they
    /// read ahead and re-read.
    pub rewound: AtomicU64,
    /// The last write error, until a write succeeds again (for `/health`).
    pub write_error: Mutex<Option<String>>,
    /// Damage found: the ranges already counted, and when damage was last found.
    pub damage: Mutex<Damage>,
    /// Why the buffer failed for good, once it has.
    pub fatal: Mutex<Option<String>>,
    pub fatal_notify: Notify,
    /// Per read, in order: the sequence number after its last record, and the earliest accept
    /// time among its records (see [`Shared::oldest_accepted_ms`]).
    pub reads: Mutex<std::collections::VecDeque<(u64, i64)>>,
    /// Injected I/O errors (tests).
    #[cfg(test)]
    pub faults: Faults,
}

/// Damaged records found so far.
#[derive(Debug, Default)]
pub(crate) struct Damage {
    /// Sequence ranges found damaged at start-up (and counted then), so that a reader meeting
    /// them later does not count them twice.
    pub counted: Vec<Range<u64>>,
    /// Records lost to damage since start.
    pub records: u64,
    /// When damage was last found.
    pub last_at: Option<std::time::Instant>,
}

/// I/O errors to inject at named points of the writer: `(point, raw OS error)`, taken in order;
/// an error of 0 lets that one pass.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct Faults(pub Mutex<Vec<(&'static str, i32)>>);

#[cfg(test)]
impl Faults {
    /// Fails with the next error injected at `point`, if any.
    pub fn take(&self, point: &str) -> io::Result<()> {
        let mut f = crate::locks::lock(&self.0);
        match f.iter().position(|(p, _)| *p == point) {
            Some(i) => match f.remove(i).1 {
                0 => Ok(()),
                code => Err(io::Error::from_raw_os_error(code)),
            },
            None => Ok(()),
        }
    }
}

impl Shared {
    pub(crate) fn ack(&self, range: Range<u64>) {
        let n = crate::locks::lock(&self.acks).ack(range);
        self.metrics.acked.inc_by(n);
    }

    /// Counts the records of `gap` lost to damage, except those counted already.
    pub(crate) fn count_damage(&self, gap: Range<u64>) {
        let mut d = crate::locks::lock(&self.damage);
        let mut lost = gap.end.saturating_sub(gap.start);
        for c in &d.counted {
            let (s, e) = (c.start.max(gap.start), c.end.min(gap.end));
            lost -= e.saturating_sub(s);
        }
        if lost > 0 {
            d.records += lost;
            d.last_at = Some(std::time::Instant::now());
            self.metrics.corrupt.inc_by(lost);
        }
    }

    pub(crate) fn set_write_error(&self, e: Option<String>) {
        let mut w = crate::locks::lock(&self.write_error);
        if w.is_some() || e.is_some() {
            *w = e;
        }
    }

    pub(crate) fn set_fatal(&self, why: String) {
        *crate::locks::lock(&self.fatal) = Some(why);
        self.fatal_notify.notify_waiters();
    }
}

/// Every kept record from `from` up to the end of the log, oldest first; the first sequence
/// number met. Damage is skipped here and left for the delivery reader to count.
pub(crate) fn replay_from(s: &Shared, from: u64, each: &mut dyn FnMut(&Record)) -> Result<Replayed, BufferError> {
    let end = s.next_seq.load(Ordering::Acquire);
    let segs: Vec<SegMeta> = crate::locks::lock(&s.segments).clone();
    let mut first = None;
    for (i, seg) in segs.iter().enumerate() {
        if segs.get(i + 1).is_some_and(|n| n.first_seq <= from) {
            continue;
        }
        let path = s.dir.join(segment::file_name(seg.first_seq));
        let mut scanner = Scanner::open(&path, SCAN_MAX_RECORD)?;
        loop {
            match scanner.next(seg.len)? {
                Scan::Frame { seq, .. } if seq >= from && seq < end => {
                    first.get_or_insert(seq);
                    let stored = bytes::Bytes::copy_from_slice(scanner.payload());
                    each(&Record::from_stored(Position::seq(seq), stored));
                }
                Scan::Frame { .. } | Scan::Corrupt { .. } => {}
                Scan::Tail { .. } | Scan::End => break,
            }
        }
    }
    Ok(Replayed {
        missing: first.unwrap_or(end).saturating_sub(from),
        foreign: from > end,
    })
}

/// At most this many reads are remembered for the oldest record's age (each a few hundred
/// records): beyond them, the oldest are forgotten (the age then reads low, never high).
const READS_KEPT: usize = 4096;

impl Shared {
    /// Notes a read of the records up to `end` (exclusive), the earliest accepted at
    /// `earliest_ms`.
    pub(crate) fn note_read(&self, end: u64, earliest_ms: i64) {
        let mut reads = crate::locks::lock(&self.reads);
        if reads.len() == READS_KEPT {
            reads.pop_front();
        }
        reads.push_back((end, earliest_ms));
    }

    /// When the oldest record not yet acknowledged (at `cursor`) was accepted, to within one
    /// read (the earliest accept time of the read that holds it); `None` when nothing waits or
    /// no reader has read it yet (no dispatcher in this process).
    pub(crate) fn oldest_accepted_ms(&self, cursor: u64, next_seq: u64) -> Option<i64> {
        let mut reads = crate::locks::lock(&self.reads);
        while reads.front().is_some_and(|(end, _)| *end <= cursor) {
            reads.pop_front();
        }
        if cursor >= next_seq {
            return None;
        }
        reads.front().map(|(_, ms)| *ms)
    }
}

pub(crate) fn stats(s: &Shared) -> BufferStats {
    let next_seq = s.next_seq.load(Ordering::Acquire);
    let cursor = crate::locks::lock(&s.acks).cursor();
    let oldest_accepted_ms = s.oldest_accepted_ms(cursor, next_seq);
    let (damaged_records, damage_last_at) = {
        let d = crate::locks::lock(&s.damage);
        (d.records, d.last_at)
    };
    BufferStats {
        next_seq,
        cursor,
        backlog_records: next_seq.saturating_sub(cursor),
        bytes: s.used_bytes.load(Ordering::Acquire),
        max_bytes: s.cfg.max_bytes,
        at_cap: s.at_cap.load(Ordering::Acquire),
        segments: crate::locks::lock(&s.segments).len(),
        failed: s.failed.load(Ordering::Acquire),
        write_error: crate::locks::lock(&s.write_error).clone(),
        damaged_records,
        damage_secs_ago: damage_last_at.map(|t| t.elapsed().as_secs()),
        fatal: crate::locks::lock(&s.fatal).clone(),
        oldest_accepted_ms,
        kafka: None,
    }
}

pub(crate) fn refresh_gauges(s: &Shared) {
    let st = stats(s);
    s.metrics.records.set(st.backlog_records as i64);
    s.metrics.bytes.set(st.bytes as i64);
    s.metrics.capacity.set(st.max_bytes as i64);
    s.metrics.oldest_age.set(st.oldest_age_secs());
    s.metrics.segments.set(st.segments as i64);
}
