//! The Integration Health page as an admin sees it: real conduits (the binary) beside the CIC
//! and Genesys Cloud simulators, the page rendered by a real browser (Debian's `chromium`,
//! headless; `.ci/run` installs it), once healthy and once failing. The test reads the text a
//! person would read, and keeps the screenshots under `target/tmp/page-screenshots/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cic_conduit::shutdown::Shutdown;
use cic_conduit::sim::cic::{CicSim, CicSimConfig};
use cic_conduit::sim::cloud::{CloudSim, FaultUpdate, SimConfig};
use common::prometheus::Prometheus;
use common::*;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_cic-conduit");
const ENV: &[(&str, &str)] = &[("TEST_CIC_PASSWORD", "sim-password")];

fn cic_user(id: &str, display: &str, email: Option<&str>) -> Value {
    let mut personal = json!({});
    if let Some(e) = email {
        personal["emailAddress"] = json!(e);
    }
    json!({"configurationId": {"id": id, "displayName": display}, "personalInformationProperties": personal})
}

fn shots() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("page-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn chromium() -> &'static str {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("chromium (Debian's chromium package: apt-get install chromium)")
}

/// `url` as headless Chromium renders it: a screenshot at a phone's width into `shot`, and the
/// page's visible text.
fn browse(url: &str, shot: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let common = |c: &mut Command| {
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()));
    };
    let mut c = Command::new(chromium());
    common(&mut c);
    let out = c
        .arg("--window-size=412,2400")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success() && shot.exists(),
        "chromium --screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = Command::new(chromium());
    common(&mut c);
    let out = c.arg("--dump-dom").arg(url).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    text_of(&String::from_utf8_lossy(&out.stdout))
}

/// The text a person reads: the DOM without its tags, the style and entities decoded.
fn text_of(html: &str) -> String {
    let body = html.split("</style>").last().unwrap_or(html);
    let mut out = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A healthy integration: the CIC simulator with three users (one without an email, so not
/// synced), Genesys Cloud's, and a conduit (the binary) reading CIC with user sync, taking pushes
/// and delivering them; returned once it has delivered events and synced its users.
struct Healthy {
    child: std::process::Child,
    addr: String,
    cloud: Arc<CloudSim>,
    cloud_addr: std::net::SocketAddr,
    configuration_id: String,
    dir: tempfile::TempDir,
    _cic: Arc<CicSim>,
    _stop: Shutdown,
}

async fn healthy() -> Healthy {
    let stop = Shutdown::new();
    let cic = CicSim::new(CicSimConfig {
        pair: vec!["127.0.0.1".into()],
        directory_users: 0,
        ..CicSimConfig::default()
    });
    for u in [
        cic_user("asmith", "Ann Smith", Some("ann.smith@example.com")),
        cic_user("bjones", "Bob Jones", Some("bob.jones@example.com")),
        cic_user("nomail", "No Mail", None),
    ] {
        cic.set_user(u);
    }
    let cic_addr = cic.spawn("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
    let cloud = CloudSim::new(SimConfig::default());
    let cloud_addr = cloud.spawn("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Healthy: ICWS with user sync, the push source, delivery to the journey sink.
    let config = dir.path().join("healthy.toml");
    let base = cloud_config_text(&dir.path().join("healthy"), cloud_addr, "")
        + &format!(
            "[sources.icws]\nenabled = true\nhosts = [\"http://{cic_addr}\"]\npassword = {{ env = \"TEST_CIC_PASSWORD\" }}\nworkgroups = [\"Support\"]\npoll_interval_ms = 100\nreconnect_max_ms = 1000\n[ha]\nmode = \"follow-primary\"\n[users]\nenabled = true\nstatuses = false\n"
        );
    std::fs::write(&config, &base).unwrap();
    let id = setup_configuration(BIN, &config, ENV);
    std::fs::write(
        &config,
        format!(
            "{base}[sinks.journey]\nconfiguration_id = \"{id}\"\nexternal_source_id = \"cic-test\"\nmax_age_ms = 50\n"
        ),
    )
    .unwrap();
    let (healthy, addr) = spawn_conduit_env(BIN, &config, ENV);
    let accepted = push_lifecycles(&addr, "h", 20).await;
    let c2 = cloud.clone();
    wait_for(Duration::from_secs(30), "events delivered", || {
        c2.report().unique_ids >= accepted
    })
    .await;
    wait_until(Duration::from_secs(30), "users synced", || async {
        let h = health_of(&addr).await;
        h["users"]["synced"] == 2 && h["users"]["not_synced"] == 1 && h["status"] == "ok"
    })
    .await;
    Healthy {
        child: healthy,
        addr,
        cloud,
        cloud_addr,
        configuration_id: id,
        dir,
        _cic: cic,
        _stop: stop,
    }
}

async fn health_of(addr: &str) -> Value {
    serde_json::from_str::<Value>(&get_text(&format!("http://{addr}/health")).await).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_a_healthy_and_a_failing_integration_as_an_admin_reads_it() {
    let h = healthy().await;
    let _guard = KillOnDrop(h.child.id());
    let (addr, cloud, cloud_addr, id, dir) = (
        h.addr.clone(),
        h.cloud.clone(),
        h.cloud_addr,
        h.configuration_id.clone(),
        &h.dir,
    );
    let text = browse(&format!("http://{addr}/"), &shots().join("healthy.png"));
    for expected in [
        "Integration Health · cic-test",
        "OK Events flow from CIC to Genesys Cloud.",
        "CIC connection State connected Role in the pair active",
        "journey ok",
        "Buffer State ok Waiting 0 events Oldest waiting nothing waits",
        "Delivered:",
        "events/min now",
        "Accept to confirm: median",
        "Dead letters None since start",
        "2 synced 0 in error 1 not synced 0 removed",
        "asmith Synced ann.smith@example.com",
        "nomail Not synced",
    ] {
        assert!(text.contains(expected), "{expected:?} not on the healthy page:\n{text}");
    }
    assert!(!text.contains("in error:"), "{text}");
    // The user table filters without any script: a plain form's query.
    let text = browse(
        &format!("http://{addr}/?state=not_synced&q="),
        &shots().join("healthy-filtered.png"),
    );
    assert!(
        text.contains("1 of 1 users") && text.contains("nomail Not synced"),
        "{text}"
    );
    assert!(!text.contains("asmith Synced"), "{text}");
    let text = browse(
        &format!("http://{addr}/?state=&q=BOB"),
        &shots().join("healthy-search.png"),
    );
    assert!(
        text.contains("1 of 1 users") && text.contains("bjones Synced"),
        "{text}"
    );

    // Failing: no CIC (nothing listens where it points), events the cloud refuses for good, then
    // an outage.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("failing.toml");
    std::fs::write(
        &config,
        cloud_config_text(&dir.path().join("failing"), cloud_addr, "")
            + &format!(
                "[sources.icws]\nenabled = true\nhosts = [\"http://127.0.0.1:{closed}\"]\npassword = {{ env = \"TEST_CIC_PASSWORD\" }}\nworkgroups = [\"Support\"]\nreconnect_max_ms = 1000\n[ha]\nmode = \"follow-primary\"\n[sinks.journey]\nconfiguration_id = \"{id}\"\nexternal_source_id = \"cic-test\"\nmax_age_ms = 50\nretry_max_ms = 1000\n"
            ),
    )
    .unwrap();
    cloud.set_faults(&FaultUpdate {
        reject_fraction: Some(1.0),
        retryable_fraction: Some(0.0),
        ..Default::default()
    });
    let (failing, addr) = spawn_conduit_env(BIN, &config, ENV);
    let _guard2 = KillOnDrop(failing.id());
    push_lifecycles(&addr, "f", 2).await;
    wait_until(Duration::from_secs(30), "dead letters", || async {
        metric(
            &get_text(&format!("http://{addr}/metrics")).await,
            "conduit_sink_events_dead_lettered_total{reason=\"rejected\",sink=\"journey\"}",
        ) > 0.0
    })
    .await;
    cloud.set_faults(&FaultUpdate {
        reject_fraction: Some(0.0),
        outage_secs: Some(600.0),
        ..Default::default()
    });
    push_lifecycles(&addr, "g", 2).await;
    wait_until(Duration::from_secs(30), "delivery failing", || async {
        let h = health_of(&addr).await;
        h["destinations"][0]["state"] != "ok" && h["buffer"]["backlog_records"].as_u64() > Some(0)
    })
    .await;
    let text = browse(&format!("http://{addr}/"), &shots().join("failing.png"));
    for expected in [
        "DEGRADED Working, with something to look at below.",
        "No session with CIC: cannot reach ICWS",
        "Genesys Cloud (journey) retrying",
        "CIC connection State not connected",
        "HTTP 503",
        "correlation id",
        "events refused for good since start: see Dead letters",
        "Dead letters Destination Reason Events journey rejected",
        "cic-conduit dead-letter list --data-dir",
        "dead-letter replay",
        "Oldest waiting",
    ] {
        assert!(text.contains(expected), "{expected:?} not on the failing page:\n{text}");
    }
    assert!(
        !text.contains("sim-password") && !text.contains("sim-secret"),
        "a secret on the page"
    );
    assert!(!text.contains("Users"), "no user section without user sync:\n{text}");
    let mut healthy = h.child;
    for child in [&healthy, &failing] {
        terminate(child);
    }
    assert!(healthy.wait().unwrap().success());
    let mut failing = failing;
    assert!(failing.wait().unwrap().success());
}

/// The Grafana dashboard (`deploy/grafana-dashboard.json`): every panel's query parses and
/// returns data from a real Prometheus scraping a conduit that delivered events and synced users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let h = healthy().await;
    let _guard = KillOnDrop(h.child.id());
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let exprs: Vec<(String, String)> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or_default().to_string();
            p["targets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |t| (title.clone(), t["expr"].as_str().unwrap().to_string()))
        })
        .collect();
    assert!(exprs.len() >= 15, "{exprs:?}");
    let prometheus = Prometheus::start(&[&h.addr], None).await;
    // A minute's worth of rate windows needs a few scrapes, with traffic between them.
    let mut n = 0;
    wait_until(Duration::from_secs(60), "a few scrapes", || {
        n += 1;
        let addr = h.addr.clone();
        let prometheus = &prometheus;
        async move {
            push_lifecycles(&addr, &format!("d{n}-"), 5).await;
            matches!(prometheus.query("count_over_time(up[1m])").await, Ok(r) if r.first().and_then(|s| s["value"][1].as_str()?.parse::<u32>().ok()) >= Some(5))
        }
    })
    .await;
    for (title, expr) in &exprs {
        let q = expr.replace("$__rate_interval", "1m").replace("$instance", ".*");
        let result = prometheus.query(&q).await;
        let result = result.unwrap_or_else(|e| panic!("panel {title:?}: {expr} does not parse: {e}"));
        assert!(!result.is_empty(), "panel {title:?}: {q} returns no data");
    }
    let _ = &h.cloud;
}
