//! Delivery to Genesys Cloud, end to end: the real `cic-conduit` binary delivering to the
//! Genesys Cloud simulator over loopback.
//!
//! `cargo bench --bench delivery -- [drain] [drain-shared] [drain-change] [steady] [idle]` (all
//! when none is named):
//! - `drain`: a backlog of `--events` (200,000) accepted while no sink was configured, then
//!   delivered at `--rpm` (300) requests a minute in batches of 100. Target: at least 99% of the
//!   ceiling (the requests the limit allows from the first request to the last confirmation)
//!   with under 1% of requests answered 429.
//! - `drain-shared`: the same with 40,000 events while the user sync creates `--users` (300)
//!   users through the same OAuth client; the ceiling counts both sinks' requests.
//! - `drain-change`: 100,000 events while the cloud halves its limit in the middle of the second
//!   minute and restores it in the middle of the third; the ceiling is the limit over time.
//! - `steady`: `--rate` (1,000) events a second for `--secs` (30) against a healthy cloud (rate
//!   limit raised to 6,000 a minute). Targets: p99 accept-to-confirm under 1.5 s, the conduit
//!   under 5% of one core.
//! - `idle`: resident memory of a started conduit with nothing to do. Target: under 16 MiB.
//!
//! Without `--bench` (under `cargo test`) each scenario runs briefly as a smoke test.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cic_conduit::shutdown::Shutdown;
use cic_conduit::sim::cloud::{CloudSim, SimConfig};
use common::{TOKEN, arg, cpu_secs, item, spawn_conduit_env};

const BIN: &str = env!("CARGO_BIN_EXE_cic-conduit");

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

struct Bench {
    sim: Arc<CloudSim>,
    sim_addr: std::net::SocketAddr,
    _stop: Shutdown,
    dir: tempfile::TempDir,
}

impl Bench {
    async fn new(rpm: u64) -> Bench {
        let sim = CloudSim::new(SimConfig {
            requests_per_minute: rpm,
            ..SimConfig::default()
        });
        let stop = Shutdown::new();
        let sim_addr = sim.spawn("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
        Bench {
            sim,
            sim_addr,
            _stop: stop,
            dir: tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap(),
        }
    }

    /// A config; with `sink` the journey sink is configured (after `setup`).
    fn config(&self, name: &str, sink: bool) -> PathBuf {
        let path = self.dir.path().join(name);
        let mut text = format!(
            r#"cic_server = "bench"
data_dir = "{d}"
[server]
listen = "127.0.0.1:0"
[log]
format = "json"
level = "warn,cic_conduit::app=info"
[organization]
short_name = "bench"
region = "us-east-1"
api_base_url = "http://{a}"
login_base_url = "http://{a}"
client_id = "sim-client"
client_secret = "sim-secret"
[buffer]
type = "disk"
max_bytes = 21474836480
[normalize]
max_tracked_interactions = 2000000
forget_ended_after_secs = 5
[sources.http]
token = "{TOKEN}"
max_body_bytes = 4194304
"#,
            a = self.sim_addr,
            d = self.dir.path().join("data").display()
        );
        std::fs::write(&path, &text).unwrap();
        if sink {
            let id = common::setup_configuration(BIN, &path, &[]);
            text.push_str(&format!(
                "[sinks.journey]\nconfiguration_id = \"{id}\"\nexternal_source_id = \"bench\"\n"
            ));
            std::fs::write(&path, &text).unwrap();
        }
        path
    }
}

fn stop(child: &mut Child) {
    common::terminate(child);
    assert!(child.wait().unwrap().success());
}

/// Pushes `items` new interactions offered (two events each), in requests of 500.
async fn push_offers(addr: &str, prefix: u64, items: u64) -> u64 {
    let mut events = 0;
    let mut i = 0;
    while i < items {
        let n = (items - i).min(500);
        let body: Vec<serde_json::Value> = (i..i + n).map(|k| item(&format!("{prefix}{k:08}"), "O")).collect();
        events += common::push_items(addr, &body).await;
        i += n;
    }
    events
}

/// What shares the rate limit during a drain.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Drain {
    /// The journey sink alone.
    Alone,
    /// The journey sink and the user sync (SCIM) on one OAuth client.
    Shared,
    /// The journey sink alone while the cloud halves its limit and restores it.
    Change,
}

/// A backlog drained against the rate limit. The ceiling is the number of requests the limit
/// allows from the first request to the last confirmation (the limit over time, when it
/// changes); the figure is the requests the cloud accepted against it.
async fn drain(full: bool, kind: Drain) {
    let (events_default, users) = match kind {
        Drain::Alone => (200_000, 0),
        Drain::Shared => (40_000, arg("--users", if full { 300 } else { 50 })),
        Drain::Change => (100_000, 0),
    };
    let events_wanted = arg("--events", if full { events_default } else { 2_000 });
    let rpm = arg("--rpm", if full { 300 } else { 3_000 });
    let b = Bench::new(rpm).await;
    // Fill the buffer with no sink configured.
    let (mut child, addr) = spawn_conduit_env(BIN, &b.config("fill.toml", false), &[]);
    let accepted = push_offers(&addr, 10, events_wanted / 2).await;
    stop(&mut child);
    let mut config = b.config("drain.toml", true);
    let stop_cic = Shutdown::new();
    if kind == Drain::Shared {
        let (_cic, cic_addr) = common::cic_with_users(users, stop_cic.clone()).await;
        let text =
            std::fs::read_to_string(&config).unwrap() + &common::user_sync_sections(cic_addr, "BENCH_CIC_PASSWORD");
        config = b.dir.path().join("drain-shared.toml");
        std::fs::write(&config, text).unwrap();
    }
    let before = b.sim.report();
    let start = Instant::now();
    let (mut child, addr) = spawn_conduit_env(BIN, &config, &[("BENCH_CIC_PASSWORD", "sim-password")]);
    let cpu0 = cpu_secs(child.id());
    // The rate limit applies from the first request.
    while b.sim.report().api_requests == before.api_requests {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no request reached the cloud"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first = Instant::now();
    // The limit over time: (from, requests a minute).
    let mut limits = vec![(Duration::ZERO, rpm)];
    let window = Duration::from_secs(60);
    // Changes in the middle of the sim's windows (which start at the first request): the half
    // limit cuts the second window short (its count is already at the new limit) and the
    // restored one lets the third catch up by as much, so the ceiling is the limit over time.
    let mut changes = vec![(window * 3 / 2, rpm / 2), (window * 5 / 2, rpm)];
    loop {
        let r = b.sim.report();
        let users_done = users == 0 || {
            let h: serde_json::Value =
                serde_json::from_str(&common::get_text(&format!("http://{addr}/health")).await).unwrap_or_default();
            h["users"]["synced"] == users
        };
        if r.unique_ids >= accepted && users_done {
            break;
        }
        if kind == Drain::Change && changes.first().is_some_and(|(at, _)| first.elapsed() >= *at) {
            let (at, n) = changes.remove(0);
            b.sim.set_requests_per_minute(n);
            limits.push((at, n));
        }
        assert!(start.elapsed() < Duration::from_secs(3600), "drain stalled: {r:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = first.elapsed().as_secs_f64();
    let total = start.elapsed().as_secs_f64();
    let cpu = cpu_secs(child.id()) - cpu0;
    let m = common::get_text(&format!("http://{addr}/metrics")).await;
    stop(&mut child);
    stop_cic.trigger();
    let sum = common::metric(&m, "conduit_sink_batch_events_sum{sink=\"journey\"}");
    let count = common::metric(&m, "conduit_sink_batch_events_count{sink=\"journey\"}");
    let r = b.sim.report();
    let requests = r.api_requests - before.api_requests;
    let limited = r.rate_limited - before.rate_limited;
    // Requests the limit allowed from the first request on.
    let ceiling: f64 = limits
        .iter()
        .enumerate()
        .map(|(i, (from, n))| {
            let to = limits.get(i + 1).map_or(secs, |l| l.0.as_secs_f64()).min(secs);
            (to - from.as_secs_f64()).max(0.0) * *n as f64 / 60.0
        })
        .sum();
    let limit_text = limits
        .iter()
        .map(|(at, n)| format!("{n}/min from {:.0} s", at.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "drain ({kind:?}): {accepted} events{} in {secs:.1} s from the first request ({total:.1} s from start); limit {limit_text}",
        if users > 0 {
            format!(" and {users} users")
        } else {
            String::new()
        }
    );
    println!(
        "drain ({kind:?}): {} requests accepted against a ceiling of {ceiling:.1}: {:.3} of the ceiling (target >= 0.99); \
         {limited} answered 429 = {:.4} of {requests} (target < 0.01)",
        requests - limited,
        (requests - limited) as f64 / ceiling,
        limited as f64 / requests.max(1) as f64
    );
    println!(
        "drain ({kind:?}): {:.1} events a journey request on average; duplicates {}; conduit CPU {cpu:.2} s = {:.3} of one core",
        sum / count.max(1.0),
        r.duplicates,
        cpu / total
    );
    assert_eq!(r.duplicates, 0);
}

/// Quantile `q` from a Prometheus histogram in the text exposition, interpolating in buckets.
fn quantile(text: &str, name: &str, q: f64) -> f64 {
    let prefix = format!("{name}_bucket{{le=\"");
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, count.trim().parse().ok()?))
        })
        .collect();
    let total = buckets.last().map(|b| b.1).unwrap_or(0.0);
    cic_conduit::metrics::bucket_quantile(&buckets, total, q).unwrap_or(0.0)
}

async fn steady(full: bool) {
    let rate = arg("--rate", if full { 1_000 } else { 200 });
    let secs = arg("--secs", if full { 30 } else { 3 });
    let b = Bench::new(6_000).await;
    let (mut child, addr) = spawn_conduit_env(BIN, &b.config("steady.toml", true), &[]);
    let pid = child.id();
    // Warm up (token, first headers), then measure.
    push_offers(&addr, 20, 10).await;
    let sim = b.sim.clone();
    while sim.report().unique_ids < 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu0 = cpu_secs(pid);
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let per_tick = (rate / 20).max(1); // items per 100 ms, two events each
    let mut accepted = 20;
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        accepted += push_offers(&addr, 30 + n, per_tick).await;
        n += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid) - cpu0;
    while sim.report().unique_ids < accepted {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = common::get_text(&format!("http://{addr}/metrics")).await;
    stop(&mut child);
    let name = "conduit_pipeline_accept_to_confirm_seconds";
    let (p50, p99) = (quantile(&m, name, 0.5), quantile(&m, name, 0.99));
    println!(
        "steady: {:.0} events/s for {elapsed:.1} s; accept-to-confirm p50 {:.0} ms, p99 {:.0} ms = {:.2} of the 1.5 s target",
        (accepted - 20) as f64 / elapsed,
        p50 * 1000.0,
        p99 * 1000.0,
        p99 / 1.5
    );
    println!(
        "steady: conduit CPU {cpu:.2} s over {elapsed:.1} s = {:.3} of one core (target < 0.05); requests {}, 429s {}",
        cpu / elapsed,
        sim.report().api_requests,
        sim.report().rate_limited
    );
}

async fn idle(full: bool) {
    let b = Bench::new(300).await;
    let (mut child, addr) = spawn_conduit_env(BIN, &b.config("idle.toml", true), &[]);
    // One event through the whole path, so every part (token, HTTP client, lanes) is live.
    push_offers(&addr, 40, 1).await;
    while b.sim.report().unique_ids < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(if full { 5 } else { 1 })).await;
    let rss = rss_mib(child.id());
    stop(&mut child);
    println!(
        "idle: resident memory {rss:.1} MiB = {:.2} of the 16 MiB goal",
        rss / 16.0
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let named: Vec<String> = std::env::args()
        .filter(|a| ["drain", "drain-shared", "drain-change", "steady", "idle"].contains(&a.as_str()))
        .collect();
    let all = named.is_empty();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if all || named.iter().any(|a| a == "idle") {
            idle(full).await;
        }
        if all || named.iter().any(|a| a == "steady") {
            steady(full).await;
        }
        for (name, kind) in [
            ("drain", Drain::Alone),
            ("drain-shared", Drain::Shared),
            ("drain-change", Drain::Change),
        ] {
            if all || named.iter().any(|a| a == name) {
                drain(full, kind).await;
            }
        }
    });
}
