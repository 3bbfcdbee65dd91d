//! User sync, end to end: the real `cic-conduit` binary reading the CIC simulator's directory and
//! writing to the Genesys Cloud simulator's SCIM users over loopback.
//!
//! `cargo bench --bench users -- [--users N] [--rpm R] [--edits E]` runs, in one organization:
//! - `sync`: the initial sync of `--users` (10,000) CIC users at `--rpm` (6,000) requests a
//!   minute. Targets: at least 95% of the rate-limit ceiling, under 1% of requests answered 429.
//! - `edit`: `--edits` (100) edits in CIC, one at a time, each timed until the cloud user has it.
//!   Target: p99 under 5 s.
//! - `reconcile`: a restart, whose reconcile of the unchanged directory sends no write and reads
//!   at most ⌈users / 25⌉ pages.
//!
//! Without `--bench` (under `cargo test`) it runs briefly as a smoke test.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cic_conduit::shutdown::Shutdown;
use cic_conduit::sim::cloud::{CloudSim, SimConfig};
use common::arg;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cic-conduit");

fn stop(child: &mut Child) {
    common::terminate(child);
    assert!(child.wait().unwrap().success());
}

async fn health(addr: &str) -> Value {
    serde_json::from_str(&common::get_text(&format!("http://{addr}/health")).await).unwrap_or_default()
}

fn start(config: &Path) -> (Child, String) {
    common::spawn_conduit_env(BIN, config, &[("BENCH_CIC_PASSWORD", "sim-password")])
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let users = arg("--users", if full { 10_000 } else { 200 });
    let rpm = arg("--rpm", if full { 6_000 } else { 60_000 });
    let edits = arg("--edits", if full { 100 } else { 10 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(users, rpm, edits));
}

async fn run(users: u64, rpm: u64, edits: u64) {
    let stop_sims = Shutdown::new();
    let (cic, cic_addr) = common::cic_with_users(users, stop_sims.clone()).await;
    let cloud: Arc<CloudSim> = CloudSim::new(SimConfig {
        requests_per_minute: rpm,
        ..SimConfig::default()
    });
    let cloud_addr = cloud
        .spawn("127.0.0.1:0".parse().unwrap(), stop_sims.clone())
        .await
        .unwrap();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = dir.path().join("users.toml");
    let text = common::cloud_config_text(&dir.path().join("data"), cloud_addr, "")
        .replace("level = \"info\"", "level = \"warn,cic_conduit::app=info\"")
        .replace("[sources.http]", "[sources.http]\nenabled = false")
        + &common::user_sync_sections(cic_addr, "BENCH_CIC_PASSWORD");
    std::fs::write(&config, &text).unwrap();

    // sync
    let started = Instant::now();
    let (mut child, addr) = start(&config);
    let mut last_log = Instant::now();
    // The rate limit applies from the first request to the organization.
    let mut first_request: Option<Instant> = None;
    loop {
        if first_request.is_none() && cloud.report().api_requests > 0 {
            first_request = Some(Instant::now());
        }
        let h = health(&addr).await;
        if h["users"]["synced"] == users && !h["users"]["last_reconcile"].is_null() {
            break;
        }
        if last_log.elapsed() > Duration::from_secs(10) {
            println!(
                "sync: {} of {users} synced after {:.0} s",
                h["users"]["synced"],
                started.elapsed().as_secs_f64()
            );
            last_log = Instant::now();
        }
        assert!(started.elapsed() < Duration::from_secs(7200), "sync stalled: {h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = started.elapsed().as_secs_f64();
    let secs = first_request.map_or(total, |t| t.elapsed().as_secs_f64());
    let r = cloud.report();
    let requests = r.api_requests;
    let ceiling = rpm as f64 / 60.0;
    let rate = requests as f64 / secs;
    println!(
        "sync: {users} users in {total:.1} s from start ({:.1} s before the first request: start-up, login, directory read); {requests} requests ({} list pages, {} creates) in {secs:.1} s = {rate:.1}/s; ceiling {ceiling:.1}/s ({rpm}/min): {:.3} of the ceiling (target >= 0.95)",
        total - secs,
        r.scim_list_requests,
        r.scim_users_created,
        rate / ceiling
    );
    println!(
        "sync: {} answered 429 = {:.4} of requests (target < 0.01); cloud users {}",
        r.rate_limited,
        r.rate_limited as f64 / requests.max(1) as f64,
        cloud.scim_users().len()
    );
    assert_eq!(r.scim_users_created, users);

    // edit
    let mut latencies = Vec::new();
    for k in 0..edits {
        let i = (k * 7919) % users;
        let mobile = format!("317556{:04}", k);
        let want = format!("+1{mobile}");
        let t = Instant::now();
        cic.set_user(common::cic_user(i, &mobile));
        let id = format!("agent{i:05}");
        loop {
            let has = cloud.scim_user(&id).is_some_and(|u| {
                u["phoneNumbers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["type"] == "mobile" && p["value"] == want.as_str())
            });
            if has {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "edit {k} never reached the cloud"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(t.elapsed().as_secs_f64());
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1];
    println!(
        "edit: {edits} edits, CIC to cloud p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms = {:.3} of the 5 s target",
        at(0.5) * 1000.0,
        at(0.99) * 1000.0,
        at(1.0) * 1000.0,
        at(0.99) / 5.0
    );

    // reconcile
    let before = cloud.report();
    let last = health(&addr).await["users"]["last_reconcile"].clone();
    stop(&mut child);
    let started = Instant::now();
    let (mut child, addr) = start(&config);
    let (mut first_page, mut last_page) = (None, None);
    loop {
        let pages = cloud.report().scim_list_requests - before.scim_list_requests;
        if pages > 0 && first_page.is_none() {
            first_page = Some(started.elapsed().as_secs_f64());
        }
        if pages >= users.div_ceil(25) && last_page.is_none() {
            last_page = Some(started.elapsed().as_secs_f64());
        }
        let h = health(&addr).await;
        if !h["users"]["last_reconcile"].is_null() && h["users"]["last_reconcile"] != last {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(3600), "reconcile stalled: {h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let after = cloud.report();
    let writes = (after.scim_users_created + after.scim_users_patched + after.scim_users_deleted)
        - (before.scim_users_created + before.scim_users_patched + before.scim_users_deleted);
    let pages = after.scim_list_requests - before.scim_list_requests;
    let bound = users.div_ceil(25);
    println!(
        "reconcile: unchanged {users}-user directory in {secs:.1} s: {writes} writes (target 0), {pages} pages read = {:.3} of ⌈{users}/25⌉ = {bound}",
        pages as f64 / bound as f64
    );
    println!(
        "reconcile: first page {:.1} s after start, last page {:.1} s, done {secs:.1} s",
        first_page.unwrap_or(0.0),
        last_page.unwrap_or(0.0)
    );
    stop(&mut child);
    assert_eq!(writes, 0);
    assert!(pages <= bound);
}
