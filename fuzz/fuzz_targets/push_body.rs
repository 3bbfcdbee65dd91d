//! Push bodies (a JSON array or NDJSON, optionally gzip): the decoder and the item validation
//! never panic, gzip never decompresses past its limit, and what is accepted is within bounds.
#![no_main]

use cic_conduit::source::push::{self, BodyError, EARLIEST_OBSERVED_MS, MAX_ID_LEN};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let decoded = if mode & 1 == 1 {
        match push::gunzip(body, LIMIT) {
            Ok(d) => {
                assert!(d.len() <= LIMIT);
                d
            }
            Err(BodyError::TooLarge { .. } | BodyError::BadGzip(_)) => return,
            Err(e) => panic!("unexpected gzip error {e:?}"),
        }
    } else {
        body.to_vec()
    };
    if let Ok(items) = push::parse(&decoded, 100) {
        assert!(!items.is_empty() && items.len() <= 100);
        for o in items {
            assert!(!o.interaction_id.trim().is_empty() && o.interaction_id.len() <= MAX_ID_LEN);
            assert!(o.observed_at_ms.is_none_or(|ms| ms >= EARLIEST_OBSERVED_MS));
        }
    }
});
