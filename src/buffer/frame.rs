//! The record frame: `magic u32 | len u32 | seq u64 | crc32c u32 | payload`, little-endian.
//! The CRC covers `len`, `seq` and the payload.

/// `"CICR"` read as a little-endian u32.
pub const MAGIC: [u8; 4] = *b"CICR";
/// Bytes before the payload.
pub const HEADER_LEN: usize = 20;

/// Appends one framed record to `out`.
pub fn encode(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    let start = begin(out);
    out.extend_from_slice(payload);
    seal(seq, start, out);
}

/// Starts a frame at the end of `out` (the magic, then room for the rest of the header) and
/// answers where; the caller appends the payload, then [`seal`]s it.
pub fn begin(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[0; HEADER_LEN - 4]);
    start
}

/// Frames, in place, the payload appended after [`begin`] at `out[start..]`: fills in its
/// length, `seq` and checksum.
pub fn seal(seq: u64, start: usize, out: &mut [u8]) {
    let len = (out.len() - start - HEADER_LEN) as u32;
    let c = crc(len, seq, &out[start + HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
    out[start + 8..start + 16].copy_from_slice(&seq.to_le_bytes());
    out[start + 16..start + 20].copy_from_slice(&c.to_le_bytes());
}

/// The frame's checksum.
pub fn crc(len: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut head = [0u8; 12];
    head[..4].copy_from_slice(&len.to_le_bytes());
    head[4..].copy_from_slice(&seq.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&head), payload)
}

/// Bytes a record takes on disk.
pub fn framed_len(payload_len: usize) -> u64 {
    (HEADER_LEN + payload_len) as u64
}

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Payload length.
    pub len: u32,
    /// Sequence number.
    pub seq: u64,
    /// Stored checksum.
    pub crc: u32,
}

/// Parses a header; `None` when the magic is wrong or `len` is beyond `max_len`.
pub fn header(bytes: &[u8; HEADER_LEN], max_len: u32) -> Option<Header> {
    if bytes[..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(bytes[4..8].try_into().ok()?);
    let seq = u64::from_le_bytes(bytes[8..16].try_into().ok()?);
    let crc = u32::from_le_bytes(bytes[16..20].try_into().ok()?);
    (len <= max_len).then_some(Header { len, seq, crc })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_detects_flips() {
        let mut out = Vec::new();
        encode(42, b"hello", &mut out);
        let h = header(out[..HEADER_LEN].try_into().unwrap(), 1024).unwrap();
        assert_eq!((h.len, h.seq), (5, 42));
        assert_eq!(h.crc, crc(5, 42, b"hello"));
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x40;
            let ok = header(bad[..HEADER_LEN].try_into().unwrap(), 1024).is_some_and(|h| {
                h.crc == crc(h.len, h.seq, &bad[HEADER_LEN..]) && h.len as usize == bad.len() - HEADER_LEN
            });
            assert!(!ok, "flip at byte {i} went unnoticed");
        }
    }
}
