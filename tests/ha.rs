//! A CIC switchover pair, each server with its conduit (`ha.mode = local-primary`), and one
//! Genesys Cloud: only the conduit beside the primary reads CIC; after a switchover the other
//! takes over, and every interaction's full state sequence reaches the cloud, any duplicate with
//! the same id.
#![cfg(unix)]

mod common;

use std::time::{Duration, Instant};

use cic_conduit::shutdown::Shutdown;
use cic_conduit::sim::cic::{CicSim, CicSimConfig};
use cic_conduit::sim::cloud::{CloudSim, SimConfig};
use cic_conduit::sim::traffic::Change;
use common::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cic-conduit");

fn changes(ids: std::ops::Range<usize>, attrs: &[(&'static str, &str)]) -> Vec<Change> {
    changes_of("30000000", ids, attrs)
}

async fn role(addr: &str) -> Value {
    let h: Value = serde_json::from_str(&get_text(&format!("http://{addr}/health")).await).unwrap();
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_hands_reading_to_the_new_primarys_conduit() {
    let stop = Shutdown::new();
    let pair = vec!["127.0.0.1".to_string()];
    let a = CicSim::new(CicSimConfig {
        server: "cic-a".into(),
        pair: pair.clone(),
        ..CicSimConfig::default()
    });
    let b = CicSim::new(CicSimConfig {
        server: "cic-b".into(),
        pair,
        backup: true,
        ..CicSimConfig::default()
    });
    let a_addr = a.spawn("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
    let b_addr = b.spawn("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
    let cloud = CloudSim::new(SimConfig::default());
    let cloud_addr = cloud.spawn("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("setup.toml");
    std::fs::write(&first, cloud_config_text(&dir.path().join("setup"), cloud_addr, "")).unwrap();
    let id = setup_configuration(BIN, &first, &[]);
    let conduit = |name: &str, cic: std::net::SocketAddr| {
        let config = dir.path().join(format!("{name}.toml"));
        let extra = format!(
            "\n[sources.icws]\nenabled = true\nhosts = [\"http://{cic}\"]\npassword = \"sim-password\"\nworkgroups = [\"Support\"]\npoll_interval_ms = 100\n[ha]\nmode = \"local-primary\"\nstandby_check_ms = 500\n[sinks.journey]\nconfiguration_id = \"{id}\"\nexternal_source_id = \"cic\"\nmax_age_ms = 100\n"
        );
        let text = cloud_config_text(&dir.path().join(name), cloud_addr, &extra)
            .replace("[sources.http]", "[sources.http]\nenabled = false");
        std::fs::write(&config, text).unwrap();
        spawn_conduit(BIN, &config)
    };
    let (mut ca, addr_a) = conduit("a", a_addr);
    let (mut cb, addr_b) = conduit("b", b_addr);
    let _guards = (KillOnDrop(ca.id()), KillOnDrop(cb.id()));
    let (a2, b2, cl) = (a.clone(), b.clone(), cloud.clone());
    wait_for(Duration::from_secs(20), "conduit A logged in", || {
        a2.report().logins == 1
    })
    .await;
    wait_for(Duration::from_secs(20), "conduit B refused", || {
        b2.report().logins_refused > 0
    })
    .await;
    assert_eq!(role(&addr_b).await["status"], "standby");
    assert_eq!(role(&addr_b).await["cic"]["role"], "standby");
    assert_eq!(role(&addr_a).await["cic"]["role"], "active");

    // The pair replicates: every change happens on both servers.
    let both = |c: Vec<Change>| {
        a.apply(&c);
        b.apply(&c);
    };
    let offer = [
        ("Eic_State", "O"),
        ("Eic_WorkgroupName", "Support"),
        ("Eic_CallDirection", "I"),
    ];
    both(changes(0..10, &offer));
    both(changes(0..5, &[("Eic_State", "C"), ("Eic_UserName", "jdoe")]));
    wait_for(Duration::from_secs(20), "A's events", || cl.report().unique_ids == 25).await;
    assert_eq!(b.report().logins, 0, "the backup's conduit read nothing");

    // Switchover: A becomes the backup and drops its sessions; B becomes primary.
    let switched = Instant::now();
    a.set_backup(true);
    a.drop_sessions();
    b.set_backup(false);
    wait_for(Duration::from_secs(30), "conduit B took over", || {
        b2.report().logins == 1
    })
    .await;
    let takeover = switched.elapsed();
    both(changes(5..10, &[("Eic_State", "C"), ("Eic_UserName", "asmith")]));
    both(changes(0..10, &[("Eic_State", "I")]));
    // Every interaction: started, queued, connected, ended.
    wait_for(Duration::from_secs(30), "the full sequences", || {
        cl.report().unique_ids == 40
    })
    .await;
    let received = cloud.received(0);
    for i in 0..10 {
        let key = format!("30000000{i:02}20240409");
        // Each event once, at its first arrival (a re-sent one carries the same id).
        let mut seen = std::collections::HashSet::new();
        let kinds: Vec<&str> = received
            .iter()
            .filter(|r| r.call_id_key.as_deref() == Some(&key) && seen.insert(r.id.clone()))
            .filter_map(|r| r.event_type.as_deref())
            .collect();
        assert_eq!(kinds, ["started", "queued", "connected", "ended"], "{key}");
    }
    // B's snapshot repeated what A had sent: only as duplicates with the same ids.
    let r = cloud.report();
    assert_eq!(r.unique_ids, 40);
    assert!(takeover < Duration::from_secs(30), "takeover took {takeover:?}");
    println!(
        "takeover {takeover:?}, duplicates {}, of which with other content {}",
        r.duplicates, r.conflicting_duplicates
    );
    wait_for(Duration::from_secs(20), "A standing by", || {
        a2.report().logins_refused > 0
    })
    .await;
    assert_eq!(role(&addr_a).await["cic"]["role"], "standby");
    assert_eq!(role(&addr_b).await["cic"]["role"], "active");
    let m = get_text(&format!("http://{addr_b}/metrics")).await;
    assert!(m.contains("conduit_ha_role 1"), "{m}");
    for c in [&mut ca, &mut cb] {
        terminate(c);
        assert!(c.wait().unwrap().success());
    }
    stop.trigger();
}
