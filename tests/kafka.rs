//! The Kafka buffer with a real broker (tansu, see `common::kafka`) and real conduits over
//! loopback: ingest conduits produce to one topic, a consumer group of dispatchers delivers to
//! the Genesys Cloud simulator.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use cic_conduit::shutdown::Shutdown;
use cic_conduit::sim::cloud::{CloudSim, Received, SimConfig};
use common::kafka::Broker;
use common::{
    KillOnDrop, config_text, get_text, item, metric, push_items, spawn_conduit_env, terminate, wait_for, wait_until,
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
}

impl Cluster {
    async fn start() -> Cluster {
        let broker = Broker::start();
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
        let kafka = format!(
            "[buffer.kafka]\nbrokers = \"{}\"\ntopic = \"{TOPIC}\"\ngroup = \"dispatchers\"\npartitions = {PARTITIONS}\nreplication_factor = 1\nrevoke_timeout_ms = 5000\n[buffer.kafka.properties]\n\"compression.type\" = \"lz4\"\n",
            self.broker.addr()
        );
        let org = format!(
            "api_base_url = \"http://{a}\"\nlogin_base_url = \"http://{a}\"\nclient_id = \"sim-client\"\nclient_secret = {{ env = \"TEST_SIM_SECRET\" }}\n",
            a = self.sim_addr
        );
        let mut text = config_text(&data, &kafka, &format!("role = \"{role}\""))
            .replace("type = \"disk\"", "type = \"kafka\"")
            .replace("api_base_url = \"http://127.0.0.1:9\"\n", "")
            .replace("login_base_url = \"http://127.0.0.1:9\"\n", &org);
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

/// Interactions `<prefix>0000..n`, each offered, connected, then disconnected.
async fn push_lifecycles(addr: &str, prefix: &str, n: usize) -> u64 {
    let mut events = 0;
    for state in ["O", "C", "E"] {
        let items: Vec<Value> = (0..n).map(|i| item(&format!("{prefix}{i:04}"), state)).collect();
        events += push_items(addr, &items).await;
    }
    events
}

/// Per interaction key, the event types in arrival order.
fn by_interaction(received: &[Received]) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for r in received {
        m.entry(r.call_id_key.clone().unwrap())
            .or_default()
            .push(r.event_type.clone().unwrap());
    }
    m
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
    // Both dispatchers delivered part of it.
    let (m1, m2) = (metrics(&d1_addr).await, metrics(&d2_addr).await);
    let delivered = |m: &str| metric(m, "conduit_sink_events_delivered_total{sink=\"journey\"}");
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
}
