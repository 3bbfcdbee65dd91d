//! Delivery to Genesys Cloud end to end: the real `cic-conduit` binary, the Genesys Cloud
//! simulator on loopback, and faults injected into it — outages, 429 storms, short-lived tokens,
//! partly refused batches, and a SIGKILL of the conduit in the middle of a drain.
#![cfg(unix)]

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cic_conduit::shutdown::Shutdown;
use cic_conduit::sim::cloud::{CloudSim, FaultUpdate, Received, SimConfig};
use common::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cic-conduit");

/// A simulator, a data dir and a config for a conduit delivering to it.
struct Rig {
    sim: Arc<CloudSim>,
    sim_addr: SocketAddr,
    _sim_stop: Shutdown,
    dir: tempfile::TempDir,
    config: PathBuf,
    /// Conduits started, stopped on drop so a failing test leaves no process behind.
    pids: std::sync::Mutex<Vec<KillOnDrop>>,
}

impl Rig {
    async fn new(sim_cfg: SimConfig, sink_extra: &str) -> Rig {
        let sim = CloudSim::new(sim_cfg);
        let stop = Shutdown::new();
        let sim_addr = sim.spawn("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("conduit.toml");
        let rig = Rig {
            sim,
            sim_addr,
            _sim_stop: stop,
            dir,
            config,
            pids: Default::default(),
        };
        std::fs::write(&rig.config, rig.text(None, "")).unwrap();
        let id = setup(&rig.config);
        std::fs::write(&rig.config, rig.text(Some(&id), sink_extra)).unwrap();
        rig
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn text(&self, configuration_id: Option<&str>, sink_extra: &str) -> String {
        let base = config_text(&self.data(), "", "");
        let org = format!(
            "api_base_url = \"http://{a}\"\nlogin_base_url = \"http://{a}\"\nclient_id = \"sim-client\"\nclient_secret = {{ env = \"TEST_SIM_SECRET\" }}\n",
            a = self.sim_addr
        );
        let base = base
            .replace("api_base_url = \"http://127.0.0.1:9\"\n", "")
            .replace("login_base_url = \"http://127.0.0.1:9\"\n", &org);
        match configuration_id {
            None => base,
            Some(id) => format!(
                "{base}\n[sinks.journey]\nconfiguration_id = \"{id}\"\nexternal_source_id = \"cic-test\"\nretry_max_ms = 2000\n{sink_extra}\n"
            ),
        }
    }

    /// Starts a conduit, delivers `n` interaction lifecycles through it, and waits until the
    /// simulator has them all; returns the conduit, its address and the events delivered.
    async fn start_delivering(&self, prefix: &str, n: usize) -> (Child, String, u64) {
        let (child, addr) = self.spawn();
        let events = push_lifecycles(&addr, prefix, n).await;
        let sim = self.sim.clone();
        wait_for(Duration::from_secs(20), "first delivery", || {
            sim.report().unique_ids == events
        })
        .await;
        (child, addr, events)
    }

    fn spawn(&self) -> (Child, String) {
        let (child, addr) = spawn_conduit_env(BIN, &self.config, &[("TEST_SIM_SECRET", "sim-secret")]);
        self.pids.lock().unwrap().push(KillOnDrop(child.id()));
        (child, addr)
    }
}

/// `cic-conduit setup` against the simulator; returns the configuration id.
fn setup(config: &Path) -> String {
    setup_configuration(BIN, config, &[("TEST_SIM_SECRET", "sim-secret")])
}

use common::push_items as push;

async fn health(addr: &str) -> Value {
    serde_json::from_str(&get_text(&format!("http://{addr}/health")).await).unwrap()
}

async fn metrics(addr: &str) -> String {
    get_text(&format!("http://{addr}/metrics")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_delivered_once_valid_and_in_order() {
    let rig = Rig::new(SimConfig::default(), "").await;
    // Setup is idempotent: a second run finds both objects and creates nothing.
    let again = Command::new(BIN)
        .args(["setup", "--config"])
        .arg(&rig.config)
        .env("TEST_SIM_SECRET", "sim-secret")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&again.stdout);
    assert_eq!(text.matches("already there").count(), 2, "{text}");

    let (mut child, addr) = rig.spawn();
    let accepted = push_lifecycles(&addr, "11", 120).await;
    assert!(accepted >= 360, "{accepted}");
    let sim = rig.sim.clone();
    wait_for(Duration::from_secs(30), "delivery", || {
        sim.report().unique_ids == accepted
    })
    .await;
    let report = rig.sim.report();
    assert_eq!(report.duplicates, 0);
    assert_eq!(report.invalid_requests, 0, "every body the conduit sent was valid");
    assert_eq!(report.entities_accepted, accepted);
    for (key, types) in by_interaction(&rig.sim.received(0)) {
        assert_eq!(types.first().map(String::as_str), Some("started"), "{key}: {types:?}");
        assert_eq!(types.last().map(String::as_str), Some("ended"), "{key}: {types:?}");
        let c = types.iter().position(|t| t == "connected").unwrap();
        assert!(c < types.len() - 1, "{key}: connected before ended: {types:?}");
    }
    let h = health(&addr).await;
    assert_eq!(h["destinations"][0]["name"], "journey");
    assert_eq!(h["destinations"][0]["state"], "ok");
    assert!(h["destinations"][0]["ratelimit_remaining"].as_u64().is_some());
    // The count follows the cloud's answer, which the simulator has given before the conduit
    // reads it; it only grows, so one past the total never comes back to it.
    let delivered = "conduit_sink_events_delivered_total{sink=\"journey\"}";
    wait_until(Duration::from_secs(30), "every delivery counted", || async {
        metric(&metrics(&addr).await, delivered) == accepted as f64
    })
    .await;
    let m = metrics(&addr).await;
    assert_eq!(metric(&m, delivered), accepted as f64);
    assert!(metric(&m, "conduit_pipeline_accept_to_confirm_seconds_count") >= accepted as f64);
    assert!(m.contains("conduit_sink_requests_total{sink=\"journey\",status=\"200\"}"));
    assert!(!m.contains("sim-secret") && !h.to_string().contains("sim-secret"));
    terminate(&child);
    assert!(child.wait().unwrap().success());
    assert_eq!(
        cic_conduit::buffer::inspect::scan_dir(&rig.data(), |_, _, _| {})
            .unwrap()
            .unacked_records,
        0,
        "everything confirmed was acknowledged, durably"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixty_second_outage_loses_nothing() {
    let rig = Rig::new(SimConfig::default(), "").await;
    let (mut child, addr, before) = rig.start_delivering("21", 30).await;
    let sim = rig.sim.clone();
    rig.sim.set_faults(&FaultUpdate {
        outage_secs: Some(60.0),
        ..Default::default()
    });
    let started = Instant::now();
    let during = push_lifecycles(&addr, "22", 50).await;
    // While the cloud is down, health says so and nothing is lost or given up.
    let a = addr.as_str();
    wait_until(
        Duration::from_secs(50),
        "health showing the destination retrying",
        move || async move {
            let h = health(a).await;
            h["destinations"][0]["state"] == "retrying" && h["status"] == "degraded"
        },
    )
    .await;
    let b = health(&addr).await["buffer"]["backlog_records"].as_u64().unwrap();
    assert_eq!(b, during, "the backlog holds every event accepted during the outage");
    wait_for(Duration::from_secs(100), "drain after the outage", || {
        sim.report().unique_ids == before + during
    })
    .await;
    assert!(started.elapsed() >= Duration::from_secs(60));
    let report = rig.sim.report();
    assert!(report.outage_refusals > 0);
    assert_eq!(report.duplicates, 0);
    let h = health(&addr).await;
    assert_eq!(h["destinations"][0]["state"], "ok");
    assert_eq!(h["destinations"][0]["last_error"]["status"], 503);
    assert!(
        h["destinations"][0]["last_error"]["correlation_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    terminate(&child);
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_is_waited_out_never_retried_early() {
    let rig = Rig::new(SimConfig::default(), "max_events = 5\nmax_age_ms = 50").await;
    let (mut child, addr, first) = rig.start_delivering("31", 10).await;
    let sim = rig.sim.clone();
    // The organization's allowance drops below what this window already used: every lane
    // gets a 429 with the seconds left in the window as Retry-After.
    rig.sim.set_faults(&FaultUpdate {
        requests_per_minute: Some(1),
        ..Default::default()
    });
    let second = push_lifecycles(&addr, "32", 40).await;
    wait_for(Duration::from_secs(20), "a 429", || sim.report().rate_limited > 0).await;
    let a = addr.as_str();
    wait_until(
        Duration::from_secs(10),
        "health showing the pause",
        move || async move { health(a).await["destinations"][0]["state"] == "paused" },
    )
    .await;
    let h = health(&addr).await;
    assert!(h["destinations"][0]["paused_until"].is_string(), "{h}");
    rig.sim.set_faults(&FaultUpdate {
        requests_per_minute: Some(300),
        ..Default::default()
    });
    wait_for(Duration::from_secs(90), "delivery after the pause", || {
        sim.report().unique_ids == first + second
    })
    .await;
    let report = rig.sim.report();
    assert_eq!(
        report.early_retries, 0,
        "no request came before its Retry-After had passed"
    );
    assert!(
        report.rate_limited <= 4,
        "one 429 per lane at most: {}",
        report.rate_limited
    );
    let m = metrics(&addr).await;
    assert!(
        metric(
            &m,
            "conduit_sink_retries_total{reason=\"rate_limited\",sink=\"journey\"}"
        ) >= 1.0
    );
    terminate(&child);
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_second_tokens_are_refreshed_without_interrupting_delivery() {
    let rig = Rig::new(
        SimConfig {
            token_lifetime: Duration::from_secs(5),
            ..SimConfig::default()
        },
        "max_age_ms = 100",
    )
    .await;
    let (mut child, addr) = rig.spawn();
    let started = Instant::now();
    let mut accepted = 0;
    let mut round = 0;
    // Deliveries spread over 13 s, one every 250 ms at most: each token lives 5 s and is
    // replaced after 4.
    let mut pace = tokio::time::interval(Duration::from_millis(250));
    while started.elapsed() < Duration::from_secs(13) {
        pace.tick().await;
        accepted += push(&addr, &[item(&format!("41{round:04}"), "O")]).await;
        round += 1;
        let sim = rig.sim.clone();
        wait_for(Duration::from_secs(10), "delivery", || {
            sim.report().unique_ids == accepted
        })
        .await;
    }
    let report = rig.sim.report();
    assert!(report.tokens_issued >= 3, "tokens issued: {}", report.tokens_issued);
    assert_eq!(report.unauthorized, 0, "tokens are replaced before they expire");
    let m = metrics(&addr).await;
    assert_eq!(
        metric(&m, "conduit_oauth_token_refreshes_total"),
        (report.tokens_issued - 1) as f64,
        "every token but the one `setup` used went to the conduit"
    );
    terminate(&child);
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_costs_one_401_and_no_event() {
    let rig = Rig::new(SimConfig::default(), "max_age_ms = 100").await;
    let (mut child, addr) = rig.spawn();
    let first = push(&addr, &[item("4300001", "O")]).await;
    let sim = rig.sim.clone();
    wait_for(Duration::from_secs(10), "delivery", || sim.report().unique_ids == first).await;
    rig.sim.revoke_tokens();
    let second = push(&addr, &[item("4300002", "O")]).await;
    wait_for(Duration::from_secs(10), "delivery after revocation", || {
        sim.report().unique_ids == first + second
    })
    .await;
    let report = rig.sim.report();
    assert_eq!(
        report.unauthorized, 1,
        "the 401 fetched a new token, and the request went again"
    );
    assert_eq!(report.tokens_issued, 3, "setup's, the first, and the one after the 401");
    terminate(&child);
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partly_refused_batches_retry_or_dead_letter_exactly_the_refused() {
    let mut sim_cfg = SimConfig::default();
    sim_cfg.faults.apply(
        &FaultUpdate {
            reject_fraction: Some(0.3),
            retryable_fraction: Some(0.5),
            ..Default::default()
        },
        Instant::now(),
    );
    let rig = Rig::new(sim_cfg, "max_age_ms = 100\nmax_entity_attempts = 1000").await;
    let (mut child, addr) = rig.spawn();
    let accepted = push_lifecycles(&addr, "51", 100).await;
    let sim = rig.sim.clone();
    let dead_letters = |text: &str| {
        metric(
            text,
            "conduit_sink_events_dead_lettered_total{reason=\"rejected\",sink=\"journey\"}",
        ) as u64
    };
    let (a, s) = (addr.as_str(), &sim);
    wait_until(
        Duration::from_secs(60),
        "every event delivered or dead-lettered",
        move || async move { s.report().unique_ids + dead_letters(&metrics(a).await) == accepted },
    )
    .await;
    let dead = dead_letters(&metrics(&addr).await);
    let report = rig.sim.report();
    let refused_for_good = report.entities_rejected - report.entities_rejected_retryable;
    assert_eq!(
        dead, refused_for_good,
        "exactly the non-retryable rejections are dead-lettered"
    );
    assert!(dead > 0 && report.entities_rejected_retryable > 0, "{report:?}");
    assert_eq!(report.duplicates, 0, "retried entities were only the unprocessed ones");
    terminate(&child);
    assert!(child.wait().unwrap().success());

    // The dead letters are on disk, listed, disjoint from what was delivered, and replayable.
    let delivered: HashSet<String> = rig.sim.received(0).into_iter().map(|r| r.id).collect();
    let files = cic_conduit::deadletter::list::<cic_conduit::deadletter::Interactions>(&rig.data()).unwrap();
    let letters: Vec<_> = files
        .iter()
        .flat_map(|f| {
            cic_conduit::deadletter::read_file::<cic_conduit::deadletter::Interactions>(&f.path)
                .unwrap()
                .0
        })
        .collect();
    assert_eq!(letters.len() as u64, dead);
    for l in &letters {
        let ev = l.event.as_ref().expect("the event is kept");
        assert!(!delivered.contains(&ev.event_id));
        assert_eq!((l.status, l.reason.as_str()), (Some(400), "rejected"));
        assert!(l.correlation_id.as_deref().is_some_and(|c| !c.is_empty()));
    }
    let out = Command::new(BIN)
        .args(["dead-letter", "list", "--verbose", "--data-dir"])
        .arg(rig.data())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("{dead} dead letters")), "{text}");
    let out = Command::new(BIN)
        .args(["dead-letter", "replay", "--data-dir"])
        .arg(rig.data())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    rig.sim.set_faults(&FaultUpdate {
        reject_fraction: Some(0.0),
        ..Default::default()
    });
    let (mut child, _addr) = rig.spawn();
    wait_for(Duration::from_secs(30), "replayed delivery", || {
        sim.report().unique_ids == accepted
    })
    .await;
    assert!(
        cic_conduit::deadletter::list::<cic_conduit::deadletter::Interactions>(&rig.data())
            .unwrap()
            .is_empty()
    );
    terminate(&child);
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_drain_resends_only_the_last_batches() {
    // 60 requests a minute, 50 events each: a drain of about 50 events a second.
    let rig = Rig::new(
        SimConfig {
            requests_per_minute: 60,
            ..SimConfig::default()
        },
        "max_events = 50\nconcurrency = 2\nrate_limit_share = 1.0",
    )
    .await;
    rig.sim.set_faults(&FaultUpdate {
        outage_secs: Some(3600.0),
        ..Default::default()
    });
    let (mut child, addr) = rig.spawn();
    let accepted = push_lifecycles(&addr, "61", 200).await;
    rig.sim.set_faults(&FaultUpdate {
        outage_secs: Some(0.0),
        ..Default::default()
    });
    let sim = rig.sim.clone();
    wait_for(Duration::from_secs(60), "part of the drain", || {
        sim.report().unique_ids >= 150
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let before_kill = rig.sim.received(0);
    assert!((before_kill.len() as u64) < accepted, "the kill came mid-drain");
    let (mut child, _addr) = rig.spawn();
    wait_for(Duration::from_secs(90), "drain after restart", || {
        sim.report().unique_ids == accepted
    })
    .await;
    // Duplicates are only of the last batches sent before the kill: those in flight, and those
    // confirmed but not yet in the persisted cursor.
    let all = rig.sim.received(0);
    let first_seen: HashSet<&str> = before_kill.iter().map(|r| r.id.as_str()).collect();
    let resent: Vec<&Received> = all[before_kill.len()..]
        .iter()
        .filter(|r| first_seen.contains(r.id.as_str()))
        .collect();
    let tail: HashSet<&str> = before_kill.iter().rev().take(50 * 6).map(|r| r.id.as_str()).collect();
    for r in &resent {
        assert!(
            tail.contains(r.id.as_str()),
            "{} was confirmed long before the kill",
            r.id
        );
    }
    assert_eq!(rig.sim.report().duplicates, resent.len() as u64);
    terminate(&child);
    assert!(child.wait().unwrap().success());
}

#[test]
fn bad_sink_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    let text = config_text(&dir.path().join("data"), "", "")
        + "\n[sinks.journey]\nconfiguration_id = \"abc\"\nexternal_source_id = \"x\"\nmax_events = 5000\n";
    std::fs::write(&cfg, text).unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("organization.client_id"), "{err}");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "region = \"us-east-1\"",
        "region = \"us-east-1\"\nclient_id = \"c\"\nclient_secret = \"s\"",
    );
    std::fs::write(&cfg, text).unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("sinks.journey.max_events"),
        "{err}"
    );
}
