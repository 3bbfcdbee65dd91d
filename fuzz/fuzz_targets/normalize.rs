//! Structure-aware: sequences of interaction changes (a few ids, the mapped attributes with
//! plausible and odd values, leaving the watched queues) through the normalizer. It never
//! panics, and every event it makes encodes and decodes to itself.
#![no_main]

use cic_conduit::config::NormalizeConfig;
use cic_conduit::event::EventCodec;
use cic_conduit::metrics::Metrics;
use cic_conduit::normalize::attrs::NAMES;
use cic_conduit::normalize::{Normalizer, Observation, Undo};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

const VALUES: [&str; 16] = [
    "A",
    "C",
    "H",
    "M",
    "O",
    "P",
    "R",
    "X",
    "S",
    "I",
    "E",
    "",
    "+13175551234",
    "20240409T140311Z",
    "Support",
    "jdoe",
];

#[derive(Debug, Arbitrary)]
struct Change {
    id: u8,
    attrs: Vec<(u8, u8, Option<String>)>,
    left: bool,
    found: bool,
    at: u16,
}

fuzz_target!(|changes: Vec<Change>| {
    let metrics = Metrics::new();
    let mut n = Normalizer::new("cic", &NormalizeConfig::default(), metrics.normalize.clone());
    let codec = EventCodec::new();
    for (i, c) in changes.iter().take(200).enumerate() {
        let attributes = c
            .attrs
            .iter()
            .take(16)
            .map(|(k, v, raw)| {
                let name = NAMES[usize::from(*k) % NAMES.len()];
                let value = raw
                    .clone()
                    .unwrap_or_else(|| VALUES[usize::from(*v) % VALUES.len()].to_string());
                (name.into(), value.into())
            })
            .collect();
        let obs = Observation {
            interaction_id: format!("10000000{:02}", c.id % 8).into(),
            attributes,
            observed_at_ms: Some(1_700_000_000_000 + i as i64 * 1000 + i64::from(c.at)),
            left: c.left,
            found: c.found,
        };
        let mut out = Vec::new();
        n.observe(
            &obs,
            1_700_000_000_000 + i as i64 * 1000,
            &mut out,
            &mut Undo::default(),
        );
        for ev in out {
            let mut bytes = Vec::new();
            codec.encode_into(&ev, &mut bytes);
            assert_eq!(codec.decode(&bytes).expect("and decodes"), ev);
        }
    }
});
