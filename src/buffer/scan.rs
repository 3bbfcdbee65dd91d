//! Sequential, bounded-memory scanning of one segment file, with resynchronisation after damage.
//!
//! The scanner reads through a window (256 KiB, grown only to fit one record) and never past a
//! caller-given `limit` — for the active segment, the bytes the writer has finished writing.
//! After a bad frame it searches forward for the next magic whose frame checks out.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use super::frame::{self, HEADER_LEN};

const WINDOW: usize = 256 * 1024;

/// One step of a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// A valid frame at `offset`; its payload is [`Scanner::payload`].
    Frame {
        /// Its sequence number.
        seq: u64,
        /// Its byte offset in the segment.
        offset: u64,
    },
    /// Damaged bytes `offset..resume`; the next frame starts at `resume`.
    Corrupt {
        /// Where the damage starts.
        offset: u64,
        /// Where the next valid frame starts.
        resume: u64,
    },
    /// Bytes from `offset` to the limit hold no valid frame: a torn (or damaged) tail.
    Tail {
        /// Where the tail starts.
        offset: u64,
    },
    /// No more records: exactly at the limit, or only zero bytes from [`Scanner::offset`] to it
    /// (space preallocated for records not yet written; no frame starts with a zero byte).
    End,
}

enum Check {
    Valid(u64, usize),
    Invalid,
    Short,
}

/// Reads frames from one segment file.
pub struct Scanner {
    file: File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    base: u64,
    /// Next unread position in `buf`.
    lo: usize,
    /// End of valid bytes in `buf`; the file's read position is `base + hi`.
    hi: usize,
    max_record: u32,
    last_payload: (usize, usize),
}

impl Scanner {
    /// Opens a segment for scanning from its start.
    pub fn open(path: &Path, max_record: u32) -> io::Result<Self> {
        Ok(Scanner {
            file: File::open(path)?,
            buf: vec![0; WINDOW],
            base: 0,
            lo: 0,
            hi: 0,
            max_record,
            last_payload: (0, 0),
        })
    }

    /// Moves to `offset` (which must be a frame boundary the caller knows).
    pub fn seek(&mut self, offset: u64) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.base = offset;
        self.lo = 0;
        self.hi = 0;
        Ok(())
    }

    /// The offset of the next frame.
    pub fn offset(&self) -> u64 {
        self.base + self.lo as u64
    }

    /// The payload of the frame the last [`Scan::Frame`] returned.
    pub fn payload(&self) -> &[u8] {
        &self.buf[self.last_payload.0..self.last_payload.1]
    }

    /// Makes `abs..abs+len` available in the window, reading no further than `limit`.
    /// Bytes before `abs` may be discarded.
    fn ensure(&mut self, abs: u64, len: usize, limit: u64) -> io::Result<bool> {
        let end = abs + len as u64;
        if end <= self.base + self.hi as u64 {
            return Ok(true);
        }
        if end > limit {
            return Ok(false);
        }
        let drop = (abs - self.base) as usize;
        if drop >= self.hi {
            // Nothing buffered is wanted; skip ahead in the file if needed.
            let file_pos = self.base + self.hi as u64;
            if abs != file_pos {
                self.file.seek(SeekFrom::Start(abs))?;
            }
            self.hi = 0;
            self.lo = 0;
        } else {
            self.buf.copy_within(drop..self.hi, 0);
            self.hi -= drop;
            self.lo = self.lo.saturating_sub(drop);
        }
        self.base = abs;
        if self.buf.len() < len {
            self.buf.resize(len.max(WINDOW), 0);
        }
        while self.hi < len {
            let room = (self.buf.len() - self.hi) as u64;
            let want = room.min(limit - (self.base + self.hi as u64)) as usize;
            if want == 0 {
                break;
            }
            let n = self.file.read(&mut self.buf[self.hi..self.hi + want])?;
            if n == 0 {
                break;
            }
            self.hi += n;
        }
        Ok(self.hi >= len)
    }

    fn check(&mut self, abs: u64, limit: u64) -> io::Result<Check> {
        if !self.ensure(abs, HEADER_LEN, limit)? {
            return Ok(Check::Short);
        }
        let at = (abs - self.base) as usize;
        let head: &[u8; HEADER_LEN] = self.buf[at..at + HEADER_LEN].try_into().expect("20 bytes");
        let Some(h) = frame::header(head, self.max_record) else {
            return Ok(Check::Invalid);
        };
        let total = HEADER_LEN + h.len as usize;
        if !self.ensure(abs, total, limit)? {
            return Ok(Check::Short);
        }
        let at = (abs - self.base) as usize;
        let payload = &self.buf[at + HEADER_LEN..at + total];
        if frame::crc(h.len, h.seq, payload) != h.crc {
            return Ok(Check::Invalid);
        }
        Ok(Check::Valid(h.seq, total))
    }

    /// The next step, reading no further than `limit` bytes into the file.
    pub fn next(&mut self, limit: u64) -> io::Result<Scan> {
        let abs = self.offset();
        if abs >= limit {
            return Ok(Scan::End);
        }
        if let Check::Valid(seq, total) = self.check(abs, limit)? {
            let at = (abs - self.base) as usize;
            self.last_payload = (at + HEADER_LEN, at + total);
            self.lo = at + total;
            return Ok(Scan::Frame { seq, offset: abs });
        }
        let unused = self.zeros_to(abs, limit)?;
        self.reposition(abs)?;
        if unused {
            return Ok(Scan::End);
        }
        // Damage: look for the next frame that checks out.
        let mut pos = abs + 1;
        loop {
            if !self.ensure(pos, 4, limit)? {
                // Leave the scanner at the tail so that a later, larger limit rescans from it.
                self.reposition(abs)?;
                return Ok(Scan::Tail { offset: abs });
            }
            let at = (pos - self.base) as usize;
            if self.buf[at..at + 4] == frame::MAGIC
                && let Check::Valid(..) = self.check(pos, limit)?
            {
                self.lo = (pos - self.base) as usize;
                return Ok(Scan::Corrupt {
                    offset: abs,
                    resume: pos,
                });
            }
            // On to the next byte that could start a frame (the magic's first) in the window, or
            // past the window: damage, or a torn write's run of preallocated zeros, is skipped at
            // memory speed rather than byte by byte.
            let at = (pos - self.base) as usize;
            let next = self
                .buf
                .get(at + 1..self.hi)
                .and_then(|w| w.iter().position(|&b| b == frame::MAGIC[0]))
                .map_or(self.base + self.hi as u64, |i| pos + 1 + i as u64);
            pos = next.max(pos + 1);
        }
    }

    /// Whether every byte from `abs` to `limit` is zero: preallocated space, never written.
    /// Reads the window at a time, and stops at the first other byte (usually the first one).
    fn zeros_to(&mut self, abs: u64, limit: u64) -> io::Result<bool> {
        if !self.ensure(abs, 1, limit)? || self.buf[(abs - self.base) as usize] != 0 {
            return Ok(false);
        }
        let mut pos = abs;
        while pos < limit {
            let n = (limit - pos).min(WINDOW as u64) as usize;
            if !self.ensure(pos, n, limit)? {
                return Ok(false);
            }
            let at = (pos - self.base) as usize;
            if self.buf[at..at + n].iter().any(|&b| b != 0) {
                return Ok(false);
            }
            pos += n as u64;
        }
        Ok(true)
    }

    fn reposition(&mut self, abs: u64) -> io::Result<()> {
        if abs >= self.base && abs <= self.base + self.hi as u64 {
            self.lo = (abs - self.base) as usize;
            Ok(())
        } else {
            self.seek(abs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(frames: &[(u64, &[u8])]) -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.log");
        let mut bytes = Vec::new();
        for (seq, payload) in frames {
            frame::encode(*seq, payload, &mut bytes);
        }
        std::fs::write(&p, &bytes).unwrap();
        (dir, p, bytes)
    }

    fn scan_all(p: &Path, limit: u64) -> Vec<Scan> {
        let mut s = Scanner::open(p, 1 << 20).unwrap();
        let mut out = Vec::new();
        loop {
            let step = s.next(limit).unwrap();
            out.push(step);
            if matches!(step, Scan::End | Scan::Tail { .. }) {
                return out;
            }
        }
    }

    #[test]
    fn reads_frames_and_large_records() {
        let big = vec![7u8; 600_000];
        let (_d, p, bytes) = write(&[(0, b"a"), (1, &big), (2, b"c")]);
        let steps = scan_all(&p, bytes.len() as u64);
        let seqs: Vec<u64> = steps
            .iter()
            .filter_map(|s| {
                if let Scan::Frame { seq, .. } = s {
                    Some(*seq)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(seqs, vec![0, 1, 2]);
        assert_eq!(steps.last(), Some(&Scan::End));
    }

    #[test]
    fn resyncs_after_a_flipped_byte() {
        let (_d, p, mut bytes) = write(&[(0, b"first"), (1, b"second"), (2, b"third")]);
        bytes[HEADER_LEN + 5 + 22] ^= 0xff; // inside frame 1
        std::fs::write(&p, &bytes).unwrap();
        let steps = scan_all(&p, bytes.len() as u64);
        assert!(matches!(steps[0], Scan::Frame { seq: 0, .. }));
        assert!(matches!(steps[1], Scan::Corrupt { .. }));
        assert!(matches!(steps[2], Scan::Frame { seq: 2, .. }));
    }

    #[test]
    fn zeros_after_the_last_frame_are_unused_space_not_damage() {
        let (_d, p, mut bytes) = write(&[(0, b"first"), (1, b"second")]);
        let data = bytes.len() as u64;
        bytes.resize(bytes.len() + 600_000, 0);
        std::fs::write(&p, &bytes).unwrap();
        let mut s = Scanner::open(&p, 1 << 20).unwrap();
        let steps: Vec<Scan> = (0..3).map(|_| s.next(bytes.len() as u64).unwrap()).collect();
        assert!(matches!(steps[1], Scan::Frame { seq: 1, .. }));
        assert_eq!(steps[2], Scan::End);
        assert_eq!(s.offset(), data, "the data ends where the zeros start");

        // A torn frame before the zeros, or anything but zeros after them, is damage.
        let mut torn = bytes.clone();
        torn[data as usize] = frame::MAGIC[0];
        std::fs::write(&p, &torn).unwrap();
        assert_eq!(
            scan_all(&p, torn.len() as u64).last(),
            Some(&Scan::Tail { offset: data })
        );
        let mut late = bytes.clone();
        let mut more = Vec::new();
        frame::encode(2, b"third", &mut more);
        late[400_000..400_000 + more.len()].copy_from_slice(&more);
        std::fs::write(&p, &late).unwrap();
        let steps = scan_all(&p, late.len() as u64);
        assert_eq!(
            steps[2],
            Scan::Corrupt {
                offset: data,
                resume: 400_000
            }
        );
        assert!(matches!(steps[3], Scan::Frame { seq: 2, .. }));
    }

    #[test]
    fn torn_tail_is_a_tail() {
        let (_d, p, bytes) = write(&[(0, b"first"), (1, b"second")]);
        let cut = bytes.len() - 3;
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let steps = scan_all(&p, cut as u64);
        assert_eq!(steps.len(), 2);
        assert_eq!(
            steps[1],
            Scan::Tail {
                offset: (HEADER_LEN + 5) as u64
            }
        );
    }

    #[test]
    fn limit_hides_what_is_not_yet_written() {
        let (_d, p, bytes) = write(&[(0, b"first"), (1, b"second")]);
        let mut s = Scanner::open(&p, 1 << 20).unwrap();
        let first_end = (HEADER_LEN + 5) as u64;
        assert!(matches!(s.next(first_end).unwrap(), Scan::Frame { seq: 0, .. }));
        assert_eq!(s.next(first_end).unwrap(), Scan::End);
        assert!(matches!(
            s.next(bytes.len() as u64).unwrap(),
            Scan::Frame { seq: 1, .. }
        ));
        assert_eq!(s.payload(), b"second");
    }
}
