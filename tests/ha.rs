//! A CIC switchover pair, each server with its conduit (`ha.mode = local-primary`), and one
//! Genesys Cloud: only the conduit beside the primary reads CIC; after a switchover the other
//! takes over, every interaction's full state sequence reaches the cloud, and whichever conduit
//! sent an id, it arrived with one content.
#![cfg(unix)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cic_conduit::shutdown::Shutdown;
use cic_conduit::sim::cic::{CicSim, CicSimConfig};
use cic_conduit::sim::cloud::{CloudSim, SimConfig};
use cic_conduit::sim::traffic::{Change, WORKGROUPS};
use common::kafka::{Broker, kafka_buffer};
use common::story::*;
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

/// The pair (`a` primary, `b` backup), the organization, and a conduit beside each server.
struct Pair {
    stop: Shutdown,
    sims: [Arc<CicSim>; 2],
    cloud: Arc<CloudSim>,
    conduits: [(std::process::Child, String); 2],
    _guards: (KillOnDrop, KillOnDrop),
    _dir: tempfile::TempDir,
}

impl Pair {
    /// Everything started; `a`'s conduit reading, `b`'s standing by.
    async fn start() -> Pair {
        Pair::start_with(None).await
    }

    /// [`Pair::start`], the conduits' buffer a topic of `kafka` when given (both produce to it
    /// and both consume it, in one group).
    async fn start_with(kafka: Option<&Broker>) -> Pair {
        let buffer = |text: String| match kafka {
            Some(b) => kafka_buffer(&text, b, "pair", 4),
            None => text,
        };
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
        std::fs::write(
            &first,
            buffer(cloud_config_text(&dir.path().join("setup"), cloud_addr, "")),
        )
        .unwrap();
        let id = setup_configuration(BIN, &first, &[]);
        let workgroups: Vec<String> = WORKGROUPS.iter().map(|w| format!("\"{w}\"")).collect();
        let conduit = |name: &str, cic: std::net::SocketAddr| {
            let config = dir.path().join(format!("{name}.toml"));
            let extra = format!(
                "\n[sources.icws]\nenabled = true\nhosts = [\"http://{cic}\"]\npassword = \"sim-password\"\nworkgroups = [{}]\npoll_interval_ms = 100\n[ha]\nmode = \"local-primary\"\nstandby_check_ms = 500\n[sinks.journey]\nconfiguration_id = \"{id}\"\nexternal_source_id = \"cic\"\nmax_age_ms = 100\n",
                workgroups.join(", ")
            );
            let text = buffer(cloud_config_text(&dir.path().join(name), cloud_addr, &extra))
                .replace("[sources.http]", "[sources.http]\nenabled = false");
            std::fs::write(&config, text).unwrap();
            spawn_conduit(BIN, &config)
        };
        let ca = conduit("a", a_addr);
        let cb = conduit("b", b_addr);
        let guards = (KillOnDrop(ca.0.id()), KillOnDrop(cb.0.id()));
        let (a2, b2) = (a.clone(), b.clone());
        wait_for(Duration::from_secs(20), "conduit A subscribed", || {
            a2.report().queue_subscriptions == 1
        })
        .await;
        wait_for(Duration::from_secs(20), "conduit B refused", || {
            b2.report().logins_refused > 0
        })
        .await;
        Pair {
            stop,
            sims: [a, b],
            cloud,
            conduits: [ca, cb],
            _guards: guards,
            _dir: dir,
        }
    }

    /// The primary `from` becomes the backup and drops its sessions; the other becomes the
    /// primary. Returns once the other's conduit has subscribed there (its snapshot is taken).
    /// First, its conduit reads what its server has sent it: a dropped session's unread
    /// messages are lost (the partner's snapshot then finds only their latest state).
    async fn switch(&self, from: usize) -> Duration {
        let (old, new) = (self.sims[from].clone(), self.sims[1 - from].clone());
        let o = old.clone();
        wait_for(
            Duration::from_secs(20),
            "the primary's conduit read its messages",
            || o.report().messages_pending == 0,
        )
        .await;
        let subscribed = new.report().queue_subscriptions;
        let switched = Instant::now();
        old.set_backup(true);
        old.drop_sessions();
        new.set_backup(false);
        wait_for(Duration::from_secs(30), "the other conduit took over", || {
            new.report().queue_subscriptions > subscribed
        })
        .await;
        switched.elapsed()
    }

    /// Stops both conduits with SIGTERM; each exits cleanly.
    fn stop(mut self) {
        for (c, _) in &mut self.conduits {
            terminate(c);
            assert!(c.wait().unwrap().success());
        }
        self.stop.trigger();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_hands_reading_to_the_new_primarys_conduit() {
    let p = Pair::start().await;
    let [a, b] = [p.sims[0].clone(), p.sims[1].clone()];
    let (addr_a, addr_b) = (p.conduits[0].1.clone(), p.conduits[1].1.clone());
    let (a2, cl) = (a.clone(), p.cloud.clone());
    // B answers health once it has heard its server refuse it.
    let b_health = format!("http://{addr_b}/health");
    wait_until(Duration::from_secs(20), "B standing by", || {
        let url = b_health.clone();
        async move { get_text(&url).await.contains("\"status\":\"standby\"") }
    })
    .await;
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
        ("Eic_InitiationTime", "20240409T140311Z"),
    ];
    both(changes(0..10, &offer));
    both(changes(0..5, &[("Eic_State", "C"), ("Eic_UserName", "jdoe")]));
    wait_for(Duration::from_secs(20), "A's events", || cl.report().unique_ids == 25).await;
    assert_eq!(b.report().logins, 0, "the backup's conduit read nothing");

    // Switchover: A becomes the backup and drops its sessions; B becomes primary.
    let takeover = p.switch(0).await;
    both(changes(5..10, &[("Eic_State", "C"), ("Eic_UserName", "asmith")]));
    both(changes(0..10, &[("Eic_State", "I")]));
    // A's 25, the state B found each in (10), then 5 connects and 10 ends.
    wait_for(Duration::from_secs(30), "the full sequences", || {
        cl.report().unique_ids == 50
    })
    .await;
    let received = p.cloud.received(0);
    for i in 0..10 {
        let key = format!("30000000{i:02}20240409");
        // Each event once, at its first arrival (a re-sent one carries the same id).
        let mut seen = std::collections::HashSet::new();
        let kinds: Vec<&str> = received
            .iter()
            .filter(|r| r.call_id_key.as_deref() == Some(&key) && seen.insert(r.id.clone()))
            .filter_map(|r| r.event_type.as_deref())
            .collect();
        // B found 0..4 connected and 5..9 queued, and reported that under ids of its own.
        let expected = if i < 5 {
            ["started", "queued", "connected", "connected", "ended"]
        } else {
            ["started", "queued", "queued", "connected", "ended"]
        };
        assert_eq!(kinds, expected, "{key}");
    }
    // B's STARTED (dated by CIC, as the interaction began) is A's, id and content.
    let r = p.cloud.report();
    assert_eq!(
        (r.unique_ids, r.duplicates, r.conflicting_duplicates),
        (50, 10, 0),
        "{r:?}"
    );
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
    p.stop();
}

/// Realistic traffic into the pair while it switches over again and again, at random moments
/// (between two changes), with a conduit beside each server: whichever conduit sent an id, it
/// arrived with one content, and every state the traffic played reached the cloud.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_conduits_of_a_pair_tell_one_story_through_switchovers() {
    one_story(Pair::start().await, 8).await;
}

/// The same with both conduits producing to one Kafka topic and consuming it as one group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_producing_to_one_topic_tells_one_story_through_switchovers() {
    let broker = Broker::start();
    one_story(Pair::start_with(Some(&broker)).await, 4).await;
}

async fn one_story(p: Pair, switchovers: usize) {
    let sims = p.sims.clone();
    let mut player = Player::start(seed(), 8.0, 0.05, move |c| {
        sims[0].apply(&c);
        sims[1].apply(&c);
    });
    let mut seed = seed();
    let mut primary = 0;
    let mut takeovers = Vec::new();
    for _ in 0..switchovers {
        let target = p.cloud.report().unique_ids + 1 + rng(&mut seed) % 80;
        let cloud = p.cloud.clone();
        wait_for(Duration::from_secs(60), "events flowing before the switchover", || {
            cloud.report().unique_ids >= target
        })
        .await;
        // The pair switches between two changes, as CIC's own switchover does not lose them.
        player.pause();
        takeovers.push(p.switch(primary).await);
        player.resume();
        primary = 1 - primary;
    }
    player.wait_for_interactions(60).await;
    player.finish().await;
    wait_all_ended(&p.cloud, &player.truth, Duration::from_secs(90)).await;
    // A state the new primary's conduit found is reported again, under an id of its own.
    let t = tally(
        &format!("pair: {switchovers} switchovers (takeovers {takeovers:?})"),
        &p.cloud,
        &player.truth.lock().unwrap(),
    );
    assert_eq!(t.missed, 0, "a state the traffic played never reached the cloud");
    p.stop();
}
