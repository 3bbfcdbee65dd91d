//! After a SIGKILL at any moment, no event id is ever reused for different content, and no
//! interaction misses a state: real conduits read realistic traffic (from a simulated CIC over
//! ICWS, or pushed over HTTP by a sender that retries until it hears 202), are killed at random
//! moments over and over, and deliver to one simulated organization, which compares the content
//! of every id that arrives more than once with its first arrival.
#![cfg(unix)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use cic_conduit::shutdown::Shutdown;
use cic_conduit::sim::cic::{CicSim, CicSimConfig};
use cic_conduit::sim::cloud::{CloudSim, SimConfig};
use cic_conduit::sim::traffic::{Change, WORKGROUPS};
use common::story::*;
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_cic-conduit");
const KILLS: usize = 20;

struct Rig {
    stop: Shutdown,
    cic: Arc<CicSim>,
    cloud: Arc<CloudSim>,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// A CIC, an organization with the journey set up, and a conduit config reading CIC (`icws`) or
/// taking pushes; small segments so that acknowledged records are deleted as it runs.
async fn rig(icws: bool) -> Rig {
    let stop = Shutdown::new();
    let cic = CicSim::new(CicSimConfig {
        pair: vec!["127.0.0.1".into()],
        linger: Duration::from_millis(200),
        ..CicSimConfig::default()
    });
    let cic_addr = cic.spawn("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
    let cloud = CloudSim::new(SimConfig::default());
    let cloud_addr = cloud.spawn("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    let mut base = cloud_config_text(&dir.path().join("data"), cloud_addr, "").replace(
        "[buffer]\n",
        "[buffer]\nsegment_max_bytes = 65536\nmax_record_bytes = 16384\n",
    );
    if icws {
        base = base.replace("[sources.http]", "[sources.http]\nenabled = false");
    }
    std::fs::write(&config, &base).unwrap();
    let id = setup_configuration(BIN, &config, &[]);
    let workgroups: Vec<String> = WORKGROUPS.iter().map(|w| format!("\"{w}\"")).collect();
    let icws_section = if icws {
        format!(
            "[sources.icws]\nenabled = true\nhosts = [\"http://{cic_addr}\"]\npassword = \"sim-password\"\nworkgroups = [{}]\nreconnect_max_ms = 1000\n[ha]\nmode = \"follow-primary\"\n",
            workgroups.join(", ")
        )
    } else {
        String::new()
    };
    std::fs::write(
        &config,
        format!(
            "{base}\n{icws_section}[sinks.journey]\nconfiguration_id = \"{id}\"\nexternal_source_id = \"cic\"\nmax_age_ms = 50\n"
        ),
    )
    .unwrap();
    Rig {
        stop,
        cic,
        cloud,
        config,
        _dir: dir,
    }
}

/// Starts the conduit `KILLS` times and SIGKILLs it each time after a random number of new
/// events reached the cloud (so at a random moment of its work), then starts it once more and
/// lets it deliver everything once the player's traffic has run its course.
/// `addr` says where the running conduit listens (`None` while there is none).
async fn kill_loop(r: &Rig, addr: &tokio::sync::watch::Sender<Option<String>>, player: &mut Player) -> usize {
    let mut seed = seed();
    let mut kills = 0;
    for _ in 0..KILLS {
        let (mut child, a) = spawn_conduit(BIN, &r.config);
        let _guard = KillOnDrop(child.id());
        addr.send_replace(Some(a));
        let target = r.cloud.report().unique_ids + 1 + rng(&mut seed) % 60;
        let cloud = r.cloud.clone();
        wait_for(Duration::from_secs(60), "new events flowing before the kill", || {
            cloud.report().unique_ids >= target
        })
        .await;
        addr.send_replace(None);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    let (mut child, a) = spawn_conduit(BIN, &r.config);
    let _guard = KillOnDrop(child.id());
    addr.send_replace(Some(a));
    player.wait_for_interactions(60).await;
    player.finish().await;
    wait_all_ended(&r.cloud, &player.truth, Duration::from_secs(90)).await;
    terminate(&child);
    assert!(child.wait().unwrap().success());
    kills
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_during_push_traffic_never_reuse_an_id_and_miss_no_state() {
    let r = rig(false).await;
    let (addr, mut at) = tokio::sync::watch::channel::<Option<String>>(None);
    // The sender: one request at a time, each sent again until it is answered 202.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<Change>>();
    let sender = tokio::spawn(async move {
        let c = client();
        while let Some(changes) = rx.recv().await {
            let items: Vec<serde_json::Value> = changes
                .iter()
                .map(|c| {
                    let attrs: serde_json::Map<String, serde_json::Value> = c
                        .attributes
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.clone().into()))
                        .collect();
                    serde_json::json!({"interactionId": c.interaction_id, "attributes": attrs})
                })
                .collect();
            let body = serde_json::Value::Array(items).to_string();
            loop {
                // Wait for a conduit to send to.
                let to = at.wait_for(Option::is_some).await.unwrap().clone().unwrap();
                let sent = c
                    .post(format!("http://{to}/v1/interactions"))
                    .bearer_auth(TOKEN)
                    .body(body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status().as_u16() == 202 => break,
                    Ok(resp) => panic!("unexpected status {}", resp.status()),
                    // Killed mid-request: send again to the conduit started after it.
                    Err(_) => {
                        at.wait_for(|a| a.as_ref() != Some(&to)).await.unwrap();
                    }
                }
            }
        }
    });
    let mut player = Player::start(seed(), 8.0, 0.02, move |c| tx.send(c).unwrap());
    let kills = kill_loop(&r, &addr, &mut player).await;
    // The player has ended: its sink, and with it the sender's queue, are gone.
    sender.await.unwrap();
    let t = tally(&format!("push: {kills} kills"), &r.cloud, &player.truth.lock().unwrap());
    assert_eq!(t.extra, 0, "an event for a change that never happened");
    for (key, want, have) in &t.rows {
        assert_eq!(want, have, "{key}: every pushed change, once");
    }
    r.stop.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_during_icws_traffic_never_reuse_an_id_and_miss_no_state() {
    let r = rig(true).await;
    let cic = r.cic.clone();
    let mut player = Player::start(seed(), 8.0, 0.02, move |c| cic.apply(&c));
    let (addr, _) = tokio::sync::watch::channel(None);
    let kills = kill_loop(&r, &addr, &mut player).await;
    // A state that began and gave way while the conduit was down is in no message it reads: it
    // is counted, not expected; but every interaction starts and ends.
    let t = tally(&format!("icws: {kills} kills"), &r.cloud, &player.truth.lock().unwrap());
    assert_eq!(t.extra, 0, "an event for a change that never happened");
    for (key, _, have) in &t.rows {
        for must in ["started", "ended"] {
            assert!(have.iter().any(|t| t == must), "{key} misses {must}: {have:?}");
        }
    }
    r.stop.trigger();
}
