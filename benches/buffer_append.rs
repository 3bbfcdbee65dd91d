//! Disk buffer appends with `persist = flush`: ~200-byte records, in the batches a push request
//! makes, from one task.
//!
//! `cargo bench --bench buffer_append` (target: at least 500,000 records/s on one core).

// The allocator the cic-conduit binary runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cic_conduit::buffer::{Buffer, DiskBuffer};
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
    let mut g = c.benchmark_group("buffer_append_flush");
    for batch in [1usize, 100, 500] {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("batch_{batch}"), |b| {
            b.iter_batched(
                || vec![record.clone(); batch],
                |records| {
                    rt.block_on(buf.append(records)).unwrap();
                    // Keep the disk footprint bounded: acknowledge as a sink would.
                    let next = buf.stats().next_seq;
                    buf.ack(0..next);
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
