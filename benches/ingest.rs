//! The ingest path's CPU per item, stage by stage, on a push body of 500 interaction changes
//! (the load benchmark's bodies: five changes to each of 100 new interactions):
//! - `parse`: the body's bytes to checked observations;
//! - `normalize_to_records`: the observations to Avro records, the ingest path (the normalizer
//!   encodes each event straight from its tracked state; a fresh normalizer per body, so every
//!   interaction is new, as in the load benchmark);
//! - `normalize_to_events`: the same to owned interaction events instead (what tests and tools
//!   get), for comparison;
//! - `encode`: owned events to Avro records.
//!
//! `cargo bench --bench ingest`. The end-to-end figure (HTTP body to synced record, with the
//! HTTP server and the buffer) is `cargo bench --bench load`.

// The allocator the cic-conduit binary runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/common/mod.rs"]
mod common;

use cic_conduit::config::NormalizeConfig;
use cic_conduit::event::{EventCodec, EventSink, EventView};
use cic_conduit::metrics::Metrics;
use cic_conduit::normalize::{Normalizer, Undo};
use cic_conduit::source::push;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const ITEMS: u64 = 500;

fn bench(c: &mut Criterion) {
    let body = common::load_body(1, 7, ITEMS);
    let observations = push::parse(body.as_bytes(), 10_000).unwrap();
    let metrics = Metrics::new();
    let cfg = NormalizeConfig::default();
    let now = cic_conduit::timefmt::now_ms();
    let events = {
        let mut n = Normalizer::new("bench", &cfg, metrics.normalize.clone());
        let mut out = Vec::new();
        for o in &observations {
            n.observe(o, now, &mut out, &mut Undo::default());
        }
        out
    };
    let codec = EventCodec::new();
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(ITEMS));
    g.bench_function("parse_500_items", |b| {
        b.iter(|| {
            push::parse(std::hint::black_box(body.as_bytes()), 10_000)
                .unwrap()
                .len()
        })
    });
    g.bench_function("normalize_to_records_500_items", |b| {
        b.iter_batched_ref(
            || {
                (
                    Normalizer::new("bench", &cfg, metrics.normalize.clone()),
                    Records(&codec, Vec::with_capacity(1024)),
                )
            },
            |(n, out)| {
                let mut undo = Undo::default();
                for o in &observations {
                    n.observe(o, now, out, &mut undo);
                }
                out.1.len()
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("normalize_to_events_500_items", |b| {
        b.iter_batched_ref(
            || {
                (
                    Normalizer::new("bench", &cfg, metrics.normalize.clone()),
                    Vec::with_capacity(1024),
                )
            },
            |(n, out)| {
                let mut undo = Undo::default();
                for o in &observations {
                    n.observe(o, now, out, &mut undo);
                }
                out.len()
            },
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function(format!("encode_{}_events", events.len()), |b| {
        let mut buf = Vec::with_capacity(512);
        b.iter(|| {
            let mut bytes = 0;
            for ev in &events {
                buf.clear();
                codec.encode_into(ev, &mut buf);
                bytes += buf.len();
            }
            bytes
        })
    });
    g.finish();
}

/// Encoded records, as the ingest path makes them.
struct Records<'c>(&'c EventCodec, Vec<Vec<u8>>);

impl EventSink for Records<'_> {
    fn event(&mut self, ev: &EventView<'_>) {
        let mut out = Vec::with_capacity(320);
        self.0.encode_view(ev, &mut out);
        self.1.push(out);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
