//! The ICWS source's CPU and memory: ICWS queue messages parsed, checked against the watched
//! queues' membership and normalized on one core, and the memory of many concurrently tracked
//! interactions.
//!
//! `cargo bench --bench icws` (targets: at least 200,000 attribute deltas/s on one core; 50,000
//! tracked interactions in under 100 MiB). Under `cargo test` it runs briefly as a smoke test.

use std::time::Instant;

/// The allocator the `cic-conduit` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cic_conduit::config::NormalizeConfig;
use cic_conduit::metrics::Metrics;
use cic_conduit::normalize::{Normalizer, Undo};
use cic_conduit::source::icws::members::Members;
use cic_conduit::source::icws::messages;

const STATES: [&str; 5] = ["A", "C", "H", "C", "I"];

/// A queue message as ICWS sends it: `added` new interactions (full attributes) and `changed`
/// deltas (one attribute each, as most changes are).
fn message(round: usize, first: usize, added: usize, changed: usize) -> String {
    let mut s = String::from(
        r#"{"__type":"urn:inin.com:queues:queueContentsMessage","isDelta":true,"subscriptionId":"s1","interactionsAdded":["#,
    );
    for i in 0..added {
        let id = format!("{:010}", first + i);
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"interactionId":"{id}","attributes":{{"Eic_CallId":"{id}","Eic_CallIdKey":"{id}20240409","Eic_State":"O","Eic_CallDirection":"I","Eic_ObjectType":"Call","Eic_RemoteAddress":"+1317555{:04}","Eic_RemoteName":"Pat Customer","Eic_LocalAddress":"+13175550100","Eic_WorkgroupName":"Support","Eic_InitiationTime":"20240409T140311Z"}}}}"#,
            i % 10_000
        ));
    }
    s.push_str(r#"],"interactionsChanged":["#);
    for i in 0..changed {
        let id = format!("{:010}", first + i);
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"interactionId":"{id}","attributes":{{"Eic_State":"{}"}}}}"#,
            STATES[round % STATES.len()]
        ));
    }
    s.push_str(r#"],"interactionsRemoved":[]}"#);
    s
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn normalizer() -> Normalizer {
    let cfg = NormalizeConfig {
        default_country_code: Some("1".into()),
        ..NormalizeConfig::default()
    };
    Normalizer::new("cic01", &cfg, Metrics::new().normalize)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let per_msg = 50;

    // Memory first, in a fresh process: this many interactions tracked at once (all offered,
    // none ended).
    let tracked = if full { 50_000 } else { 5_000 };
    let mut n = normalizer();
    let members = Members::default();
    let before = rss_kib();
    let mut out = Vec::new();
    for first in (0..tracked).step_by(per_msg) {
        let v: serde_json::Value = serde_json::from_str(&message(0, first, per_msg, 0)).unwrap();
        let mut undo = Undo::default();
        let parsed = messages::parse(&v, 1);
        let mut left = Vec::new();
        members.apply(&parsed, 1, &mut left);
        for o in parsed.observations.iter().chain(&left) {
            n.observe(o, 1, &mut out, &mut undo);
        }
        out.clear();
    }
    let grown = rss_kib().saturating_sub(before) as f64 / 1024.0;
    assert_eq!((n.tracked(), members.len()), (tracked, tracked));
    println!(
        "{tracked} interactions tracked: resident memory grew {grown:.1} MiB = {:.2} of the 100 MiB limit ({:.0} bytes each)",
        grown / 100.0,
        grown * 1024.0 * 1024.0 / tracked as f64
    );
    drop(n);

    // Throughput: interactions arrive (full snapshot), then go through their states as deltas.
    let interactions = if full { 20_000 } else { 2_000 };
    let mut msgs: Vec<String> = Vec::new();
    for first in (0..interactions).step_by(per_msg) {
        msgs.push(message(0, first, per_msg, 0));
    }
    for round in 0..STATES.len() {
        for first in (0..interactions).step_by(per_msg) {
            msgs.push(message(round, first, 0, per_msg));
        }
    }
    let deltas = (interactions * (1 + STATES.len())) as f64;
    let rounds = if full { 5 } else { 1 };
    let mut best = f64::MAX;
    let mut events = 0;
    for _ in 0..rounds {
        let mut n = normalizer();
        let members = Members::default();
        let mut out = Vec::new();
        let mut left = Vec::new();
        let start = Instant::now();
        for (i, m) in msgs.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(m).unwrap();
            let parsed = messages::parse(&v, 1_712_671_391_000 + i as i64);
            members.apply(&parsed, 1_712_671_391_000 + i as i64, &mut left);
            let mut undo = Undo::default();
            for o in parsed.observations.iter().chain(&left) {
                n.observe(o, 1_712_671_391_000 + i as i64, &mut out, &mut undo);
            }
            events += out.len();
            out.clear();
            left.clear();
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    let rate = deltas / best;
    println!(
        "parse + normalize on one core: {deltas:.0} attribute deltas in {:.3} s = {rate:.0} deltas/s = {:.2} of the 200,000/s target ({} events produced per round)",
        best,
        rate / 200_000.0,
        events / rounds
    );
}
