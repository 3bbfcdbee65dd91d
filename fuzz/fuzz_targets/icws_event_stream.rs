//! The ICWS server-sent-events stream, cut into chunks the fuzzer chooses: never panics, stays
//! within its memory bound, and yields the same events however the bytes are chunked.
#![no_main]

use cic_conduit::source::icws::sse::SseParser;
use libfuzzer_sys::fuzz_target;

const MAX: usize = 4096;

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (cuts, data) = input;
    let mut whole = SseParser::new(MAX);
    let mut expected = Vec::new();
    let whole_ok = whole.feed(&data, &mut expected).is_ok();

    let mut chunked = SseParser::new(MAX);
    let mut got = Vec::new();
    let mut rest: &[u8] = &data;
    let mut chunked_ok = true;
    for c in cuts.iter().cycle().take(data.len() + 1) {
        if rest.is_empty() {
            break;
        }
        let n = (usize::from(*c) % 64 + 1).min(rest.len());
        if chunked.feed(&rest[..n], &mut got).is_err() {
            chunked_ok = false;
            break;
        }
        assert!(chunked.pending() <= MAX + 64);
        rest = &rest[n..];
    }
    if chunked_ok && rest.is_empty() {
        chunked_ok = chunked.feed(&[], &mut got).is_ok();
    }
    if whole_ok && chunked_ok && rest.is_empty() {
        assert_eq!(expected, got);
    }
});
