//! The persisted acknowledgement cursor: `ack.cursor`, 20 bytes —
//! `"CICCUR01" | cursor u64 | crc32c u32` over the first 16 — replaced atomically.

use std::fs;
use std::io;
use std::path::Path;

const MAGIC: &[u8; 8] = b"CICCUR01";
/// The cursor file's name.
pub const FILE: &str = "ack.cursor";
const TMP: &str = "ack.cursor.tmp";

/// What was found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    /// No cursor yet (a new buffer).
    Missing,
    /// A valid cursor.
    At(u64),
    /// The file exists but does not check out.
    Damaged,
}

/// Reads the cursor.
pub fn load(dir: &Path) -> io::Result<Loaded> {
    let bytes = match fs::read(dir.join(FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::Missing),
        Err(e) => return Err(e),
    };
    if bytes.len() != 20 || &bytes[..8] != MAGIC {
        return Ok(Loaded::Damaged);
    }
    let crc = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
    if crc32c::crc32c(&bytes[..16]) != crc {
        return Ok(Loaded::Damaged);
    }
    Ok(Loaded::At(u64::from_le_bytes(
        bytes[8..16].try_into().expect("8 bytes"),
    )))
}

/// Durably replaces the cursor: write a temporary file, sync it, rename it, sync the directory.
pub fn store(dir: &Path, cursor: u64) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(20);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&cursor.to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&bytes).to_le_bytes());
    crate::private_fs::replace_file(&dir.join(FILE), &dir.join(TMP), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_load_and_damage() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(load(d.path()).unwrap(), Loaded::Missing);
        store(d.path(), 12345).unwrap();
        assert_eq!(load(d.path()).unwrap(), Loaded::At(12345));
        let p = d.path().join(FILE);
        let mut b = fs::read(&p).unwrap();
        b[9] ^= 1;
        fs::write(&p, b).unwrap();
        assert_eq!(load(d.path()).unwrap(), Loaded::Damaged);
    }
}
