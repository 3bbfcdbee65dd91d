//! Recovery at start-up: the log opened as a crash left it — segments below the cursor dropped,
//! the last segment's torn tail found and cut, damage before its last valid frame reported
//! (design in the [module docs](super)).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::Range;
use std::path::Path;

use super::cursor::{self, Loaded};
use super::scan::{Scan, Scanner};
use super::segment::{self, sync_dir};
use super::shared::{SCAN_MAX_RECORD, SegMeta};
use crate::metrics::BufferMetrics;

/// Outcome of scanning a segment's tail.
pub(crate) struct Tail {
    /// Bytes that hold whole frames.
    pub valid_len: u64,
    /// The sequence number after the last valid frame.
    pub next_seq: u64,
    /// Bytes of a torn write cut off (not counting preallocated zeros after it).
    pub truncated: u64,
    /// Sequence ranges lost to damage before the last valid frame.
    pub damaged: Vec<Range<u64>>,
}

/// Scans a segment, truncates a torn tail (synced), and says where appending continues. Zero
/// bytes after the last record are preallocated space, kept as they are.
pub(crate) fn recover_tail(path: &Path, first_seq: u64) -> io::Result<Tail> {
    let file_len = fs::metadata(path)?.len();
    let mut scanner = Scanner::open(path, SCAN_MAX_RECORD)?;
    let mut next_seq = first_seq;
    let mut damaged = Vec::new();
    let mut after_damage = false;
    let (valid_len, torn) = loop {
        match scanner.next(file_len)? {
            Scan::Frame { seq, .. } => {
                if after_damage && seq > next_seq {
                    damaged.push(next_seq..seq);
                }
                after_damage = false;
                next_seq = next_seq.max(seq + 1);
            }
            Scan::Corrupt { offset, resume } => {
                after_damage = true;
                tracing::warn!(segment = %path.display(), offset, resume, "damaged records in the last segment")
            }
            Scan::Tail { offset } => break (offset, true),
            Scan::End => break (scanner.offset(), false),
        }
    };
    // What the torn write left, not counting the preallocated zeros after it.
    let truncated = if torn {
        nonzero_end(path, valid_len, file_len)? - valid_len
    } else {
        0
    };
    if torn {
        tracing::warn!(segment = %path.display(), offset = valid_len, bytes = truncated, "truncating a torn tail");
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(valid_len)?;
        f.sync_all()?;
    }
    Ok(Tail {
        valid_len,
        next_seq,
        truncated,
        damaged,
    })
}

/// The end of the last non-zero byte in `from..to` of the file (`from` if there is none).
pub(crate) fn nonzero_end(path: &Path, from: u64, to: u64) -> io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(from))?;
    let mut buf = vec![0u8; 256 * 1024];
    let (mut pos, mut end) = (from, from);
    while pos < to {
        let want = (to - pos).min(buf.len() as u64) as usize;
        let n = f.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        if let Some(i) = buf[..n].iter().rposition(|b| *b != 0) {
            end = pos + i as u64 + 1;
        }
        pos += n as u64;
    }
    Ok(end)
}

/// What opening found and made ready: the segments, the active one open for appending at its
/// valid length, the next sequence number, the cursor, and damage found in the last segment.
pub(crate) struct Recovered {
    pub metas: Vec<SegMeta>,
    pub file: File,
    pub seg_len: u64,
    pub next_seq: u64,
    pub cursor_at: u64,
    pub damaged_at_start: Vec<Range<u64>>,
}

/// Opens the log under `dir` as a crash left it: loads the cursor, drops the segments wholly
/// below it (and below `retain_from`, see [`super::Buffer::retain_from`]), cuts the last
/// segment's torn tail, and makes sure a segment is ready for appends at a sequence number never
/// used before. Reads only the last segment.
/// `preallocate`: with `persist = fsync`, the segment size, so that a segment this creates
/// starts preallocated (see [`create_segment`]).
pub(crate) fn recover(
    dir: &Path,
    metrics: &BufferMetrics,
    retain_from: u64,
    preallocate: Option<u64>,
) -> io::Result<Recovered> {
    let loaded = cursor::load(dir)?;
    let mut segs = segment::list(dir)?;
    let mut cursor_at = match loaded {
        Loaded::At(c) => c,
        Loaded::Missing => segs.first().map_or(0, |s| s.first_seq),
        Loaded::Damaged => {
            let c = segs.first().map_or(0, |s| s.first_seq);
            tracing::error!(
                cursor = c,
                "acknowledgement cursor is damaged; redelivering from the oldest record"
            );
            c
        }
    };
    let mut dir_changed = false;
    while segs.len() >= 2 && segs[1].first_seq <= cursor_at.min(retain_from) {
        fs::remove_file(&segs[0].path)?;
        segs.remove(0);
        dir_changed = true;
    }
    if let Some(first) = segs.first() {
        cursor_at = cursor_at.max(first.first_seq);
    }
    let mut damaged_at_start = Vec::new();
    let (file, seg_len, mut next_seq) = match segs.last_mut() {
        Some(last) => {
            let tail = recover_tail(&last.path, last.first_seq)?;
            metrics.truncated_bytes.inc_by(tail.truncated);
            if !tail.damaged.is_empty() {
                let lost: u64 = tail.damaged.iter().map(|r| r.end - r.start).sum();
                tracing::error!(records = lost, segment = %last.path.display(), "records lost to damage found at start-up");
                damaged_at_start = tail.damaged;
            }
            last.len = tail.valid_len;
            (
                segment::open_at(&last.path, tail.valid_len)?,
                tail.valid_len,
                tail.next_seq,
            )
        }
        None => {
            dir_changed = true;
            (create_segment(dir, cursor_at, &mut segs, preallocate)?, 0, cursor_at)
        }
    };
    let (file, seg_len) = if cursor_at > next_seq {
        // Everything on disk is acknowledged and the cursor is ahead of it: start a segment
        // at the cursor so sequence numbers never repeat.
        file.sync_data()?;
        dir_changed = true;
        next_seq = cursor_at;
        (create_segment(dir, cursor_at, &mut segs, preallocate)?, 0)
    } else {
        (file, seg_len)
    };
    if dir_changed {
        sync_dir(dir)?;
    }
    let metas: Vec<SegMeta> = segs
        .iter()
        .enumerate()
        .map(|(i, s)| SegMeta {
            first_seq: s.first_seq,
            len: s.len,
            sealed: i + 1 < segs.len(),
        })
        .collect();
    Ok(Recovered {
        metas,
        file,
        seg_len,
        next_seq,
        cursor_at,
        damaged_at_start,
    })
}

/// Creates an empty segment starting at `first_seq` and lists it (the caller syncs the dir).
///
/// With `preallocate` (the segment size, under `persist = fsync`) it starts as a spare segment —
/// the one waiting, or one written now — so that from the first record its syncs flush data
/// alone, as every segment after a roll into a spare does: a file that grows costs each sync a
/// journal commit for its new size and blocks (measured here: 0.5 of the records/s of a
/// preallocated file). If no spare can be made (the disk is full), it starts empty and grows.
fn create_segment(
    dir: &Path,
    first_seq: u64,
    segs: &mut Vec<segment::SegmentFile>,
    preallocate: Option<u64>,
) -> io::Result<File> {
    let path = dir.join(segment::file_name(first_seq));
    let spare = preallocate.is_some_and(|len| {
        let ready = segment::check_spare(dir, len).unwrap_or(false) || {
            let made = segment::prepare_spare(dir, len);
            if let Err(e) = &made {
                tracing::warn!(error = %e, "could not preallocate the first segment; it grows as records come");
                let _ = fs::remove_file(dir.join(segment::SPARE_PARTIAL));
            }
            made.is_ok()
        };
        ready && fs::rename(dir.join(segment::SPARE), &path).is_ok()
    });
    if spare {
        tracing::debug!(segment = %path.display(), "the first segment starts preallocated");
    }
    let f = segment::open_at(&path, 0)?;
    segs.push(segment::SegmentFile {
        first_seq,
        path,
        len: 0,
    });
    Ok(f)
}
