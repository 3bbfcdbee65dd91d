//! Offline examination of a buffer directory (`cic-conduit buffer inspect|verify|dump`).
//!
//! Reads every segment with CRC checks, without taking the directory's lock and without changing
//! anything, so it is safe beside a running conduit (whose active tail may then show as torn).

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::cursor::{self, Loaded};
use super::recovery::nonzero_end;
use super::scan::{Scan, Scanner};
use super::segment;
use super::shared::SCAN_MAX_RECORD;

/// What one segment holds.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentReport {
    /// File name.
    pub file: String,
    /// First sequence number (from the name).
    pub first_seq: u64,
    /// Last valid sequence number found.
    pub last_seq: Option<u64>,
    /// Valid records.
    pub records: u64,
    /// File size.
    pub bytes: u64,
    /// Zero bytes after the last record: space preallocated for records to come (not damage).
    pub preallocated_bytes: u64,
    /// Damaged regions skipped in the middle.
    pub corrupt_regions: u64,
    /// Sequence numbers missing between valid records (lost to damage).
    pub missing_records: u64,
    /// Bytes at the end that hold no valid frame (a torn write, cut at the next start).
    pub torn_tail_bytes: u64,
    /// Every record is acknowledged: deleted at the next housekeeping.
    pub fully_acked: bool,
}

/// What a buffer directory holds.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The segment directory.
    pub dir: PathBuf,
    /// The persisted cursor (`None`: missing or damaged; see `cursor_damaged`).
    pub cursor: Option<u64>,
    /// The cursor file exists but fails its check.
    pub cursor_damaged: bool,
    /// Segments, oldest first.
    pub segments: Vec<SegmentReport>,
    /// Valid records in all segments.
    pub records: u64,
    /// Valid records at or after the cursor.
    pub unacked_records: u64,
    /// Records lost to damage (sequence gaps).
    pub missing_records: u64,
    /// Damaged regions.
    pub corrupt_regions: u64,
    /// Torn tail bytes.
    pub torn_tail_bytes: u64,
}

impl Report {
    /// Whether any damage was found (a torn tail counts: it is cut at the next start).
    pub fn damaged(&self) -> bool {
        self.cursor_damaged || self.corrupt_regions > 0 || self.missing_records > 0 || self.torn_tail_bytes > 0
    }
}

/// The segment directory under a data dir.
pub fn buffer_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("buffer")
}

/// Scans every record of every segment; `each` sees each valid record (seq, kind, payload
/// without its envelope).
pub fn scan_dir(data_dir: &Path, mut each: impl FnMut(u64, super::Kind, &[u8])) -> io::Result<Report> {
    let dir = buffer_dir(data_dir);
    if !dir.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no buffer at {}", dir.display()),
        ));
    }
    let (cursor_at, cursor_damaged) = match cursor::load(&dir)? {
        Loaded::At(c) => (Some(c), false),
        Loaded::Missing => (None, false),
        Loaded::Damaged => (None, true),
    };
    let segs = segment::list(&dir)?;
    let mut report = Report {
        dir: dir.clone(),
        cursor: cursor_at,
        cursor_damaged,
        segments: Vec::new(),
        records: 0,
        unacked_records: 0,
        missing_records: 0,
        corrupt_regions: 0,
        torn_tail_bytes: 0,
    };
    let mut expected: Option<u64> = None;
    for (i, seg) in segs.iter().enumerate() {
        let mut r = SegmentReport {
            file: segment::file_name(seg.first_seq),
            first_seq: seg.first_seq,
            last_seq: None,
            records: 0,
            bytes: seg.len,
            preallocated_bytes: 0,
            corrupt_regions: 0,
            missing_records: 0,
            torn_tail_bytes: 0,
            fully_acked: segs
                .get(i + 1)
                .is_some_and(|n| cursor_at.is_some_and(|c| n.first_seq <= c)),
        };
        let mut next = expected.map_or(seg.first_seq, |e| e.max(seg.first_seq));
        if let Some(e) = expected
            && seg.first_seq > e
        {
            r.missing_records += seg.first_seq - e;
        }
        let mut scanner = Scanner::open(&seg.path, SCAN_MAX_RECORD)?;
        loop {
            match scanner.next(seg.len)? {
                Scan::Frame { seq, .. } => {
                    if seq > next {
                        r.missing_records += seq - next;
                    }
                    next = next.max(seq + 1);
                    r.records += 1;
                    r.last_seq = Some(seq);
                    if cursor_at.is_none_or(|c| seq >= c) {
                        report.unacked_records += 1;
                    }
                    let (kind, payload) = super::record::payload_of(scanner.payload());
                    each(seq, kind, payload);
                }
                Scan::Corrupt { .. } => r.corrupt_regions += 1,
                Scan::Tail { offset } => {
                    let end = nonzero_end(&seg.path, offset, seg.len)?;
                    r.torn_tail_bytes = end - offset;
                    r.preallocated_bytes = seg.len - end;
                    break;
                }
                Scan::End => {
                    r.preallocated_bytes = seg.len - scanner.offset();
                    break;
                }
            }
        }
        expected = Some(next);
        report.records += r.records;
        report.missing_records += r.missing_records;
        report.corrupt_regions += r.corrupt_regions;
        report.torn_tail_bytes += r.torn_tail_bytes;
        report.segments.push(r);
    }
    Ok(report)
}

/// Human-readable rendering of a report.
pub fn render(report: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "buffer: {}", report.dir.display());
    let cursor = match (report.cursor, report.cursor_damaged) {
        (Some(c), _) => c.to_string(),
        (None, true) => "DAMAGED (the conduit redelivers from the oldest record)".into(),
        (None, false) => "none yet".into(),
    };
    let _ = writeln!(s, "ack cursor: {cursor}");
    let _ = writeln!(
        s,
        "{:<26} {:>20} {:>20} {:>10} {:>12} {:>12} {:>8} {:>8} {:>10}",
        "segment", "first seq", "last seq", "records", "bytes", "prealloc", "corrupt", "missing", "torn tail"
    );
    for r in &report.segments {
        let _ = writeln!(
            s,
            "{:<26} {:>20} {:>20} {:>10} {:>12} {:>12} {:>8} {:>8} {:>10}{}",
            r.file,
            r.first_seq,
            r.last_seq.map_or("-".to_string(), |v| v.to_string()),
            r.records,
            r.bytes,
            r.preallocated_bytes,
            r.corrupt_regions,
            r.missing_records,
            r.torn_tail_bytes,
            if r.fully_acked { "  (acknowledged)" } else { "" }
        );
    }
    let _ = writeln!(
        s,
        "total: {} records, {} unacknowledged (backlog), {} lost to damage, {} damaged regions, {} torn tail bytes",
        report.records, report.unacked_records, report.missing_records, report.corrupt_regions, report.torn_tail_bytes
    );
    let _ = writeln!(s, "status: {}", if report.damaged() { "DAMAGED" } else { "ok" });
    s
}
