//! After a SIGKILL at any moment, no event id is ever reused for different content, and no
//! interaction misses a state: real conduits read realistic traffic (from a simulated CIC over
//! ICWS, or pushed over HTTP by a sender that retries until it hears 202), are killed at random
//! moments over and over, and deliver to one simulated organization, which compares the content
//! of every id that arrives more than once with its first arrival.
#![cfg(unix)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cic_conduit::shutdown::Shutdown;
use cic_conduit::sim::cic::{CicSim, CicSimConfig};
use cic_conduit::sim::cloud::{CloudSim, SimConfig};
use cic_conduit::sim::traffic::{Change, Traffic, WORKGROUPS};
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_cic-conduit");
const KILLS: usize = 20;

fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn seed() -> u64 {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {s}");
    s
}

/// The event a change of `Eic_State` yields, given the state before it.
fn event_of(before: Option<&str>, state: &str) -> &'static str {
    match state {
        "O" => "queued",
        "A" => "alerting",
        "R" => "dialing",
        "C" if before == Some("H") => "resumed",
        "C" => "connected",
        "H" => "held",
        "I" | "E" => "ended",
        _ => "state_changed",
    }
}

/// What a cloud received, per interaction key: event types of the distinct ids, in arrival order.
fn delivered(cloud: &CloudSim) -> BTreeMap<String, Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in cloud.received(0) {
        if seen.insert(r.id.clone()) {
            out.entry(r.call_id_key.unwrap_or_default())
                .or_default()
                .push(r.event_type.unwrap_or_default());
        }
    }
    out
}

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

/// One interaction as the traffic played it.
#[derive(Default)]
struct Life {
    key: String,
    state: Option<String>,
    workgroup: Option<String>,
    agent: Option<String>,
    /// The event types its changes yield.
    events: Vec<&'static str>,
}

/// Every interaction the traffic played.
#[derive(Default)]
struct Truth {
    lives: HashMap<String, Life>,
}

impl Truth {
    fn record(&mut self, changes: &[Change]) {
        for c in changes {
            let life = self.lives.entry(c.interaction_id.clone()).or_insert_with(|| Life {
                events: vec!["started"],
                ..Life::default()
            });
            let mut moved = false;
            for (k, v) in &c.attributes {
                let slot = match *k {
                    "Eic_CallIdKey" => {
                        life.key = v.clone();
                        continue;
                    }
                    "Eic_State" => {
                        life.events.push(event_of(life.state.as_deref(), v));
                        life.state = Some(v.clone());
                        continue;
                    }
                    "Eic_WorkgroupName" => &mut life.workgroup,
                    "Eic_UserName" => &mut life.agent,
                    _ => continue,
                };
                // A workgroup or agent changing from one value to another is a transfer.
                moved |= slot.as_ref().is_some_and(|old| old != v);
                *slot = Some(v.clone());
            }
            if moved {
                life.events.push("transferred");
            }
        }
    }
}

/// Plays traffic into `sink` every 20 ms until `stop`; then plays every scheduled change out.
fn play(
    seed: u64,
    sink: impl Fn(Vec<Change>) + Send + 'static,
    stop: Arc<AtomicBool>,
    truth: Arc<Mutex<Truth>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let t0 = cic_conduit::timefmt::now_ms();
        let mut traffic = Traffic::new(seed, 8.0, 0.02, t0);
        let mut out = Vec::new();
        let mut stopped_at = None;
        loop {
            let now = cic_conduit::timefmt::now_ms();
            if stopped_at.is_none() && stop.load(Ordering::Relaxed) {
                stopped_at = Some(now);
            }
            // After the stop no new interaction arrives; the lives under way run their course.
            if stopped_at.is_some() {
                if traffic.scheduled() == 0 {
                    break;
                }
                traffic.drain(now, &mut out);
            } else {
                traffic.advance(now, &mut out);
            }
            if !out.is_empty() {
                truth.lock().unwrap().record(&out);
                sink(std::mem::take(&mut out));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

/// Starts the conduit `KILLS` times and SIGKILLs it each time after a random number of new
/// events reached the cloud (so at a random moment of its work), then starts it once more and lets it
/// deliver everything after `stop` ended the traffic.
async fn kill_loop(
    r: &Rig,
    addr: &Arc<Mutex<Option<String>>>,
    stop: &Arc<AtomicBool>,
    player: std::thread::JoinHandle<()>,
    truth: &Arc<Mutex<Truth>>,
) -> usize {
    let mut seed = seed();
    let mut kills = 0;
    for _ in 0..KILLS {
        let (mut child, a) = spawn_conduit(BIN, &r.config);
        let _guard = KillOnDrop(child.id());
        *addr.lock().unwrap() = Some(a);
        let target = r.cloud.report().unique_ids + 1 + rng(&mut seed) % 60;
        let cloud = r.cloud.clone();
        wait_for(Duration::from_secs(60), "new events flowing before the kill", || {
            cloud.report().unique_ids >= target
        })
        .await;
        *addr.lock().unwrap() = None;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let (mut child, a) = spawn_conduit(BIN, &r.config);
    let _guard = KillOnDrop(child.id());
    *addr.lock().unwrap() = Some(a);
    tokio::task::spawn_blocking(move || player.join().unwrap())
        .await
        .unwrap();
    let keys: Vec<String> = truth.lock().unwrap().lives.values().map(|l| l.key.clone()).collect();
    let cloud = r.cloud.clone();
    wait_for(Duration::from_secs(90), "every interaction ended in the cloud", || {
        let got = delivered(&cloud);
        keys.iter()
            .all(|k| got.get(k).is_some_and(|t| t.iter().any(|t| t == "ended")))
    })
    .await;
    terminate(&child);
    assert!(child.wait().unwrap().success());
    kills
}

/// Per interaction: the event types expected and delivered, sorted.
fn compare(r: &Rig, truth: &Truth) -> Vec<(String, Vec<String>, Vec<String>)> {
    let got = delivered(&r.cloud);
    truth
        .lives
        .values()
        .map(|life| {
            let mut want: Vec<String> = life.events.iter().map(|t| t.to_string()).collect();
            want.sort();
            let mut have = got.get(&life.key).cloned().unwrap_or_default();
            have.sort();
            (life.key.clone(), want, have)
        })
        .collect()
}

/// Prints a kill loop's figures and checks what every source promises: enough traffic to mean
/// anything, no id with two contents, no event for a change that never happened. Answers, per
/// interaction, the event types expected and delivered.
fn tally(source: &str, r: &Rig, kills: usize, truth: &Truth) -> Vec<(String, Vec<String>, Vec<String>)> {
    let report = r.cloud.report();
    let rows = compare(r, truth);
    let missed: usize = rows.iter().map(|(_, w, h)| missing(w, h)).sum();
    let extra: usize = rows.iter().map(|(_, w, h)| missing(h, w)).sum();
    println!(
        "{source}: {kills} kills, {} interactions, {} entities ({} duplicates), ids with two contents {}, states missed {missed}, states never played {extra}",
        rows.len(),
        report.entities_accepted,
        report.duplicates,
        report.conflicting_duplicates
    );
    assert!(rows.len() >= 50, "too little traffic to mean anything: {}", rows.len());
    assert_eq!(report.conflicting_duplicates, 0, "an id arrived with two contents");
    assert_eq!(extra, 0, "an event for a change that never happened");
    rows
}

/// Items missing from `have` that `want` has (multisets).
fn missing(want: &[String], have: &[String]) -> usize {
    let mut left = have.to_vec();
    want.iter()
        .filter(|w| match left.iter().position(|h| h == *w) {
            Some(i) => {
                left.remove(i);
                false
            }
            None => true,
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_during_push_traffic_never_reuse_an_id_and_miss_no_state() {
    let r = rig(false).await;
    let (stop, truth) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Truth::default())));
    let addr: Arc<Mutex<Option<String>>> = Arc::default();
    // The sender: one request at a time, each retried until it is answered 202.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<Change>>();
    let a2 = addr.clone();
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
                let at = a2.lock().unwrap().clone();
                if let Some(at) = at {
                    let sent = c
                        .post(format!("http://{at}/v1/interactions"))
                        .bearer_auth(TOKEN)
                        .body(body.clone())
                        .send()
                        .await;
                    match sent {
                        Ok(resp) if resp.status().as_u16() == 202 => break,
                        Ok(resp) if resp.status().is_client_error() => panic!("refused: {}", resp.status()),
                        _ => {}
                    }
                }
                // No conduit, or it died mid-request: try again shortly (a sender's retry).
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let player = play(seed(), move |c| tx.send(c).unwrap(), stop.clone(), truth.clone());
    let kills = kill_loop(&r, &addr, &stop, player, &truth).await;
    sender.await.unwrap();
    let rows = tally("push", &r, kills, &truth.lock().unwrap());
    for (key, want, have) in &rows {
        assert_eq!(want, have, "{key}: every pushed change, once");
    }
    r.stop.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_during_icws_traffic_never_reuse_an_id_and_miss_no_state() {
    let r = rig(true).await;
    let (stop, truth) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Truth::default())));
    let cic = r.cic.clone();
    let player = play(seed(), move |c| cic.apply(&c), stop.clone(), truth.clone());
    let addr: Arc<Mutex<Option<String>>> = Arc::default();
    let kills = kill_loop(&r, &addr, &stop, player, &truth).await;
    // A state that began and gave way while the conduit was down is in no message it reads: it
    // is counted, not expected; but every interaction starts and ends.
    let rows = tally("icws", &r, kills, &truth.lock().unwrap());
    for (key, _, have) in &rows {
        for must in ["started", "ended"] {
            assert!(have.iter().any(|t| t == must), "{key} misses {must}: {have:?}");
        }
    }
    r.stop.trigger();
}
