//! [`DiskReader`]: reads the log in sequence order from a starting point, across segments.
//!
//! It never reads past what the writer has published. Damaged records it meets are counted in
//! `conduit_buffer_corrupt_records_total` and acknowledged, so one bad sector can neither stop
//! delivery nor hold back the cursor. It owns the log's one cursor while it lives: a second
//! reader is refused, and once a reader is gone and another has taken over, the first one's
//! acknowledgements are ignored (`DiskAcker`).

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::scan::{Scan, Scanner};
use super::segment;
use super::shared::{SCAN_MAX_RECORD, Shared};
use super::{Acker, Acknowledge, BoxFuture, BufferError, BufferReader, Position, Record};

struct Open {
    first_seq: u64,
    scanner: Scanner,
    limit: u64,
}

/// A sequential reader of a [`super::DiskBuffer`].
pub struct DiskReader {
    shared: Arc<Shared>,
    /// Its claim on the cursor (see [`super::shared::ReaderClaim`]).
    generation: u64,
    next_seq: u64,
    open: Option<Open>,
    /// The writer's rewind count when the open segment was opened.
    rewound: u64,
}

impl DiskReader {
    /// Claims the log's reader for `name`, from the cursor.
    pub(crate) fn claim(shared: Arc<Shared>, name: &str) -> Result<Self, BufferError> {
        let generation = {
            let mut claim = crate::locks::lock(&shared.reader);
            if let Some(owner) = &claim.owner {
                return Err(BufferError::ReaderTaken {
                    owner: owner.clone(),
                    wanted: name.to_string(),
                });
            }
            claim.owner = Some(name.to_string());
            claim.generation += 1;
            claim.generation
        };
        let start = crate::locks::lock(&shared.acks).cursor();
        let rewound = shared.rewound.load(Ordering::Acquire);
        Ok(DiskReader {
            shared,
            generation,
            next_seq: start,
            open: None,
            rewound,
        })
    }

    /// The sequence number the next record will have (at least).
    pub fn position(&self) -> u64 {
        self.next_seq
    }

    /// Where the segment holding `next_seq` is: (first_seq, published len, sealed, next first).
    fn locate(&self) -> Option<(u64, u64, bool, Option<u64>)> {
        let segs = crate::locks::lock(&self.shared.segments);
        let i = match segs.iter().rposition(|s| s.first_seq <= self.next_seq) {
            Some(i) => i,
            None if !segs.is_empty() => 0,
            None => return None,
        };
        let s = segs[i];
        Some((s.first_seq, s.len, s.sealed, segs.get(i + 1).map(|n| n.first_seq)))
    }

    fn skip_gap(&mut self, gap: Range<u64>) {
        if gap.is_empty() {
            return;
        }
        tracing::error!(from = gap.start, to = gap.end, "skipping damaged buffer records");
        self.shared.count_damage(gap.clone());
        self.shared.ack(gap);
    }

    /// Appends up to `max` available records to `out` without waiting.
    ///
    /// File reads here are plain blocking reads: they hit the page cache in the common case
    /// (the writer just wrote the data), and the reader is one dedicated task.
    pub fn read_available(&mut self, max: usize, out: &mut Vec<Record>) -> std::io::Result<()> {
        while out.len() < max {
            if self.next_seq >= self.shared.next_seq.load(Ordering::Acquire) {
                return Ok(());
            }
            let rewound = self.shared.rewound.load(Ordering::Acquire);
            if rewound != self.rewound {
                // The writer put the log back after a failed write: what this reader may have
                // read ahead is gone; re-open where it stands.
                self.rewound = rewound;
                self.open = None;
            }
            if self.open.is_none() {
                let Some((first_seq, limit, _, _)) = self.locate() else {
                    return Ok(());
                };
                if first_seq > self.next_seq {
                    // Acknowledged and deleted meanwhile.
                    self.next_seq = first_seq;
                }
                let path = self.shared.dir.join(segment::file_name(first_seq));
                let scanner = Scanner::open(&path, SCAN_MAX_RECORD)?;
                self.open = Some(Open {
                    first_seq,
                    scanner,
                    limit,
                });
            }
            let open = self.open.as_mut().expect("opened above");
            match open.scanner.next(open.limit)? {
                Scan::Frame { seq, .. } => {
                    if seq < self.next_seq {
                        continue;
                    }
                    let stored = Bytes::copy_from_slice(open.scanner.payload());
                    let gap = self.next_seq..seq;
                    self.skip_gap(gap);
                    out.push(Record::from_stored(Position::seq(seq), stored));
                    self.next_seq = seq + 1;
                }
                Scan::Corrupt { offset, resume } => {
                    tracing::warn!(segment = open.first_seq, offset, resume, "damaged bytes in the buffer");
                }
                Scan::Tail { .. } | Scan::End => {
                    let first_seq = open.first_seq;
                    let Some((f, limit, sealed, next_first)) = self.locate() else {
                        return Ok(());
                    };
                    if f != first_seq {
                        // The reader has moved past this segment's end into a later one.
                        self.open = None;
                        continue;
                    }
                    let open = self.open.as_mut().expect("still open");
                    if limit > open.limit {
                        open.limit = limit;
                        continue;
                    }
                    if !sealed {
                        return Ok(());
                    }
                    // Sealed and read to its end: whatever it lacks before the next one is lost.
                    let Some(n) = next_first else { return Ok(()) };
                    if n > self.next_seq {
                        let gap = self.next_seq..n;
                        self.skip_gap(gap);
                        self.next_seq = n;
                    }
                    self.open = None;
                }
            }
        }
        Ok(())
    }
}

impl Drop for DiskReader {
    fn drop(&mut self) {
        let mut claim = crate::locks::lock(&self.shared.reader);
        if claim.generation == self.generation {
            claim.owner = None;
        }
    }
}

/// Acknowledges for one [`DiskReader`]; ignored once another reader has claimed the log.
struct DiskAcker {
    shared: Arc<Shared>,
    generation: u64,
}

impl Acknowledge for DiskAcker {
    fn ack(&self, positions: &[Position]) {
        if crate::locks::lock(&self.shared.reader).generation != self.generation {
            return;
        }
        let end = self.shared.next_seq.load(Ordering::Acquire);
        for (partition, run) in super::acks::runs(positions) {
            debug_assert_eq!(partition, 0, "the disk log has one partition");
            if partition == 0 {
                self.shared.ack(run.start..run.end.min(end));
            }
        }
    }
}

impl BufferReader for DiskReader {
    fn acker(&self) -> Acker {
        Arc::new(DiskAcker {
            shared: self.shared.clone(),
            generation: self.generation,
        })
    }

    fn next_batch(&mut self, max: usize) -> BoxFuture<'_, Result<Vec<Record>, BufferError>> {
        Box::pin(async move {
            let shared = self.shared.clone();
            loop {
                let notified = shared.data_ready.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let mut out = Vec::new();
                self.read_available(max, &mut out)?;
                if let Some(last) = out.last() {
                    if let Some(earliest) = out.iter().filter_map(|r| r.accepted_ms).min() {
                        shared.note_read(last.position.offset() + 1, earliest);
                    }
                    return Ok(out);
                }
                if shared.closed.load(Ordering::Acquire) {
                    return Err(BufferError::Closed);
                }
                notified.await;
            }
        })
    }
}
