//! End-to-end load: the real `cic-conduit` binary with `persist = fsync`, pushed to over
//! loopback HTTP by this process with batches of 500 interaction changes.
//!
//! `cargo bench --bench load` (targets: at least 100,000 events/s accepted on a 2-core machine;
//! at most 2.5 µs of the conduit's CPU per event written). The load generator shares the two
//! cores with the conduit.
//! Options after `--`: `--secs N` (default 15), `--clients N` (default 8), `--batch N` (500).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;

use common::{TOKEN, arg, load_body as body};
fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let secs = arg("--secs", if full { 15 } else { 2 });
    let clients = arg("--clients", 8);
    let batch = arg("--batch", 500);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = dir.path().join("conduit.toml");
    std::fs::write(
        &config,
        format!(
            r#"cic_server = "load"
data_dir = "{}"
[server]
listen = "127.0.0.1:0"
[log]
format = "json"
level = "warn,cic_conduit::app=info"
[organization]
short_name = "bench"
region = "us-east-1"
[buffer]
type = "disk"
persist = "fsync"
max_bytes = 21474836480
[normalize]
max_tracked_interactions = 2000000
forget_ended_after_secs = 5
[sources.http]
token = "{TOKEN}"
max_body_bytes = 4194304
"#,
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let (mut child, addr) = common::spawn_conduit(env!("CARGO_BIN_EXE_cic-conduit"), &config);
    let pid = child.id();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let items = Arc::new(AtomicU64::new(0));
    let events = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let cpu0 = common::cpu_secs(pid);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    rt.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let (items, events, refused, addr) = (items.clone(), events.clone(), refused.clone(), addr.clone());
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    let url = format!("http://{addr}/v1/interactions");
                    let mut r = 0;
                    while Instant::now() < deadline {
                        let resp = http
                            .post(&url)
                            .bearer_auth(TOKEN)
                            .body(body(c, r, batch))
                            .send()
                            .await
                            .unwrap();
                        if resp.status().as_u16() == 202 {
                            let v: serde_json::Value = resp.json().await.unwrap();
                            items.fetch_add(v["accepted"].as_u64().unwrap(), Ordering::Relaxed);
                            events.fetch_add(v["events"].as_u64().unwrap(), Ordering::Relaxed);
                        } else {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        r += 1;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = common::cpu_secs(pid) - cpu0;
    common::terminate(&child);
    let status = child.wait().unwrap();
    let n = items.load(Ordering::Relaxed) as f64;
    println!("HTTP push, persist=fsync, {clients} clients, batches of {batch}, {elapsed:.1} s:");
    println!(
        "  accepted {:.0} interaction changes/s ({:.0} events/s written), {} requests refused",
        n / elapsed,
        events.load(Ordering::Relaxed) as f64 / elapsed,
        refused.load(Ordering::Relaxed)
    );
    let written = events.load(Ordering::Relaxed) as f64;
    println!(
        "  conduit CPU: {:.2} cores = {:.2} us per event written (goal <= 2.5); clean exit on SIGTERM: {}",
        cpu / elapsed,
        1e6 * cpu / written.max(1.0),
        status.success()
    );
    assert!(n > 0.0, "nothing was accepted");
}
