//! The Kafka buffer with a real broker (tansu, see `common::kafka`) and real conduits over
//! loopback: ingest conduits produce to one topic, a consumer group of dispatchers delivers to
//! the Genesys Cloud simulator.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use cic_conduit::shutdown::Shutdown;
use cic_conduit::sim::cloud::{CloudSim, FaultUpdate, Received, SimConfig};
use common::kafka::{Broker, kafka_buffer};
use common::{
    KillOnDrop, by_interaction, config_text, get_text, item, metric, push_lifecycles, spawn_conduit_env, terminate,
    wait_for, wait_until,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cic-conduit");
const TOPIC: &str = "cic-events";
const PARTITIONS: u32 = 4;
const ENV: &[(&str, &str)] = &[("TEST_SIM_SECRET", "sim-secret")];

/// A broker, the cloud simulator, and conduits' configs around them.
struct Cluster {
    broker: Broker,
    sim: Arc<CloudSim>,
    sim_addr: SocketAddr,
    _sim_stop: Shutdown,
    dir: tempfile::TempDir,
    configuration_id: String,
    pids: std::sync::Mutex<Vec<KillOnDrop>>,
    /// Extra lines for `[buffer.kafka.properties]`.
    properties: String,
}

impl Cluster {
    async fn start() -> Cluster {
        Self::start_with(Broker::start(), "").await
    }

    /// A cluster on `broker`, its conduits with `properties` added to their Kafka properties.
    async fn start_with(broker: Broker, properties: &str) -> Cluster {
        let sim = CloudSim::new(SimConfig::default());
        let stop = Shutdown::new();
        let sim_addr = sim.spawn("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
        let mut c = Cluster {
            broker,
            sim,
            sim_addr,
            _sim_stop: stop,
            dir: tempfile::tempdir().unwrap(),
            configuration_id: String::new(),
            pids: Default::default(),
            properties: properties.to_string(),
        };
        // `setup` creates the topic, then the journey configuration.
        let config = c.config("setup", "dispatch");
        let out = Command::new(BIN)
            .args(["setup", "--config"])
            .arg(&config)
            .envs(ENV.iter().copied())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            text.contains(&format!(
                "topic          {TOPIC} (created with {PARTITIONS} partitions)"
            )),
            "{text}"
        );
        c.configuration_id = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("configuration  ")?
                    .split_whitespace()
                    .next()
                    .map(str::to_string)
            })
            .expect("a configuration id");
        c
    }

    /// The config of conduit `name` in `role`, written; its data under `<dir>/<name>`.
    fn config(&self, name: &str, role: &str) -> PathBuf {
        let data = self.dir.path().join(name);
        let org = format!(
            "api_base_url = \"http://{a}\"\nlogin_base_url = \"http://{a}\"\nclient_id = \"sim-client\"\nclient_secret = {{ env = \"TEST_SIM_SECRET\" }}\n",
            a = self.sim_addr
        );
        let text = config_text(&data, "", &format!("role = \"{role}\""))
            .replace("api_base_url = \"http://127.0.0.1:9\"\n", "")
            .replace("login_base_url = \"http://127.0.0.1:9\"\n", &org);
        let mut text = kafka_buffer(&text, &self.broker, TOPIC, PARTITIONS).replace(
            "[buffer.kafka.properties]\n",
            &format!("[buffer.kafka.properties]\n{}", self.properties),
        );
        if role != "ingest" && !self.configuration_id.is_empty() {
            text += &format!(
                "\n[sinks.journey]\nconfiguration_id = \"{}\"\nexternal_source_id = \"cic-test\"\nmax_age_ms = 50\nretry_max_ms = 2000\n",
                self.configuration_id
            );
        }
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn spawn(&self, name: &str, role: &str) -> (Child, String) {
        let (child, addr) = spawn_conduit_env(BIN, &self.config(name, role), ENV);
        self.pids.lock().unwrap().push(KillOnDrop(child.id()));
        (child, addr)
    }
}

async fn metrics(addr: &str) -> String {
    get_text(&format!("http://{addr}/metrics")).await
}

async fn health(addr: &str) -> Value {
    serde_json::from_str(&get_text(&format!("http://{addr}/health")).await).unwrap()
}

/// Partitions a dispatcher has been assigned.
async fn assigned(addr: &str) -> f64 {
    metric(&metrics(addr).await, "conduit_kafka_assigned_partitions")
}

fn assert_in_order(received: &[Received]) {
    for (key, types) in by_interaction(received) {
        let firsts: Vec<&String> = types.iter().fold(Vec::new(), |mut seen, t| {
            if !seen.contains(&t) {
                seen.push(t);
            }
            seen
        });
        assert_eq!(firsts.first().map(|s| s.as_str()), Some("started"), "{key}: {types:?}");
        assert_eq!(firsts.last().map(|s| s.as_str()), Some("ended"), "{key}: {types:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ingest_conduits_one_topic_two_dispatchers_deliver_everything_in_order() {
    let c = Cluster::start().await;
    let (d1, d1_addr) = c.spawn("d1", "dispatch");
    let (d2, d2_addr) = c.spawn("d2", "dispatch");
    // The group shares the partitions out before anything is produced.
    wait_until(Duration::from_secs(60), "both dispatchers assigned", || async {
        let (a, b) = (assigned(&d1_addr).await, assigned(&d2_addr).await);
        a >= 1.0 && b >= 1.0 && a + b == f64::from(PARTITIONS)
    })
    .await;
    let (i1, i1_addr) = c.spawn("i1", "ingest");
    let (i2, i2_addr) = c.spawn("i2", "ingest");
    let (a, b) = tokio::join!(push_lifecycles(&i1_addr, "a", 150), push_lifecycles(&i2_addr, "b", 150));
    let accepted = a + b;
    assert!(
        a == b && a >= 450,
        "every change accepted once the broker acknowledged it: {a} {b}"
    );
    let sim = c.sim.clone();
    wait_for(Duration::from_secs(60), "delivery", || {
        sim.report().unique_ids == accepted
    })
    .await;
    let report = c.sim.report();
    assert_eq!(report.duplicates, 0, "{report:?}");
    assert_eq!(report.invalid_requests, 0);
    assert_in_order(&c.sim.received(0));
    // Both dispatchers delivered part of it, and count each event once (a count follows the
    // cloud's answer, which the simulator has given before the dispatcher reads it; counts
    // only grow, so one past the total never comes back to it).
    let delivered = |m: &str| metric(m, "conduit_sink_events_delivered_total{sink=\"journey\"}");
    wait_until(Duration::from_secs(30), "every delivery counted", || async {
        delivered(&metrics(&d1_addr).await) + delivered(&metrics(&d2_addr).await) == accepted as f64
    })
    .await;
    let (m1, m2) = (metrics(&d1_addr).await, metrics(&d2_addr).await);
    assert!(
        delivered(&m1) > 0.0 && delivered(&m2) > 0.0,
        "{} {}",
        delivered(&m1),
        delivered(&m2)
    );
    assert_eq!(delivered(&m1) + delivered(&m2), accepted as f64);
    // What was confirmed is committed: no lag is left.
    for addr in [&d1_addr, &d2_addr] {
        wait_until(Duration::from_secs(30), "lag 0", || async {
            let h = health(addr).await;
            let parts = h["buffer"]["kafka"]["partitions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            !parts.is_empty() && parts.iter().all(|p| p["lag"] == 0) && h["buffer"]["backlog_records"] == 0
        })
        .await;
    }
    let h = health(&d1_addr).await;
    assert_eq!(h["buffer"]["kafka"]["topic"], TOPIC);
    assert_eq!(h["buffer"]["kafka"]["group"], "dispatchers");
    let m = metrics(&i1_addr).await;
    assert_eq!(metric(&m, "conduit_buffer_appended_records_total"), a as f64);
    assert!(
        !m.contains("conduit_kafka_assigned_partitions 1"),
        "an ingest conduit consumes nothing"
    );
    for child in [&i1, &i2, &d1, &d2] {
        terminate(child);
    }
    for mut child in [i1, i2, d1, d2] {
        assert!(child.wait().unwrap().success());
    }
    // With no buffer directory, an ingest conduit still keeps its sources' state in its data dir.
    for name in ["i1", "i2"] {
        assert!(c.dir.path().join(name).join("source-state.json").exists(), "{name}");
    }
}

/// Journey sink and dispatcher defaults the tests rely on: a record is in flight in at most
/// this many batches of this many events.
const CONCURRENCY: usize = 4;
const MAX_EVENTS: usize = 100;
/// The most records the dispatcher takes from the buffer at once.
const READ: usize = 512;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_dispatcher_loses_nothing_and_resends_only_what_it_had_in_flight() {
    let c = Cluster::start().await;
    // A backlog first, then two dispatchers draining it. d1 forms the group, so it is the
    // group's leader, and it is the one killed below: tansu 0.6.0 drops a member whose session
    // ended but starts no new generation, so a dead follower restarted before then would be
    // given a share when the leader shares the partitions out for the newcomer, left with
    // nobody once its session ends (README, "Tested with"). A dead leader holds that sharing
    // back until its session ends; then the restarted d1 and d2 share everything.
    let (i1, i1_addr) = c.spawn("i1", "ingest");
    let accepted = push_lifecycles(&i1_addr, "k", 1000).await;
    let (mut d1, d1_addr) = c.spawn("d1", "dispatch");
    wait_until(Duration::from_secs(60), "d1 holding every partition", || async {
        assigned(&d1_addr).await == f64::from(PARTITIONS)
    })
    .await;
    let (d2, d2_addr) = c.spawn("d2", "dispatch");
    wait_until(Duration::from_secs(60), "both dispatchers assigned", || async {
        let (a, b) = (assigned(&d1_addr).await, assigned(&d2_addr).await);
        a >= 1.0 && b >= 1.0 && a + b == f64::from(PARTITIONS)
    })
    .await;
    let sim = c.sim.clone();
    wait_for(Duration::from_secs(60), "a quarter delivered", || {
        sim.report().unique_ids >= accepted / 4
    })
    .await;
    assert!(sim.report().unique_ids < accepted, "killed mid-drain");
    d1.kill().unwrap();
    d1.wait().unwrap();
    // Its service manager starts it again; the group shares the partitions out anew.
    let (d1, d1_addr) = c.spawn("d1", "dispatch");
    wait_until(Duration::from_secs(60), "the group rebalanced", || async {
        let (a, b) = (assigned(&d1_addr).await, assigned(&d2_addr).await);
        a >= 1.0 && b >= 1.0 && a + b == f64::from(PARTITIONS)
    })
    .await;
    wait_for(Duration::from_secs(90), "everything delivered", || {
        sim.report().unique_ids == accepted
    })
    .await;
    let report = sim.report();
    assert_eq!(report.conflicting_duplicates, 0, "{report:?}");
    // Sent twice: at each hand-over of partitions (d2 joining, d1 back) at most the batches then
    // in flight (their answers come after the partitions went); at the kill, whatever d1 had
    // confirmed past its committed offsets. A partition's commit follows its lowest record not
    // yet confirmed, and d1's lanes deliver in parallel, so that is at most what d1 had taken
    // into its lanes: per lane its queue (4 batches), the batch it fills and the one in flight,
    // plus the reader's last read. Never what was merely fetched.
    let in_lanes = CONCURRENCY * (4 + 2) * MAX_EVENTS + READ;
    let bound = (2 * CONCURRENCY * MAX_EVENTS + in_lanes) as u64;
    eprintln!(
        "kill: {accepted} events, {} sent twice (bound {bound}), {} with other content",
        report.duplicates, report.conflicting_duplicates
    );
    assert!(
        report.duplicates <= bound,
        "{} duplicates, bound {bound}",
        report.duplicates
    );
    let m = metrics(&d2_addr).await;
    assert!(
        metric(&m, "conduit_kafka_rebalances_total{change=\"revoke\"}") >= 1.0,
        "d2 took part in a rebalance"
    );
    for child in [&i1, &d1, &d2] {
        terminate(child);
    }
    for mut child in [i1, d1, d2] {
        assert!(child.wait().unwrap().success());
    }
}

/// The sum over `addr`'s partitions of `conduit_kafka_committed_offset`, and its commits.
async fn committed(addr: &str) -> (f64, f64) {
    let m = metrics(addr).await;
    let sum = m
        .lines()
        .filter(|l| l.starts_with("conduit_kafka_committed_offset{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    (sum, metric(&m, "conduit_kafka_commits_total{result=\"ok\"}"))
}

/// A dispatcher far behind a slow cloud: its commits follow the confirmations while it drains
/// (never past them), it stops fetching, and partitions it lost while not fetching are fetched
/// again when it regains them (librdkafka keeps a partition's pause across losing and regaining
/// it: without the resume on assignment they would stay stuck with their backlog).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_far_behind_commits_what_is_confirmed_and_regains_partitions_whole() {
    let c = Cluster::start().await;
    let sim = c.sim.clone();
    // Slow answers, but no per-minute ceiling in the way.
    sim.set_requests_per_minute(100_000);
    sim.set_faults(&FaultUpdate {
        latency_ms: Some(1000),
        ..Default::default()
    });
    let (i1, i1_addr) = c.spawn("i1", "ingest");
    // More than the dispatcher holds before it stops fetching (16,384 waiting records, past
    // its hand-off channel and lanes).
    let mut accepted = 0;
    for chunk in 0..4 {
        accepted += push_lifecycles(&i1_addr, &format!("f{chunk}-"), 2000).await;
    }
    let (d1, d1_addr) = c.spawn("d1", "dispatch");
    wait_until(
        Duration::from_secs(60),
        "d1 committing what the cloud confirmed",
        // Past the first offsets: a partition's first commit is its start, before anything
        // was confirmed.
        || async { committed(&d1_addr).await.0 > 0.0 },
    )
    .await;
    // Read in this order, both only grow: what was committed was confirmed before.
    let (offsets, commits) = committed(&d1_addr).await;
    let delivered = sim.report().unique_ids;
    eprintln!("far behind: {commits} commits, {offsets} records committed, {delivered} delivered of {accepted}");
    assert!(
        offsets > 0.0 && offsets <= delivered as f64,
        "{offsets} committed, {delivered} delivered"
    );
    assert!(delivered < accepted, "committed while draining, not at the end");
    wait_until(Duration::from_secs(60), "d1 stopped fetching", || async {
        metric(&metrics(&d1_addr).await, "conduit_kafka_fetch_paused") == 1.0
    })
    .await;
    // A second dispatcher takes half the partitions from d1 while d1 is not fetching.
    let (d2, d2_addr) = c.spawn("d2", "dispatch");
    wait_until(Duration::from_secs(60), "both dispatchers assigned", || async {
        let (a, b) = (assigned(&d1_addr).await, assigned(&d2_addr).await);
        a >= 1.0 && b >= 1.0 && a + b == f64::from(PARTITIONS)
    })
    .await;
    sim.set_faults(&FaultUpdate {
        latency_ms: Some(0),
        ..Default::default()
    });
    wait_for(Duration::from_secs(90), "the backlog delivered", || {
        sim.report().unique_ids == accepted
    })
    .await;
    wait_until(Duration::from_secs(30), "d1 fetching again", || async {
        metric(&metrics(&d1_addr).await, "conduit_kafka_fetch_paused") == 0.0
    })
    .await;
    // d2 goes: d1 regains the partitions it lost while it was not fetching.
    terminate(&d2);
    let mut d2 = d2;
    assert!(d2.wait().unwrap().success());
    wait_until(Duration::from_secs(60), "d1 holds every partition", || async {
        assigned(&d1_addr).await == f64::from(PARTITIONS)
    })
    .await;
    accepted += push_lifecycles(&i1_addr, "after-", 1000).await;
    wait_for(
        Duration::from_secs(60),
        "what came after delivered, from every partition",
        || sim.report().unique_ids == accepted,
    )
    .await;
    let report = sim.report();
    assert_eq!(report.conflicting_duplicates, 0, "{report:?}");
    for child in [&i1, &d1] {
        terminate(child);
    }
    for mut child in [i1, d1] {
        assert!(child.wait().unwrap().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_is_recovered_from_by_producers_and_consumers() {
    let mut c = Cluster::start().await;
    let (d1, d1_addr) = c.spawn("d1", "dispatch");
    wait_until(Duration::from_secs(60), "assigned", || async {
        assigned(&d1_addr).await == f64::from(PARTITIONS)
    })
    .await;
    let (i1, i1_addr) = c.spawn("i1", "ingest");
    let first = push_lifecycles(&i1_addr, "r", 100).await;
    let sim = c.sim.clone();
    wait_for(Duration::from_secs(60), "first delivery", || {
        sim.report().unique_ids == first
    })
    .await;

    c.broker.kill();
    // With the broker down an append is refused with "retry later", never dropped in silence.
    let probe = vec![item("probe0001", "O")];
    let resp = common::client()
        .post(format!("http://{i1_addr}/v1/interactions"))
        .bearer_auth(common::TOKEN)
        .json(&probe)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["accepted"], 0, "{body}");

    c.broker.restart();
    // The producer reconnects by itself: the same change is taken once the broker answers.
    let mut probed = 0;
    wait_until(Duration::from_secs(60), "appends accepted again", || {
        let addr = i1_addr.clone();
        let probe = probe.clone();
        async move {
            let resp = common::client()
                .post(format!("http://{addr}/v1/interactions"))
                .bearer_auth(common::TOKEN)
                .json(&probe)
                .send()
                .await
                .unwrap();
            resp.status().is_success()
        }
    })
    .await;
    probed += 1;
    let second = push_lifecycles(&i1_addr, "s", 100).await;
    // The consumer reconnects by itself and goes on from its committed offsets.
    wait_for(Duration::from_secs(90), "delivery after the restart", || {
        sim.report().unique_ids >= first + second + probed
    })
    .await;
    let report = sim.report();
    assert_eq!(report.conflicting_duplicates, 0, "{report:?}");
    for child in [&i1, &d1] {
        terminate(child);
    }
    for mut child in [i1, d1] {
        assert!(child.wait().unwrap().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_is_dead_lettered_with_its_position_and_consumption_goes_on() {
    use rdkafka::ClientConfig;
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let c = Cluster::start().await;
    // Two records no conduit wrote: one without headers, one that says it is an interaction but
    // is not one.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", c.broker.addr())
        .create()
        .unwrap();
    let mut poison = Vec::new();
    for (key, headers) in [
        ("x-no-headers", None),
        (
            "x-bad-payload",
            Some(OwnedHeaders::new().insert(Header {
                key: "conduit.kind",
                value: Some("interaction"),
            })),
        ),
    ] {
        let mut rec = FutureRecord::to(TOPIC).key(key).payload("not an event");
        if let Some(h) = headers {
            rec = rec.headers(h);
        }
        let d = producer.send(rec, Duration::from_secs(10)).await.unwrap();
        poison.push((d.partition as u32, d.offset as u64));
    }
    let (i1, i1_addr) = c.spawn("i1", "ingest");
    let accepted = push_lifecycles(&i1_addr, "p", 50).await;
    let (d1, d1_addr) = c.spawn("d1", "dispatch");
    let sim = c.sim.clone();
    wait_for(Duration::from_secs(60), "delivery past the poison", || {
        sim.report().unique_ids == accepted
    })
    .await;
    let data = c.dir.path().join("d1");
    let mut found = Vec::new();
    wait_for(Duration::from_secs(30), "two dead letters", || {
        found = cic_conduit::deadletter::list::<cic_conduit::deadletter::Interactions>(&data)
            .unwrap()
            .iter()
            .flat_map(|f| {
                cic_conduit::deadletter::read_file::<cic_conduit::deadletter::Interactions>(&f.path)
                    .unwrap()
                    .0
            })
            .map(|d| (d.partition, d.seq, d.reason, d.payload))
            .collect();
        found.len() == 2
    })
    .await;
    let mut positions: Vec<(u32, u64)> = found.iter().map(|(p, o, _, _)| (*p, *o)).collect();
    positions.sort();
    poison.sort();
    assert_eq!(positions, poison, "dead-lettered with its partition and offset");
    assert!(
        found.iter().all(|(_, _, _, payload)| &payload[..] == b"not an event"),
        "kept byte for byte"
    );
    // Consumption went on: nothing is left behind the poison.
    wait_until(Duration::from_secs(30), "lag 0", || async {
        let h = health(&d1_addr).await;
        h["buffer"]["backlog_records"] == 0
            && h["buffer"]["kafka"]["partitions"]
                .as_array()
                .is_some_and(|p| !p.is_empty())
    })
    .await;
    for child in [&i1, &d1] {
        terminate(child);
    }
    for mut child in [i1, d1] {
        assert!(child.wait().unwrap().success());
    }
}

/// TLS to the brokers: the producer, the consumer group and `setup` reach a TLS listener with the
/// CA given in `ssl.ca.location`; a conduit without it refuses the broker's certificate, and says
/// so, rather than accepting anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_the_brokers_verifies_their_certificate_against_the_ca_given() {
    let tls = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let broker = Broker::start_tls(&tls.join("cic.pem"), &tls.join("cic.key"));
    let props = format!(
        "\"security.protocol\" = \"ssl\"\n\"ssl.ca.location\" = {:?}\n",
        tls.join("ca.pem").display().to_string()
    );
    let c = Cluster::start_with(broker, &props).await;
    let (_d, d_addr) = c.spawn("d", "dispatch");
    let (_i, i_addr) = c.spawn("i", "ingest");
    let sent = push_lifecycles(&i_addr, "tls", 20).await;
    let sim = c.sim.clone();
    wait_for(Duration::from_secs(60), "delivery over TLS", || {
        sim.report().unique_ids == sent
    })
    .await;
    assert_eq!(assigned(&d_addr).await, f64::from(PARTITIONS));

    // Without the CA, the broker's certificate is not trusted: appends are refused, not lost.
    let untrusting = c.config("untrusting", "ingest");
    let text = std::fs::read_to_string(&untrusting).unwrap();
    let ca_line = format!("\"ssl.ca.location\" = {:?}\n", tls.join("ca.pem").display().to_string());
    assert!(text.contains(&ca_line));
    std::fs::write(&untrusting, text.replace(&ca_line, "")).unwrap();
    let (child, u_addr) = spawn_conduit_env(BIN, &untrusting, ENV);
    c.pids.lock().unwrap().push(KillOnDrop(child.id()));
    let resp = common::client()
        .post(format!("http://{u_addr}/v1/interactions"))
        .bearer_auth(common::TOKEN)
        .json(&vec![item("untrusted01", "O")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503, "an untrusted broker never acknowledges");
    let h = health(&u_addr).await;
    let err = h["buffer"]["kafka"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(err.contains("certificate"), "the reason is shown: {h}");
}
