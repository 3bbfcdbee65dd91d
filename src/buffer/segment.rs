//! Segment files: names, listing, and making directory changes durable.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A segment file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// Sequence number of its first record (its name).
    pub first_seq: u64,
    /// Its path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub len: u64,
}

/// The file name of the segment starting at `first_seq`.
pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.log")
}

/// Parses a segment file name.
pub fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

/// The segments in `dir`, oldest first. Reads no file contents.
pub fn list(dir: &Path) -> io::Result<Vec<SegmentFile>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(first_seq) = name.to_str().and_then(parse_name) else {
            continue;
        };
        let len = entry.metadata()?.len();
        out.push(SegmentFile {
            first_seq,
            path: entry.path(),
            len,
        });
    }
    out.sort_by_key(|s| s.first_seq);
    Ok(out)
}

/// Makes creations, renames and deletions in `dir` durable.
///
/// On Unix this fsyncs the directory. Windows (NTFS) journals directory metadata itself and
/// offers no directory handle to sync without extra privileges, so there it does nothing.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_name(&file_name(42)), Some(42));
        assert_eq!(parse_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_name("42.log"), None);
        assert_eq!(parse_name("0000000000000000004x.log"), None);
        assert_eq!(parse_name("ack.cursor"), None);
    }
}
