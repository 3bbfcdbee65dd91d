//! Recovery at start-up: the last segment's torn tail is found and cut, and damage before its
//! last valid frame is reported (design in the [module docs](super)).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::Range;
use std::path::Path;

use super::scan::{Scan, Scanner};
use super::shared::SCAN_MAX_RECORD;

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
