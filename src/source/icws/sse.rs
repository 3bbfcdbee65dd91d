//! The server-sent-events framing of the ICWS message stream, as a pure, incremental parser.
//!
//! Bytes go in as they arrive; each complete event's `data:` lines come out joined by `\n`
//! (comments such as `:ping` and events without data yield nothing). Lines may end in LF, CRLF
//! or CR-less LF. Promises: the work is linear in the bytes fed however they are chunked (each
//! byte is looked at a bounded number of times), memory is bounded by `max_event` plus one
//! chunk, and no input makes it panic.

/// An event grew past the limit without ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an event exceeds {max} bytes without ending")]
pub struct Oversized {
    /// The limit.
    pub max: usize,
}

/// The incremental parser.
#[derive(Debug)]
pub struct SseParser {
    buf: Vec<u8>,
    /// Where the next event starts in `buf`.
    start: usize,
    /// How far `buf` has been searched for an event's end.
    scanned: usize,
    max_event: usize,
}

impl SseParser {
    /// A parser refusing events larger than `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        SseParser {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            max_event,
        }
    }

    /// Bytes held for an event not yet complete.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Feeds `bytes`; appends the data of every event they complete to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), Oversized> {
        self.buf.extend(bytes.iter().copied().filter(|b| *b != b'\r'));
        loop {
            // An event ends at a blank line: "\n\n". Resume one byte back, in case the first
            // "\n" was the last byte searched before.
            let from = self.scanned.max(self.start + 1) - 1;
            match self.buf[from..].windows(2).position(|w| w == b"\n\n") {
                Some(at) => {
                    let end = from + at;
                    event_data(&self.buf[self.start..end], out);
                    self.start = end + 2;
                    self.scanned = self.start;
                }
                None => {
                    self.scanned = self.buf.len();
                    break;
                }
            }
        }
        // Drop what was consumed once it is most of the buffer (amortized: linear overall).
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        if self.pending() > self.max_event {
            return Err(Oversized { max: self.max_event });
        }
        Ok(())
    }
}

/// The `data:` lines of one event, joined by `\n`, if it has any.
fn event_data(event: &[u8], out: &mut Vec<Vec<u8>>) {
    let mut data: Option<Vec<u8>> = None;
    for line in event.split(|b| *b == b'\n') {
        let Some(d) = line.strip_prefix(b"data:") else { continue };
        let d = d.strip_prefix(b" ").unwrap_or(d);
        match data.as_mut() {
            Some(acc) => {
                acc.push(b'\n');
                acc.extend_from_slice(d);
            }
            None => data = Some(d.to_vec()),
        }
    }
    if let Some(d) = data {
        out.push(d);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn all(input: &[u8], chunk: usize) -> Result<Vec<Vec<u8>>, Oversized> {
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        for c in input.chunks(chunk.max(1)) {
            p.feed(c, &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn events_comments_and_line_endings() {
        let input = b":ping\n\ndata: {\"a\":1}\n\ndata:{\"b\":\r\ndata: 2}\r\n\r\nevent: x\n\n";
        let want = vec![b"{\"a\":1}".to_vec(), b"{\"b\":\n2}".to_vec()];
        for chunk in [1, 2, 3, 7, 100] {
            assert_eq!(all(input, chunk).unwrap(), want, "chunk {chunk}");
        }
    }

    #[test]
    fn an_event_that_never_ends_is_refused_at_the_limit() {
        let mut p = SseParser::new(1000);
        let mut out = Vec::new();
        let mut refused = false;
        for _ in 0..100 {
            if p.feed(&[b'x'; 100], &mut out).is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused);
        assert!(p.pending() <= 1100);
    }

    #[test]
    fn work_is_linear_in_the_input() {
        // 4.8 MB in 100-byte chunks of one event that never ends: each byte is searched once.
        let mut p = SseParser::new(8 << 20);
        let mut out = Vec::new();
        let chunk = [b'y'; 100];
        let t = std::time::Instant::now();
        for _ in 0..48_000 {
            p.feed(&chunk, &mut out).unwrap();
        }
        assert_eq!(p.scanned, 4_800_000);
        // Generous bound (the quadratic parser took tens of seconds here).
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }

    proptest! {
        #[test]
        fn chunking_never_changes_the_events(input in prop::collection::vec(
            prop::sample::select(vec![b'\n', b'\r', b'd', b'a', b't', b':', b' ', b'x']), 0..400),
            chunk in 1usize..50) {
            prop_assert_eq!(all(&input, chunk), all(&input, input.len().max(1)));
        }
    }
}
