//! Segment files: names, listing, preallocation, and making directory changes durable.

use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The preallocated (zero-filled, synced) file that becomes the next segment.
pub const SPARE: &str = "spare.prealloc";
/// A spare being written; removed at open.
pub const SPARE_PARTIAL: &str = "spare.prealloc.partial";

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

/// Opens a segment for writing at `offset` (its data end), keeping any preallocated space after.
pub fn open_at(path: &Path, offset: u64) -> io::Result<File> {
    let mut f = crate::private_fs::file_options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    Ok(f)
}

/// Writes a spare segment of `len` zero bytes, synced, under [`SPARE`] (and syncs `dir`).
///
/// Records then overwrite allocated blocks without changing the file's size, so `fdatasync`
/// flushes only data, without a file-system journal commit for the size and the new blocks.
pub fn prepare_spare(dir: &Path, len: u64) -> io::Result<()> {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    let partial = dir.join(SPARE_PARTIAL);
    let mut f = crate::private_fs::file_options()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&partial)?;
    let mut left = len;
    while left > 0 {
        let n = left.min(ZEROS.len() as u64) as usize;
        f.write_all(&ZEROS[..n])?;
        left -= n as u64;
    }
    f.sync_data()?;
    drop(f);
    fs::rename(&partial, dir.join(SPARE))?;
    sync_dir(dir)
}

/// Whether a usable spare of `len` bytes is in `dir`; removes a partial or mis-sized one.
pub fn check_spare(dir: &Path, len: u64) -> io::Result<bool> {
    let _ = fs::remove_file(dir.join(SPARE_PARTIAL));
    let spare = dir.join(SPARE);
    match fs::metadata(&spare) {
        Ok(m) if m.len() == len => Ok(true),
        Ok(_) => fs::remove_file(&spare).map(|()| false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

pub use crate::private_fs::sync_dir;

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

    #[test]
    fn a_spare_is_whole_zeros_and_a_leftover_is_cleared_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(!check_spare(d, 4096).unwrap(), "none yet");
        prepare_spare(d, 100_000).unwrap();
        let bytes = fs::read(d.join(SPARE)).unwrap();
        assert_eq!(bytes.len(), 100_000);
        assert!(bytes.iter().all(|b| *b == 0));
        assert!(!d.join(SPARE_PARTIAL).exists());
        assert!(check_spare(d, 100_000).unwrap());
        // A crash while preparing one, or a changed segment size: nothing usable, nothing left.
        fs::write(d.join(SPARE_PARTIAL), b"\0\0").unwrap();
        assert!(!check_spare(d, 4096).unwrap());
        assert!(!d.join(SPARE).exists() && !d.join(SPARE_PARTIAL).exists());
        assert!(list(d).unwrap().is_empty(), "a spare is not a segment");
    }
}
