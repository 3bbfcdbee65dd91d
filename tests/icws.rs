//! The ICWS source end to end: CIC simulator → the real `cic-conduit` binary → Genesys Cloud
//! simulator, through session loss and a gap in which interactions changed.
#![cfg(unix)]

mod common;

use std::time::Duration;

use cic_conduit::shutdown::Shutdown;
use cic_conduit::sim::cic::{CicSim, CicSimConfig};
use cic_conduit::sim::cloud::{CloudSim, SimConfig};
use cic_conduit::sim::traffic::Change;
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_cic-conduit");

/// A new inbound call offered to the watched workgroup.
const OFFER: [(&str, &str); 4] = [
    ("Eic_State", "O"),
    ("Eic_WorkgroupName", "Support"),
    ("Eic_CallDirection", "I"),
    ("Eic_ObjectType", "Call"),
];

fn changes(n: usize, attrs: &[(&'static str, &str)]) -> Vec<Change> {
    changes_of("20000000", 0..n, attrs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactions_flow_over_the_event_stream_across_lost_sessions() {
    scenario(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactions_flow_by_polling_across_lost_sessions() {
    scenario(false).await;
}

/// A CIC simulator, a cloud simulator and a conduit reading the one and delivering to the other.
struct Rig {
    stop: Shutdown,
    cic: std::sync::Arc<CicSim>,
    cloud: std::sync::Arc<CloudSim>,
    cic_addr: std::net::SocketAddr,
    child: std::process::Child,
    addr: String,
    config: std::path::PathBuf,
    _guard: KillOnDrop,
    _dir: tempfile::TempDir,
}

async fn rig(event_stream: bool, linger: Duration) -> Rig {
    let stop = Shutdown::new();
    let cic = CicSim::new(CicSimConfig {
        pair: vec!["127.0.0.1".into()],
        linger,
        ..CicSimConfig::default()
    });
    let cic_addr = cic.spawn("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
    let cloud = CloudSim::new(SimConfig::default());
    let cloud_addr = cloud.spawn("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    let base = cloud_config_text(&dir.path().join("data"), cloud_addr, "")
        .replace("[sources.http]", "[sources.http]\nenabled = false");
    std::fs::write(&config, &base).unwrap();
    let id = setup_configuration(BIN, &config, &[]);
    std::fs::write(
        &config,
        format!(
            "{base}\n[sources.icws]\nenabled = true\nhosts = [\"http://{cic_addr}\"]\npassword = {{ env = \"TEST_CIC_PASSWORD\" }}\nworkgroups = [\"Support\"]\npoll_interval_ms = 100\nreconnect_max_ms = 1000\nevent_stream = {event_stream}\n[ha]\nmode = \"follow-primary\"\n[sinks.journey]\nconfiguration_id = \"{id}\"\nexternal_source_id = \"cic\"\nmax_age_ms = 100\n"
        ),
    )
    .unwrap();
    let (child, addr) = spawn_conduit_env(BIN, &config, &[("TEST_CIC_PASSWORD", "sim-password")]);
    let guard = KillOnDrop(child.id());
    let c2 = cic.clone();
    // Changes applied before the subscription would reach the conduit only as its snapshot.
    wait_for(Duration::from_secs(20), "a queue subscription", || {
        c2.report().queue_subscriptions == 1
    })
    .await;
    Rig {
        stop,
        cic,
        cloud,
        cic_addr,
        child,
        addr,
        config,
        _guard: guard,
        _dir: dir,
    }
}

/// Ten calls offered to the watched workgroup and connected; their 30 events delivered.
async fn ten_connected_calls(r: &Rig) {
    r.cic.apply(&changes(10, &OFFER));
    r.cic
        .apply(&changes(10, &[("Eic_State", "C"), ("Eic_UserName", "jdoe")]));
    let cloud = r.cloud.clone();
    wait_for(Duration::from_secs(20), "30 events", || cloud.report().unique_ids == 30).await;
}

/// Events of one type the cloud received.
fn kinds(cloud: &CloudSim, k: &str) -> usize {
    cloud
        .received(0)
        .iter()
        .filter(|r| r.event_type.as_deref() == Some(k))
        .count()
}

/// CIC simulator → conduit (event stream or polling) → cloud simulator, with a session lost
/// while the calls went on hold.
async fn scenario(event_stream: bool) {
    let Rig {
        stop,
        cic,
        cloud,
        cic_addr,
        mut child,
        addr,
        _guard: _g,
        _dir: _d,
        ..
    } = rig(event_stream, Duration::from_secs(10)).await;
    let (c2, cl2) = (cic.clone(), cloud.clone());

    // Offered, then connected: started + queued, then connected.
    cic.apply(&changes(10, &OFFER));
    wait_for(Duration::from_secs(20), "offers delivered", || {
        cl2.report().unique_ids == 20
    })
    .await;
    cic.apply(&changes(10, &[("Eic_State", "C"), ("Eic_UserName", "jdoe")]));
    wait_for(Duration::from_secs(20), "connects delivered", || {
        cl2.report().unique_ids == 30
    })
    .await;

    // CIC drops the session and refuses logins for a while; meanwhile five calls go on hold and
    // five end.
    cic.set_backup(true);
    cic.drop_sessions();
    wait_for(Duration::from_secs(20), "a refused login", || {
        c2.report().logins_refused > 0
    })
    .await;
    cic.apply(&changes_of("20000000", 0..5, &[("Eic_State", "H")]));
    cic.apply(&changes_of("20000000", 5..10, &[("Eic_State", "E")]));
    cic.set_backup(false);
    wait_for(Duration::from_secs(20), "a new login", || c2.report().logins == 2).await;
    // The snapshot after re-subscribing repeats nothing already sent, and brings the holds and
    // the ends (a disconnected interaction lingers in its queue).
    wait_for(Duration::from_secs(20), "holds and ends delivered", || {
        cl2.report().unique_ids == 40
    })
    .await;
    cic.apply(&changes_of("20000000", 0..5, &[("Eic_State", "I")]));
    wait_for(Duration::from_secs(20), "ends delivered", || {
        cl2.report().unique_ids == 45
    })
    .await;
    assert_eq!(
        (kinds(&cloud, "held"), kinds(&cloud, "ended")),
        (5, 10),
        "the gap's holds and ends arrived"
    );
    let r = cloud.report();
    assert_eq!(
        r.duplicates, 0,
        "the snapshot after the reconnect created no duplicate: {r:?}"
    );
    let h: serde_json::Value = serde_json::from_str(&get_text(&format!("http://{addr}/health")).await).unwrap();
    assert_eq!(h["cic"]["connected"], true, "{h}");
    assert_eq!(h["cic"]["ic_server"], "cic-sim");
    assert!(
        h["cic"]["host"]
            .as_str()
            .unwrap()
            .contains(&cic_addr.port().to_string())
    );
    assert!(h["cic"]["session_age_secs"].is_u64());
    assert_eq!(h["cic"]["switchover"]["primaryHost"], "127.0.0.1", "{h}");
    assert!(
        h["cic"]["last_error"].as_str().is_some_and(|e| e.contains("503")),
        "{h}"
    );
    assert!(!h.to_string().contains("sim-password"));
    let m = get_text(&format!("http://{addr}/metrics")).await;
    assert!(m.contains("conduit_icws_connected 1"), "{m}");
    assert!(m.contains("conduit_icws_interactions_tracked 10"), "{m}");
    // A dropped session: the next poll gets 401; the event stream simply ends.
    let lost = if event_stream { "stream_ended" } else { "unauthorized" };
    assert!(
        m.contains(&format!("conduit_icws_reconnects_total{{reason=\"{lost}\"}}")),
        "{m}"
    );
    assert!(
        m.contains("conduit_icws_reconnects_total{reason=\"not_primary\"}"),
        "{m}"
    );
    assert!(m.contains("conduit_icws_messages_total{type=\"queue_contents\"}"));
    // Polling answers every poll; the stream sends only when there is something.
    let polls = cic.report().polls;
    assert!(if event_stream { polls == 0 } else { polls > 5 }, "{polls} polls");
    terminate(&child);
    assert!(child.wait().unwrap().success());
    stop.trigger();
}

/// Interactions that leave the watched queues end: a transfer out (told by
/// `interactionsRemoved`), and calls that ended and were cleared from their queue while the
/// conduit was disconnected (missing from the snapshot after the gap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactions_that_leave_unseen_still_end() {
    // Nothing lingers: a disconnected interaction leaves its queue with the change that ends it.
    let r = rig(true, Duration::ZERO).await;
    let (cic, cloud) = (r.cic.clone(), r.cloud.clone());
    ten_connected_calls(&r).await;

    // Seen: call 0 is transferred to a workgroup the conduit does not watch.
    cic.apply(&changes_of("20000000", 0..1, &[("Eic_WorkgroupName", "Sales")]));
    wait_for(Duration::from_secs(20), "the transfer out ends", || {
        kinds(&cloud, "ended") == 1
    })
    .await;

    // Unseen: the session drops, and while logins are refused calls 5..10 end and leave.
    cic.set_backup(true);
    cic.drop_sessions();
    let c2 = cic.clone();
    wait_for(Duration::from_secs(20), "a refused login", || {
        c2.report().logins_refused > 0
    })
    .await;
    cic.apply(&changes_of("20000000", 5..10, &[("Eic_State", "I")]));
    cic.set_backup(false);
    wait_for(Duration::from_secs(20), "the gap's ends", || {
        kinds(&cloud, "ended") == 6
    })
    .await;
    let ended: Vec<_> = cloud
        .received(0)
        .into_iter()
        .filter(|e| e.event_type.as_deref() == Some("ended"))
        .collect();
    let mut keys: Vec<String> = ended.iter().filter_map(|e| e.call_id_key.clone()).collect();
    keys.sort();
    let expect: Vec<String> = [0, 5, 6, 7, 8, 9]
        .iter()
        .map(|i| format!("20000000{i:02}20240409"))
        .collect();
    assert_eq!(keys, expect, "the transferred call and the calls that ended in the gap");
    // Calls 1..5 are still in the queue: not ended; nothing was sent twice.
    let r2 = cloud.report();
    assert_eq!(r2.unique_ids, 36, "{r2:?}");
    assert_eq!(r2.duplicates, 0, "{r2:?}");
    terminate(&r.child);
    let mut child = r.child;
    assert!(child.wait().unwrap().success());
    r.stop.trigger();
}

/// A conduit stopped while calls end and are cleared from their queue: started again, it ends
/// them from the state it carried over, and repeats nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_still_ends_the_calls_that_ended_meanwhile() {
    let r = rig(true, Duration::ZERO).await;
    let (cic, cloud) = (r.cic.clone(), r.cloud.clone());
    ten_connected_calls(&r).await;
    terminate(&r.child);
    let mut child = r.child;
    assert!(child.wait().unwrap().success());

    // While it is down, calls 5..10 end and leave the queue (nothing lingers).
    cic.apply(&changes_of("20000000", 5..10, &[("Eic_State", "E")]));
    let (mut child, _addr) = spawn_conduit_env(BIN, &r.config, &[("TEST_CIC_PASSWORD", "sim-password")]);
    let _guard = KillOnDrop(child.id());
    wait_for(Duration::from_secs(20), "the ends", || kinds(&cloud, "ended") == 5).await;
    let report = cloud.report();
    assert_eq!(report.unique_ids, 35, "{report:?}");
    assert_eq!(
        report.duplicates, 0,
        "the snapshot after the restart repeated nothing: {report:?}"
    );
    terminate(&child);
    assert!(child.wait().unwrap().success());
    r.stop.trigger();
}

/// Switched off by a reload (SIGHUP), the ICWS source logs out and reads nothing; switched on
/// again, it logs in and the queues' snapshot brings what changed meanwhile, exactly once.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_switching_ingest_off_and_on_logs_out_and_back_in() {
    let r = rig(true, Duration::ZERO).await;
    let (cic, cloud) = (r.cic.clone(), r.cloud.clone());
    ten_connected_calls(&r).await;
    let text = std::fs::read_to_string(&r.config).unwrap();
    let hup = || {
        assert!(
            std::process::Command::new("kill")
                .args(["-HUP", &r.child.id().to_string()])
                .status()
                .unwrap()
                .success()
        )
    };
    std::fs::write(&r.config, format!("enabled = false\n{text}")).unwrap();
    hup();
    let addr = r.addr.clone();
    wait_until(Duration::from_secs(20), "switched off, logged out", || async {
        let h: serde_json::Value = serde_json::from_str(&get_text(&format!("http://{addr}/health")).await).unwrap();
        h["status"] == "disabled" && h["cic"]["connected"] == false
    })
    .await;
    // Calls 5..10 end while it reads nothing.
    cic.apply(&changes_of("20000000", 5..10, &[("Eic_State", "E")]));
    assert_eq!(cic.report().logins, 1);
    std::fs::write(&r.config, &text).unwrap();
    hup();
    wait_for(Duration::from_secs(20), "the ends, after logging in again", || {
        kinds(&cloud, "ended") == 5
    })
    .await;
    let report = cic.report();
    assert_eq!(report.logins, 2, "{report:?}");
    assert_eq!(report.queue_subscriptions, 2, "{report:?}");
    let report = cloud.report();
    assert_eq!(report.unique_ids, 35, "{report:?}");
    assert_eq!(report.duplicates, 0, "{report:?}");
    terminate(&r.child);
    let mut child = r.child;
    assert!(child.wait().unwrap().success());
    r.stop.trigger();
}

/// ICWS over HTTPS with a certificate from a private CA (tests/fixtures/tls: a test CA whose key
/// was discarded, and a certificate for 127.0.0.1 and localhost): the conduit logs in when
/// `ca_file` names that CA, and refuses the server, saying why, when it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_trusts_the_configured_ca_and_nothing_else() {
    let tls_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let stop = Shutdown::new();
    let cic = CicSim::new(CicSimConfig::default());
    let tls = cic_conduit::sim::tls::server_config(&tls_dir.join("cic.pem"), &tls_dir.join("cic.key")).unwrap();
    let cic_addr = cic
        .spawn_tls("127.0.0.1:0".parse().unwrap(), tls, stop.clone())
        .await
        .unwrap();
    for trusted in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("c.toml");
        let ca = if trusted {
            format!("ca_file = {:?}\n", tls_dir.join("ca.pem").display().to_string())
        } else {
            String::new()
        };
        let text = config_text(&dir.path().join("data"), "", "")
            .replace("[sources.http]", "[sources.http]\nenabled = false")
            + &format!(
                "[sources.icws]\nenabled = true\nhosts = [\"https://{cic_addr}\"]\npassword = {{ env = \"TEST_CIC_PASSWORD\" }}\nworkgroups = [\"Support\"]\nreconnect_max_ms = 1000\n{ca}[ha]\nmode = \"follow-primary\"\n"
            );
        std::fs::write(&config, text).unwrap();
        let (mut child, addr) = spawn_conduit_env(BIN, &config, &[("TEST_CIC_PASSWORD", "sim-password")]);
        let _guard = KillOnDrop(child.id());
        let health = || async {
            serde_json::from_str::<serde_json::Value>(&get_text(&format!("http://{addr}/health")).await).unwrap()
        };
        if trusted {
            let c2 = cic.clone();
            wait_for(Duration::from_secs(20), "a subscription over TLS", || {
                c2.report().queue_subscriptions == 1
            })
            .await;
            let h = health().await;
            assert_eq!(h["cic"]["connected"], true, "{h}");
            assert!(h["cic"]["host"].as_str().unwrap().starts_with("https://"), "{h}");
        } else {
            wait_until(Duration::from_secs(20), "a login error", || async {
                health().await["cic"]["last_error"].is_string()
            })
            .await;
            let h = health().await;
            let err = h["cic"]["last_error"].as_str().unwrap_or_default().to_string();
            assert!(err.contains("certificate"), "the reason is given: {h}");
            assert_eq!(h["cic"]["connected"], false, "{h}");
            assert_eq!(cic.report().logins, 0, "no login reached an untrusted server");
        }
        terminate(&child);
        assert!(child.wait().unwrap().success());
    }
    stop.trigger();
}

#[test]
fn a_bad_ca_file_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("ca.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    for path in [junk, dir.path().join("missing.pem")] {
        let err = cic_conduit::source::icws::client::http_client(Some(&path), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sources.icws.ca_file"), "{err}");
    }
    assert!(cic_conduit::source::icws::client::http_client(None, None).is_ok());
}
