//! Disk buffer appends with `persist = flush`: ~200-byte records, in the batches a push request
//! makes, from one task.
//!
//! `cargo bench --bench buffer_append` (target: at least 500,000 records/s on one core).

// The allocator the cic-conduit binary runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cic_conduit::buffer::{Buffer, BufferReader, DiskBuffer, Entry, Kind};
use cic_conduit::config::{BufferConfig, PersistPolicy};
use cic_conduit::metrics::Metrics;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let cfg = BufferConfig {
        persist: PersistPolicy::Flush,
        ..BufferConfig::with_dir(dir.path())
    };
    let buf = DiskBuffer::open(&cfg, Metrics::new().buffer).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let record = vec![0x5au8; 200];
    // Keep the disk footprint bounded: read and acknowledge as the dispatcher would, between
    // measurements (in the untimed set-up).
    let mut reader = buf.disk_reader("bench").unwrap();
    let acker = reader.acker();
    let mut read = Vec::new();
    let mut ack_all = move || {
        read.clear();
        reader.read_available(usize::MAX, &mut read).unwrap();
        acker.ack(&read.iter().map(|r| r.position).collect::<Vec<_>>());
    };
    let mut g = c.benchmark_group("buffer_append_flush");
    for batch in [1usize, 100, 500] {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("batch_{batch}"), |b| {
            b.iter_batched(
                || {
                    ack_all();
                    vec![
                        Entry::new(
                            Kind::Interaction,
                            bytes::Bytes::from_static(b"0123456789-20261130"),
                            record.clone()
                        );
                        batch
                    ]
                },
                |records| {
                    rt.block_on(buf.append(records)).unwrap();
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
