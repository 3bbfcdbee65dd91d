//! ICWS messages as they arrive (JSON of any shape) through the message parser: never panics,
//! and every observation it yields has a bounded interaction id and string attributes.
#![no_main]

use cic_conduit::source::icws::messages;
use cic_conduit::source::push::MAX_ID_LEN;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let p = messages::parse(&v, 1_700_000_000_000);
    for o in &p.observations {
        assert!(!o.interaction_id.is_empty() && o.interaction_id.len() <= MAX_ID_LEN);
    }
});
