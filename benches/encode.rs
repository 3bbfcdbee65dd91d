//! Avro encoding of a typical InteractionEvent: the direct serde path the conduit uses, and the
//! generic `Value` path it avoids, for comparison.
//!
//! `cargo bench --bench encode` (target: at least 1,000,000 events/s on one core).

// The allocator the cic-conduit binary runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;

use apache_avro::writer::datum::GenericDatumWriter;
use cic_conduit::event::codec::SCHEMA;
use cic_conduit::event::{Customer, Direction, EventCodec, EventType, Interaction, InteractionEvent, MediaType, State};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn typical() -> InteractionEvent {
    InteractionEvent {
        event_id: "2f0a7f38-6c0e-5a51-9d0c-8f1e4b2c7a10".into(),
        event_type: EventType::Connected,
        occurred_at: 1_712_671_391_000,
        observed_at: 1_712_671_391_120,
        cic_server: "cic01".into(),
        interaction: Interaction {
            call_id_key: "100265870720240409".into(),
            call_id: "1002658707".into(),
            media_type: Some(MediaType::Call),
            direction: Some(Direction::Inbound),
            state: Some(State::Connected),
            workgroup: Some("Support".into()),
            agent: Some("jdoe".into()),
            local_address: Some("+13175550100".into()),
            remote_address: Some("+13175551234".into()),
            remote_name: Some("Pat Customer".into()),
            initiated_at: Some(1_712_671_380_000),
            terminated_at: None,
            connected_duration_ms: None,
        },
        customer: Customer {
            phone: Some("+13175551234".into()),
            email: None,
            caller_id_withheld: false,
        },
        attributes: BTreeMap::from([("AccountTier".to_string(), "gold".to_string())]),
    }
}

fn bench(c: &mut Criterion) {
    let codec = EventCodec::new();
    let ev = typical();
    let mut g = c.benchmark_group("avro_encode");
    g.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(512);
    g.bench_function("direct_serde_reused_buffer", |b| {
        b.iter(|| {
            buf.clear();
            codec.encode_into(std::hint::black_box(&ev), &mut buf).unwrap();
            std::hint::black_box(buf.len())
        })
    });
    let writer = GenericDatumWriter::builder(&SCHEMA).build().unwrap();
    g.bench_function("via_value_for_comparison", |b| {
        b.iter(|| {
            let v = apache_avro::to_value(std::hint::black_box(&ev))
                .unwrap()
                .resolve(&SCHEMA)
                .unwrap();
            std::hint::black_box(writer.write_value_to_vec(v).unwrap().len())
        })
    });
    g.finish();
    let bytes = codec.encode(&ev).unwrap();
    c.bench_function("avro_decode", |b| {
        b.iter(|| codec.decode(std::hint::black_box(&bytes)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
