//! The alert rules of `deploy/alerts.yml` with the real tools: `promtool` checks them and runs
//! their unit tests (`deploy/alerts_test.yml`), and a real Prometheus on loopback scrapes
//! running conduits driven into failures and puts the matching alerts up. Debian's `prometheus`
//! package provides both binaries (`.ci/run` installs it).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cic_conduit::app;
use cic_conduit::config;
use cic_conduit::shutdown::Shutdown;
use cic_conduit::sim::cloud::{CloudSim, FaultUpdate, SimConfig};
use common::prometheus::{Prometheus, free_port};
use common::*;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(file)
}

fn promtool(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool (Debian's prometheus package: apt-get install prometheus)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn the_rules_parse_and_their_unit_tests_pass() {
    let dir = deploy("");
    let (ok, said) = promtool(&["check", "rules", "alerts.yml"], &dir);
    assert!(ok, "promtool check rules:\n{said}");
    let (ok, said) = promtool(&["test", "rules", "alerts_test.yml"], &dir);
    assert!(ok, "promtool test rules:\n{said}");
    // Every rule has a severity and a runbook that the README has a section for.
    let rules = std::fs::read_to_string(deploy("alerts.yml")).unwrap();
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 10, "{alerts:?}");
    for a in &alerts {
        let block = rules.split(&format!("- alert: {a}\n")).nth(1).unwrap();
        let block = block.split("- alert: ").next().unwrap();
        assert!(block.contains("severity: "), "{a} has no severity");
        let anchor = format!("README.md#{}\"", a.to_lowercase());
        assert!(block.contains(&anchor), "{a}'s runbook_url is not {anchor}");
        assert!(
            readme.contains(&format!("\n### {a}\n")),
            "the README has no runbook for {a}"
        );
    }
}

async fn start_conduit(dir: &Path, text: String) -> app::Running {
    std::fs::create_dir_all(dir).unwrap();
    app::start(config::load_str(&text, Vec::new()).unwrap()).await.unwrap()
}

const SINK: &str = "\n[sinks.journey]\nconfiguration_id = \"c0ffee00-0000-4000-8000-000000000001\"\nexternal_source_id = \"cic-test\"\nretry_max_ms = 500\n";

/// Conduits in trouble, scraped by a real Prometheus: the alerts for their trouble go up, and
/// only those. One conduit has a CIC that is down and a Genesys Cloud in an outage; the other a
/// client secret the cloud refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_raises_the_alerts_for_a_cloud_outage_a_down_cic_and_bad_credentials() {
    let sim = CloudSim::new(SimConfig::default());
    let stop = Shutdown::new();
    let sim_addr = sim.spawn("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
    sim.set_faults(&FaultUpdate {
        outage_secs: Some(600.0),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    // A: CIC down (nothing listens at its port), the cloud in an outage.
    let closed = free_port();
    let a = start_conduit(
        &dir.path().join("a"),
        cloud_config_text(&dir.path().join("a"), sim_addr, SINK)
            + &format!(
                "[sources.icws]\nenabled = true\nhosts = [\"http://127.0.0.1:{closed}\"]\npassword = \"sim-password\"\nworkgroups = [\"Support\"]\nreconnect_max_ms = 1000\n[ha]\nmode = \"follow-primary\"\n"
            ),
    )
    .await;
    // B: a client secret the cloud (another organization, up) does not know.
    let sim_b = CloudSim::new(SimConfig::default());
    let sim_b_addr = sim_b.spawn("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
    let b = start_conduit(
        &dir.path().join("b"),
        cloud_config_text(&dir.path().join("b"), sim_b_addr, SINK).replace("\"sim-secret\"", "\"not-the-secret\""),
    )
    .await;
    for r in [&a, &b] {
        push_items(&r.addr.to_string(), &[item("1000000001", "O"), item("1000000002", "C")]).await;
    }
    let (a_addr, b_addr) = (a.addr.to_string(), b.addr.to_string());
    let prometheus = Prometheus::start(&[&a_addr, &b_addr], Some(&deploy("alerts.yml"))).await;
    let expected = [
        ("ConduitDeliveryFailing", a_addr.as_str(), "pending"),
        ("ConduitCICDisconnected", a_addr.as_str(), "pending"),
        ("ConduitAuthFailing", b_addr.as_str(), "firing"),
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut every = tokio::time::interval(Duration::from_millis(250));
    let seen = loop {
        every.tick().await;
        let seen = prometheus.alerts().await;
        if expected
            .iter()
            .all(|(n, i, s)| seen.iter().any(|(sn, si, ss)| sn == n && si == i && ss == s))
        {
            break seen;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expected {expected:?}, Prometheus shows {seen:?}"
        );
    };
    // Nothing else for A: its credentials are fine (an outage of the login host is not a refusal).
    // B has no ICWS source, so no CIC alert; neither is down.
    for (name, instance, state) in &seen {
        assert!(
            !(name == "ConduitAuthFailing" && instance == &a_addr),
            "an outage taken for refused credentials: {seen:?}"
        );
        assert!(!(name == "ConduitCICDisconnected" && instance == &b_addr), "{seen:?}");
        assert_ne!(name, "ConduitDown", "{instance} {state}");
    }
    let m = get_text(&format!("http://{b_addr}/metrics")).await;
    assert!(!m.contains("conduit_icws_"), "ICWS metrics without the ICWS source");
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    assert!(
        sim_b.report().auth_failures > 0,
        "B was refused by the cloud: {:?}",
        sim_b.report()
    );
    drop(stop);
    let _ = Arc::clone(&sim);
}
