//! Avro encoding of a typical InteractionEvent: the hand-written datum the conduit uses, and for
//! comparison apache-avro's two paths to the same bytes — its schema-aware serde serializer and
//! its generic `Value`.
//!
//! `cargo bench --bench encode` (target: at least 1,000,000 events/s on one core).

// The allocator the cic-conduit binary runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use apache_avro::writer::datum::GenericDatumWriter;
use cic_conduit::event::codec::SCHEMA;
use cic_conduit::event::{EventCodec, InteractionEvent};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let codec = EventCodec::new();
    let ev = InteractionEvent::example();
    let mut g = c.benchmark_group("avro_encode");
    g.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(512);
    g.bench_function("written_reused_buffer", |b| {
        b.iter(|| {
            buf.clear();
            codec.encode_into(std::hint::black_box(&ev), &mut buf);
            std::hint::black_box(buf.len())
        })
    });
    let serde = cic_conduit::event::avro::Reference::new();
    g.bench_function("apache_avro_serde_for_comparison", |b| {
        b.iter(|| {
            buf.clear();
            serde.write(std::hint::black_box(&ev), &mut buf);
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
    let bytes = codec.encode(&ev);
    c.bench_function("avro_decode", |b| {
        b.iter(|| codec.decode(std::hint::black_box(&bytes)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
