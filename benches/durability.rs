//! Durability benchmarks, measured in one run so the ratios compare like with like:
//!
//! 1. Group commit: `persist = fsync` with 64 concurrent writers of ~200-byte records, against a
//!    bare "write + fdatasync" loop on the same disk with the same batch size (64 records a
//!    sync), run alternately in each round: over a preallocated file (what the buffer's segments
//!    are; target: at least 80% of its records/s) and appending to a growing file. Then the same
//!    writers with `persist = flush`: the time an append costs on the critical path when no sync
//!    is waited for (target: under 0.5 µs).
//! 2. Re-open: a 4 GB backlog is opened in a fresh process. Target: ready in under 1 s with
//!    resident memory under 64 MiB.
//!
//! `cargo bench --bench durability` (under `cargo test` it runs a small smoke version).
//! `BENCH_SECS` sets each run's seconds (5), `BENCH_SKIP_REOPEN=1` leaves out the re-open,
//! `BENCH_WORKERS` the runtime's worker threads (2), `BENCH_ONLY=flush` runs only the
//! `persist = flush` measurement (for profiling it).
//!
//! Each round also splits a group's cycle into the mean sync and the rest (for the buffer: the
//! answered appenders coming back with their next record, and the group's write), and the run
//! measures what one cross-thread wake-up costs on this machine, which the rest is made of.

// The allocator the cic-conduit binary runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cic_conduit::buffer::{Buffer, DiskBuffer, Entry, Kind, frame, segment};
use cic_conduit::config::{BufferConfig, PersistPolicy};
use cic_conduit::metrics::Metrics;

const WRITERS: usize = 64;
const RECORD: usize = 180; // + 13 bytes of envelope and 20 of frame = 213 bytes on disk

/// A keyless record of `len` bytes.
fn entry(len: usize) -> Entry {
    Entry::new(Kind::Interaction, bytes::Bytes::new(), vec![0x5au8; len])
}

fn full_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Size of the bare loop's preallocated file (the buffer's default segment size).
const PREALLOCATED: u64 = 64 << 20;

/// The bare loop: one thread, 64 records framed into one write, then fdatasync. Appending to a
/// growing file, or (`preallocated`) overwriting a zero-filled one from the start, round again.
/// Records a second and the mean sync in milliseconds.
fn bare_loop(dir: &Path, secs: f64, preallocated: bool) -> (f64, f64) {
    let path = dir.join("bare.log");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    if preallocated {
        f.write_all(&vec![0u8; PREALLOCATED as usize]).unwrap();
        f.sync_all().unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
    }
    let mut at = 0;
    // The same bytes a buffer record of RECORD bytes takes (its envelope included).
    let payload = vec![0x5au8; entry(RECORD).stored_len()];
    let mut buf = Vec::with_capacity(WRITERS * 240);
    let start = Instant::now();
    let mut records = 0u64;
    let mut seq = 0;
    let mut syncing = Duration::ZERO;
    while start.elapsed().as_secs_f64() < secs {
        buf.clear();
        for _ in 0..WRITERS {
            frame::encode(seq, &payload, &mut buf);
            seq += 1;
        }
        if preallocated && at + buf.len() as u64 > PREALLOCATED {
            f.seek(SeekFrom::Start(0)).unwrap();
            at = 0;
        }
        f.write_all(&buf).unwrap();
        at += buf.len() as u64;
        let t = Instant::now();
        f.sync_data().unwrap();
        syncing += t.elapsed();
        records += WRITERS as u64;
    }
    let rate = records as f64 / start.elapsed().as_secs_f64();
    std::fs::remove_file(path).unwrap();
    let sync_ms = 1000.0 * syncing.as_secs_f64() / (records / WRITERS as u64) as f64;
    (rate, sync_ms)
}

/// One thread wakes another that is parked (as the writer wakes the runtime after a sync, and
/// the runtime its second worker): microseconds the waker spends in `unpark`, and from the start
/// of a wake until the woken thread runs. Means over `n` wakes, each after the sleeper has been
/// idle (a wake the sleeper finds already overwritten by the next is left out of the second).
fn wake_up(n: u32) -> (f64, f64) {
    let base = Instant::now();
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sleeper = {
        let (sent, done) = (sent.clone(), done.clone());
        std::thread::spawn(move || {
            let (mut late, mut woken) = (Duration::ZERO, 0u32);
            while !done.load(Ordering::Acquire) {
                std::thread::park();
                let at = sent.swap(0, Ordering::AcqRel);
                if at != 0 {
                    late += base.elapsed().saturating_sub(Duration::from_nanos(at));
                    woken += 1;
                }
            }
            (late, woken)
        })
    };
    let mut unparking = Duration::ZERO;
    for _ in 0..n {
        // Idle long enough for the sleeper's core to go idle, as the runtime's do during a sync.
        std::thread::sleep(Duration::from_micros(200));
        let at = base.elapsed();
        sent.store(at.as_nanos() as u64, Ordering::Release);
        sleeper.thread().unpark();
        unparking += base.elapsed() - at;
    }
    done.store(true, Ordering::Release);
    sleeper.thread().unpark();
    let (late, woken) = sleeper.join().unwrap();
    let us = |d: Duration, n: u32| 1e6 * d.as_secs_f64() / f64::from(n.max(1));
    (us(unparking, n), us(late, woken))
}

/// What a run of the buffer measured.
struct Run {
    /// Records a second.
    rate: f64,
    /// Records a write (a sync, with `persist = fsync`).
    mean_batch: f64,
    /// Milliseconds a sync.
    mean_sync_ms: f64,
    /// Cores the whole process used (of the machine's two).
    cores: f64,
}

/// The buffer: 64 tasks, each appending one record at a time and waiting for its sync.
fn group_commit(dir: &Path, secs: f64, persist: PersistPolicy) -> Run {
    let metrics = Metrics::new();
    let cfg = BufferConfig {
        persist,
        ..BufferConfig::with_dir(dir.join(format!("gc-{persist:?}")))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::env::var("BENCH_WORKERS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2),
        )
        .enable_all()
        .build()
        .unwrap();
    // Opened within the runtime, as the conduit does, so appends are answered from it.
    let buf = Arc::new(
        rt.block_on(async { DiskBuffer::open(&cfg, metrics.buffer.clone()) })
            .unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = common::cpu_secs("self");
    let start = Instant::now();
    let count: u64 = rt.block_on(async {
        let tasks: Vec<_> = (0..WRITERS)
            .map(|_| {
                let (buf, stop) = (buf.clone(), stop.clone());
                // Each writer counts for itself: a shared counter would measure its own contention.
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        buf.append(vec![entry(RECORD)]).await.unwrap();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        stop.store(true, Ordering::Relaxed);
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    let elapsed = start.elapsed().as_secs_f64();
    let cores = (common::cpu_secs("self") - cpu0) / elapsed;
    let rate = count as f64 / elapsed;
    let h = &metrics.buffer.batch_records;
    let mean_batch = h.get_sample_sum() / h.get_sample_count().max(1) as f64;
    let f = &metrics.buffer.fsync_seconds;
    let mean_sync_ms = 1000.0 * f.get_sample_sum() / f.get_sample_count().max(1) as f64;
    Run {
        rate,
        mean_batch,
        mean_sync_ms,
        cores,
    }
}

/// Writes a backlog of about `bytes` with `persist = flush` (this is set-up, not measured), then
/// adds an active segment that is all zeros, as `persist = fsync` leaves one just after a roll
/// into a preallocated spare: the reopen scans all of it.
fn write_backlog(data: &Path, bytes: u64) {
    let cfg = BufferConfig {
        persist: PersistPolicy::Flush,
        max_bytes: bytes * 2,
        ..BufferConfig::with_dir(data)
    };
    let buf = DiskBuffer::open(&cfg, Metrics::new().buffer).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let batch: Vec<Entry> = vec![entry(RECORD); 4096];
    let per_batch = frame::framed_len(entry(RECORD).stored_len()) * batch.len() as u64;
    for _ in 0..bytes / per_batch {
        rt.block_on(buf.append(batch.clone())).unwrap();
    }
    let next_seq = buf.stats().next_seq;
    rt.block_on(buf.close()).unwrap();
    // The worst case for the reopen: the active segment is a fresh spare, all zeros.
    let path = data.join("buffer").join(segment::file_name(next_seq));
    std::fs::write(&path, vec![0u8; cfg.segment_max_bytes as usize]).unwrap();
    std::fs::File::open(&path).unwrap().sync_all().unwrap();
}

/// In a fresh process: open the backlog, report time and peak resident memory.
fn reopen_child(data: &Path) {
    let base = rss_kib("VmRSS:");
    let start = Instant::now();
    let buf = DiskBuffer::open(&BufferConfig::with_dir(data), Metrics::new().buffer).unwrap();
    let elapsed = start.elapsed();
    let st = buf.stats();
    println!(
        "{} {} {} {} {}",
        elapsed.as_secs_f64(),
        rss_kib("VmHWM:"),
        base,
        st.backlog_records,
        st.bytes
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--reopen-child") {
        reopen_child(Path::new(&args[i + 1]));
        return;
    }
    let full = full_mode();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let secs = match std::env::var("BENCH_SECS").ok().and_then(|v| v.parse().ok()) {
        Some(s) => s,
        None if full => 5.0,
        None => 0.5,
    };

    // Alternate the three so that the disk's drift over time hits all alike.
    let rounds = match std::env::var("BENCH_ONLY").as_deref() {
        Ok("flush") => 0,
        _ if full => 3,
        _ => 1,
    };
    println!(
        "group commit, persist=fsync, {WRITERS} writers, {RECORD}+{}+20-byte records (payload, envelope, frame), {rounds} x {secs} s each:",
        entry(RECORD).stored_len() - RECORD
    );
    let (mut pre_sum, mut bare_sum, mut gc_sum) = (0.0, 0.0, 0.0);
    for round in 1..=rounds {
        let (pre, pre_sync_ms) = bare_loop(dir.path(), secs, true);
        let (bare, _) = bare_loop(dir.path(), secs, false);
        let Run {
            rate: gc,
            mean_batch,
            mean_sync_ms: sync_ms,
            ..
        } = group_commit(dir.path(), secs, PersistPolicy::Fsync);
        pre_sum += pre;
        bare_sum += bare;
        gc_sum += gc;
        println!(
            "  round {round}: bare write+fdatasync loop ({WRITERS} records/sync) over a preallocated file {pre:>8.0} records/s, \
             appending to a growing file {bare:>8.0}; buffer {gc:>8.0} records/s (mean {mean_batch:.1} records/sync, \
             mean sync {sync_ms:.3} ms): ratios {:.2} and {:.2}",
            gc / pre,
            gc / bare
        );
        // A cycle is one group: its sync and everything else until the next sync starts.
        let rest = |rate: f64, batch: f64, sync_ms: f64| 1e6 * batch / rate - 1000.0 * sync_ms;
        println!(
            "    a cycle: bare loop over the preallocated file {:.0} us sync + {:.1} us the rest (framing, write); \
             buffer {:.0} us sync + {:.1} us the rest (answers, appenders back, framing, write)",
            1000.0 * pre_sync_ms,
            rest(pre, WRITERS as f64, pre_sync_ms),
            1000.0 * sync_ms,
            rest(gc, mean_batch, sync_ms)
        );
    }
    if rounds > 0 {
        println!(
            "  ratio buffer / bare loop over a preallocated file (as the buffer's segments are), all rounds: {:.2} (target >= 0.80)",
            gc_sum / pre_sum
        );
        println!(
            "  ratio buffer / bare loop appending to a growing file, all rounds: {:.2} (target >= 0.80)",
            gc_sum / bare_sum
        );
    }
    let flush = group_commit(dir.path(), secs / 2.0, PersistPolicy::Flush);
    println!(
        "  for scale: the same {WRITERS} writers with persist=flush (no sync at all): {:.0} records/s \
         (mean {:.1} records a write, the process at {:.2} cores), i.e. {:.2} us per append on the critical path (target < 0.5)",
        flush.rate,
        flush.mean_batch,
        flush.cores,
        1e6 / flush.rate
    );
    let (unpark_us, late_us) = wake_up(if full { 2000 } else { 100 });
    println!(
        "  a cross-thread wake-up on this machine: {unpark_us:.1} us in unpark, the woken thread running {late_us:.1} us after it began"
    );

    if std::env::var_os("BENCH_SKIP_REOPEN").is_some() {
        return;
    }
    let backlog: u64 = if full { 4 << 30 } else { 8 << 20 };
    let data = dir.path().join("backlog");
    let t = Instant::now();
    write_backlog(&data, backlog);
    println!(
        "wrote a {:.2} GiB backlog in {:.1} s",
        backlog as f64 / (1u64 << 30) as f64,
        t.elapsed().as_secs_f64()
    );
    // Drop the page cache where permitted, so the reopen reads from disk.
    let dropped = std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--reopen-child")
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<f64> = text.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    assert_eq!(
        f.len(),
        5,
        "child said: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "re-open of {:.0} records ({:.2} GiB){}: ready in {:.3} s, peak resident {:.1} MiB (process start {:.1} MiB) (targets < 1 s, < 64 MiB)",
        f[3],
        f[4] / (1u64 << 30) as f64,
        if dropped { ", page cache dropped" } else { "" },
        f[0],
        f[1] / 1024.0,
        f[2] / 1024.0
    );
}
