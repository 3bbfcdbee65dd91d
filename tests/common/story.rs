//! The story a CIC told and the one a Genesys Cloud organization received: realistic traffic
//! played into a simulated CIC or a push sender, what it should yield, and how what arrived
//! compares.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cic_conduit::sim::cloud::CloudSim;
use cic_conduit::sim::traffic::{Change, Traffic};

/// A small xorshift, so random moments differ run to run without a dependency.
pub fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// A seed from the clock, printed so a failing run can be told apart.
pub fn seed() -> u64 {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {s}");
    s
}

/// The event a change of `Eic_State` yields, given the state before it.
pub fn event_of(before: Option<&str>, state: &str) -> &'static str {
    match state {
        "O" => "queued",
        "A" => "alerting",
        "R" => "dialing",
        "C" if before == Some("H") => "resumed",
        "C" => "connected",
        "H" => "held",
        "P" => "parked",
        "M" => "voicemail",
        "I" | "E" => "ended",
        _ => "state_changed",
    }
}

/// What a cloud received, per interaction key: event types of the distinct ids, in arrival order.
pub fn delivered(cloud: &CloudSim) -> BTreeMap<String, Vec<String>> {
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

/// One interaction as the traffic played it.
#[derive(Default)]
pub struct Life {
    pub key: String,
    pub state: Option<String>,
    pub workgroup: Option<String>,
    pub agent: Option<String>,
    /// The event types its changes yield.
    pub events: Vec<&'static str>,
}

/// Every interaction the traffic played.
#[derive(Default)]
pub struct Truth {
    pub lives: HashMap<String, Life>,
}

impl Truth {
    pub fn record(&mut self, changes: &[Change]) {
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

/// Plays realistic traffic (a [`Traffic`] generator at `arrivals_per_sec`, lives scaled by
/// `time_scale`) into a sink every 20 ms, recording what it played in [`Player::truth`].
pub struct Player {
    /// Ends the arrivals; the lives under way then run their course and the player ends.
    stop: std::sync::mpsc::Sender<()>,
    /// Everything played.
    pub truth: Arc<Mutex<Truth>>,
    paused: Arc<AtomicBool>,
    /// Held while a tick plays its changes.
    tick: Arc<Mutex<()>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Player {
    /// Starts playing into `sink`.
    pub fn start(
        seed: u64,
        arrivals_per_sec: f64,
        time_scale: f64,
        sink: impl Fn(Vec<Change>) + Send + 'static,
    ) -> Player {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let paused = Arc::new(AtomicBool::new(false));
        let (truth, tick) = (Arc::new(Mutex::new(Truth::default())), Arc::new(Mutex::new(())));
        let (pa, tr, ti) = (paused.clone(), truth.clone(), tick.clone());
        let handle = std::thread::spawn(move || {
            // The traffic's clock: the wall clock less the time spent paused.
            let mut paused_ms = 0;
            let mut last = cic_conduit::timefmt::now_ms();
            let mut traffic = Traffic::new(seed, arrivals_per_sec, time_scale, last);
            let mut out = Vec::new();
            let mut stopping = false;
            loop {
                {
                    let _tick = ti.lock().unwrap();
                    let now = cic_conduit::timefmt::now_ms();
                    if pa.load(Ordering::Acquire) {
                        paused_ms += now - last;
                    }
                    last = now;
                    if !pa.load(Ordering::Acquire) {
                        // After the stop no new interaction arrives; the lives under way run on.
                        if stopping {
                            if traffic.scheduled() == 0 {
                                break;
                            }
                            traffic.drain(now - paused_ms, &mut out);
                        } else {
                            traffic.advance(now - paused_ms, &mut out);
                        }
                        if !out.is_empty() {
                            tr.lock().unwrap().record(&out);
                            sink(std::mem::take(&mut out));
                        }
                    }
                }
                // The next tick is due in 20 ms, or at once when told to stop.
                match stopped.recv_timeout(std::time::Duration::from_millis(20)) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => stopping = true,
                }
            }
        });
        Player {
            stop,
            truth,
            paused,
            tick,
            handle: Some(handle),
        }
    }

    /// Holds the traffic (its clock too): once this returns, nothing is played until
    /// [`Player::resume`].
    pub fn pause(&self) {
        self.paused.store(true, Ordering::Release);
        drop(self.tick.lock().unwrap());
    }

    /// Plays on from where it was held.
    pub fn resume(&self) {
        self.paused.store(false, Ordering::Release);
    }

    /// Waits until at least `n` interactions have arrived (so that a run means something
    /// however its random moments fell).
    pub async fn wait_for_interactions(&self, n: usize) {
        let truth = self.truth.clone();
        super::wait_for(
            std::time::Duration::from_secs(120),
            "enough interactions played",
            || truth.lock().unwrap().lives.len() >= n,
        )
        .await;
    }

    /// Ends the arrivals and waits until every life under way has run its course.
    pub async fn finish(&mut self) {
        let _ = self.stop.send(());
        let handle = self.handle.take().expect("finished once");
        tokio::task::spawn_blocking(move || handle.join().unwrap())
            .await
            .unwrap();
    }
}

/// Per interaction: the event types expected and delivered, sorted.
pub fn compare(cloud: &CloudSim, truth: &Truth) -> Vec<(String, Vec<String>, Vec<String>)> {
    let got = delivered(cloud);
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

/// Items missing from `have` that `want` has (multisets).
pub fn missing(want: &[String], have: &[String]) -> usize {
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

/// Waits until every interaction `truth` played has its `ended` in the cloud.
pub async fn wait_all_ended(cloud: &Arc<CloudSim>, truth: &Arc<Mutex<Truth>>, limit: std::time::Duration) {
    let keys: Vec<String> = truth.lock().unwrap().lives.values().map(|l| l.key.clone()).collect();
    super::wait_for(limit, "every interaction ended in the cloud", || {
        let got = delivered(cloud);
        keys.iter()
            .all(|k| got.get(k).is_some_and(|t| t.iter().any(|t| t == "ended")))
    })
    .await;
}

/// What a run delivered against what it played.
pub struct Tally {
    /// Per interaction: its key, the event types expected and those delivered, sorted.
    pub rows: Vec<(String, Vec<String>, Vec<String>)>,
    /// States played that no event reported.
    pub missed: usize,
    /// Events beyond the states played (a state reported again, or one never played).
    pub extra: usize,
}

/// Prints a run's figures after `what` (what it did: "push: 20 kills") and checks what every
/// run promises: enough traffic to mean anything, and no id that arrived with two contents.
pub fn tally(what: &str, cloud: &CloudSim, truth: &Truth) -> Tally {
    let report = cloud.report();
    let rows = compare(cloud, truth);
    let missed = rows.iter().map(|(_, w, h)| missing(w, h)).sum();
    let extra = rows.iter().map(|(_, w, h)| missing(h, w)).sum();
    println!(
        "{what}, {} interactions, {} entities ({} duplicates), ids with two contents {}, states missed {missed}, events beyond the states played {extra}",
        rows.len(),
        report.entities_accepted,
        report.duplicates,
        report.conflicting_duplicates
    );
    assert!(rows.len() >= 50, "too little traffic to mean anything: {}", rows.len());
    assert_eq!(report.conflicting_duplicates, 0, "an id arrived with two contents");
    Tally { rows, missed, extra }
}
