//! The Kafka buffer against its references, with a real broker (tansu, sqlite storage) and the
//! real `cic-conduit` binary, each figure beside its reference from the same run:
//!
//! `cargo bench --bench kafka -- [produce] [drain] [scale]` (all three when none is named):
//! - `produce`: interaction changes pushed over HTTP into an ingest conduit, each append
//!   answered once the broker acknowledged it, against rdkafka's own producer (same settings:
//!   idempotent, `acks=all`, lz4) writing the very same records (key, value, headers) to the same
//!   broker, in the clients' window (each of the clients' tasks sends a request's records and waits
//!   for their acknowledgements; goal ≥ 0.90) and all enqueued at once.
//!   `--changes N` (200,000), `--clients N` (8).
//! - `drain`: a backlog of `--events` (100,000) delivered by one dispatcher to the cloud
//!   simulator at `--rpm` (300, Genesys Cloud's allowance for one OAuth client; its window is a
//!   minute, so a drain shorter than a few minutes would measure a burst) requests a minute of
//!   100 events: the rate against the ceiling
//!   (goal ≥ 0.95, < 1% of requests answered 429); the broker's own pace, rdkafka's consumer
//!   reading the same backlog, is printed beside it (the ceiling is the cloud's only below it).
//! - `scale`: the same backlog (`--scale-events`, 30,000) delivered by one dispatcher, then by two
//!   in one group, to a cloud that allows it (no rate limit; every request takes 200 ms, two lanes
//!   a dispatcher): two against one (goal ≥ 1.8), each rate from the moment its group settled
//!   (every dispatcher holds partitions; the time that took is printed).
//!
//! Without `--bench` (under `cargo test`) each runs briefly as a smoke test.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cic_conduit::shutdown::Shutdown;
use cic_conduit::sim::cloud::{CloudSim, FaultUpdate, SimConfig};
use common::kafka::{Broker, kafka_buffer};
use common::{TOKEN, arg, config_text, item, load_body, metric, spawn_conduit, terminate};

const BIN: &str = env!("CARGO_BIN_EXE_cic-conduit");

fn stop(child: &mut Child) {
    terminate(child);
    assert!(child.wait().unwrap().success());
}

/// A conduit's config on `broker`'s `topic`, in `role`, delivering to `cloud` when given.
fn config(dir: &Path, name: &str, role: &str, broker: &Broker, topic: &str, cloud: Option<(&str, &str)>) -> PathBuf {
    let text = config_text(&dir.join(name), "", &format!("role = \"{role}\""))
        .replace(
            "level = \"info\"",
            "level = \"warn,cic_conduit::app=info,cic_conduit::buffer=info\"",
        )
        .replace(
            "[normalize]\n",
            "[normalize]\nmax_tracked_interactions = 2000000\nforget_ended_after_secs = 5\n",
        )
        .replace("[sources.http]\n", "[sources.http]\nmax_body_bytes = 4194304\n");
    let mut text = kafka_buffer(&text, broker, topic, 8);
    if let Some((addr, extra)) = cloud {
        text = text
            .replace(
                "api_base_url = \"http://127.0.0.1:9\"\nlogin_base_url = \"http://127.0.0.1:9\"\n",
                &format!("api_base_url = \"http://{addr}\"\nlogin_base_url = \"http://{addr}\"\nclient_id = \"sim-client\"\nclient_secret = \"sim-secret\"\n"),
            )
            + extra;
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Requests answered 503 (retry later) and sent again.
static RETRIED: AtomicU64 = AtomicU64::new(0);

/// Pushes `requests` requests of `batch` changes from each of `clients` clients; returns the
/// events accepted (acknowledged by the broker).
async fn push_load(addr: &str, clients: u64, requests: u64, batch: u64, tag: u64) -> u64 {
    let events = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (events, addr) = (events.clone(), addr.to_string());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let url = format!("http://{addr}/v1/interactions");
                for r in 0..requests {
                    let body = load_body(tag * 10 + c, r, batch);
                    loop {
                        let resp = http
                            .post(&url)
                            .bearer_auth(TOKEN)
                            .body(body.clone())
                            .send()
                            .await
                            .unwrap();
                        // Backpressure, as a sender honours it: again after Retry-After.
                        if resp.status().as_u16() == 503 {
                            let after: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                            RETRIED.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_secs(after)).await;
                            continue;
                        }
                        assert_eq!(resp.status().as_u16(), 202, "{}", resp.text().await.unwrap_or_default());
                        let v: serde_json::Value = resp.json().await.unwrap();
                        events.fetch_add(v["events"].as_u64().unwrap(), Ordering::Relaxed);
                        break;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    events.load(Ordering::Relaxed)
}

/// A record as read back: key, payload, headers.
type Read = (Vec<u8>, Vec<u8>, Vec<(String, Vec<u8>)>);

/// Every record of `topic` (8 partitions).
fn read_topic(broker: &Broker, topic: &str, count: u64) -> Vec<Read> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.addr())
        .set("group.id", "bench-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..8 {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::with_capacity(count as usize);
    let deadline = Instant::now() + Duration::from_secs(300);
    while (out.len() as u64) < count && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default();
            out.push((
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
                headers,
            ));
        }
    }
    assert_eq!(
        out.len() as u64,
        count,
        "every record the conduit wrote is in the topic"
    );
    out
}

async fn produce(full: bool) {
    let changes = arg("--changes", if full { 200_000 } else { 5_000 });
    let clients = arg("--clients", 8);
    let batch = 500;
    let requests = changes.div_ceil(clients * batch).max(1);
    let broker = Broker::start();
    broker.create_topic("conduit", 8);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (mut child, addr) = spawn_conduit(BIN, &config(dir.path(), "ingest", "ingest", &broker, "conduit", None));
    // A first request connects the producer; the measurement starts after it.
    push_load(&addr, 1, 1, batch, 9).await;
    let before = metric(
        &common::get_text(&format!("http://{addr}/metrics")).await,
        "conduit_buffer_appended_records_total",
    ) as u64;
    let start = Instant::now();
    let events = push_load(&addr, clients, requests, batch, 1).await;
    let secs = start.elapsed().as_secs_f64();
    let conduit_rate = events as f64 / secs;
    stop(&mut child);
    let records = read_topic(&broker, "conduit", before + events);

    let records = Arc::new(records);
    // rdkafka's own producer, the same settings, the very same records: all enqueued at once,
    // then in the clients' window (each of `clients` tasks sends a push's records and waits for
    // their acknowledgements before the next, as each HTTP push waits for its append).
    let (all_secs, all_rate) = raw_produce(&broker, "raw", &records, None).await;
    // Each push of `batch` changes made this many records.
    let per_request = (events / (clients * requests)).max(1);
    let (win_secs, win_rate) = raw_produce(&broker, "raw-window", &records, Some((clients, per_request))).await;
    println!(
        "produce: conduit (HTTP push -> Kafka, acknowledged): {events} events in {secs:.1} s = {conduit_rate:.0} events/s ({clients} clients, {batch} changes a request; {} answered 503 and sent again)",
        RETRIED.load(Ordering::Relaxed)
    );
    println!(
        "produce: rdkafka's producer, the same {} records, same broker, in the clients' window: {win_secs:.1} s = {win_rate:.0} records/s; conduit {:.3} of it (target >= 0.90)",
        records.len(),
        conduit_rate / win_rate
    );
    println!(
        "produce: rdkafka's producer, the same records enqueued all at once: {all_secs:.1} s = {all_rate:.0} records/s; conduit {:.3} of it",
        conduit_rate / all_rate
    );
}

/// Writes `records` to `topic` with rdkafka's own producer (the conduit's settings): all
/// enqueued at once, or from `clients` tasks each sending `batch` records and waiting for their
/// delivery reports before the next. Returns the seconds and records/s.
async fn raw_produce(
    broker: &Broker,
    topic: &'static str,
    records: &Arc<Vec<Read>>,
    window: Option<(u64, u64)>,
) -> (f64, f64) {
    use rdkafka::ClientConfig;
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    broker.create_topic(topic, 8);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.addr())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "100000")
        .create()
        .unwrap();
    // Sends `records` and waits for every delivery report.
    async fn send(producer: &FutureProducer, topic: &str, records: &[Read]) {
        let mut pending = Vec::with_capacity(records.len());
        for (key, payload, headers) in records {
            let headers = headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
                h.insert(Header { key: k, value: Some(v) })
            });
            let mut rec = FutureRecord::to(topic).key(key).payload(payload).headers(headers);
            // Waiting only when the bounded queue is full.
            loop {
                match producer.send_result(rec) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((_, back)) => {
                        rec = back;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
            }
        }
        for p in pending {
            p.await.unwrap().unwrap();
        }
    }
    let start = Instant::now();
    match window {
        None => send(&producer, topic, records).await,
        Some((clients, batch)) => {
            let tasks: Vec<_> = (0..clients as usize)
                .map(|c| {
                    let (producer, records) = (producer.clone(), records.clone());
                    tokio::spawn(async move {
                        for chunk in records.chunks(batch as usize).skip(c).step_by(clients as usize) {
                            send(&producer, topic, chunk).await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    (secs, records.len() as f64 / secs)
}

/// A backlog of at least `events` events on `topic`, written through an ingest conduit.
async fn backlog(dir: &Path, broker: &Broker, topic: &str, events: u64) -> u64 {
    let (mut child, addr) = spawn_conduit(
        BIN,
        &config(dir, &format!("ingest-{topic}"), "ingest", broker, topic, None),
    );
    let mut written = 0;
    let mut i = 0u64;
    while written < events {
        let n = ((events - written) / 2).clamp(1, 500);
        let body: Vec<serde_json::Value> = (i..i + n).map(|k| item(&format!("{topic}{k:08}"), "O")).collect();
        written += common::push_items(&addr, &body).await;
        i += n;
    }
    stop(&mut child);
    written
}

/// Waits until `sim` has received `total` entities more than `base`; returns the seconds from
/// the first to the last.
async fn delivered(sim: &CloudSim, base: u64, total: u64, limit: Duration) -> f64 {
    let start = Instant::now();
    let mut first = None;
    loop {
        let got = sim.report().entities_accepted - base;
        if got > 0 && first.is_none() {
            first = Some((Instant::now(), got));
        }
        if got >= total {
            // The rate from the first answer on, over the whole backlog.
            let (t0, n0) = first.unwrap();
            // (Everything may already be there at the first look, duplicates after a hand-over
            // included.)
            let rate = total.saturating_sub(n0).max(1) as f64 / t0.elapsed().as_secs_f64();
            return total as f64 / rate;
        }
        assert!(start.elapsed() < limit, "stalled at {got} of {total}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A broker, the cloud simulator (set up: its configuration id) and a backlog of at least
/// `events` events on `topic`.
struct Rig {
    topic: &'static str,
    broker: Broker,
    dir: tempfile::TempDir,
    sim: Arc<CloudSim>,
    sim_stop: Shutdown,
    sim_addr: String,
    id: String,
    written: u64,
}

impl Rig {
    /// The config of dispatcher `name` in consumer group `group`, delivering to the simulator
    /// (`sink_extra` appended to its `[sinks.journey]`).
    fn dispatcher(&self, name: &str, group: &str, sink_extra: &str) -> PathBuf {
        let sink = format!(
            "\n[sinks.journey]\nconfiguration_id = \"{}\"\nexternal_source_id = \"bench\"\nmax_age_ms = 200\n{sink_extra}",
            self.id
        );
        let path = config(
            self.dir.path(),
            name,
            "dispatch",
            &self.broker,
            self.topic,
            Some((&self.sim_addr, &sink)),
        );
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("group = \"dispatchers\"", &format!("group = \"{group}\""));
        std::fs::write(&path, text).unwrap();
        path
    }

    async fn start(topic: &'static str, sim_cfg: SimConfig, events: u64) -> Rig {
        let broker = Broker::start();
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let sim_stop = Shutdown::new();
        let sim = CloudSim::new(sim_cfg);
        let sim_addr = sim
            .spawn("127.0.0.1:0".parse().unwrap(), sim_stop.clone())
            .await
            .unwrap()
            .to_string();
        let setup = config(dir.path(), "setup", "dispatch", &broker, topic, Some((&sim_addr, "")));
        let id = common::setup_configuration(BIN, &setup, &[]);
        let written = backlog(dir.path(), &broker, topic, events).await;
        Rig {
            topic,
            broker,
            dir,
            sim,
            sim_stop,
            sim_addr,
            id,
            written,
        }
    }
}

async fn drain(full: bool) {
    let events = arg("--events", if full { 100_000 } else { 2_000 });
    let rpm = arg("--rpm", 300);
    let rig = Rig::start(
        "drain",
        SimConfig {
            requests_per_minute: rpm,
            ..SimConfig::default()
        },
        events,
    )
    .await;
    let written = rig.written;
    // The broker's own pace: rdkafka's consumer reading the whole backlog.
    let start = Instant::now();
    read_topic(&rig.broker, rig.topic, written);
    let read_rate = written as f64 / start.elapsed().as_secs_f64();
    let cfg = rig.dispatcher("dispatch", "dispatchers", "");
    let (mut child, _) = spawn_conduit(BIN, &cfg);
    let secs = delivered(&rig.sim, 0, written, Duration::from_secs(3600)).await;
    stop(&mut child);
    let r = rig.sim.report();
    let rate = written as f64 / secs;
    let ceiling = rpm as f64 / 60.0 * 100.0;
    // The simulator counts a client's requests in windows of a minute, as Genesys Cloud does: the
    // fewest seconds its requests can take is a minute for each full window before the last.
    let least = (r.event_requests.saturating_sub(1) / rpm) as f64 * 60.0;
    println!(
        "drain: {written} events in {secs:.1} s = {rate:.0} events/s; ceiling {ceiling:.0}/s ({rpm} requests/min x 100): {:.3} of it",
        rate / ceiling
    );
    if least > 0.0 {
        println!(
            "drain: {} requests need {least:.0} s at least in windows of {rpm} a minute: {:.3} of the fastest the limit allows (target >= 0.95)",
            r.event_requests,
            least / secs
        );
    }
    println!("drain: the broker reads the backlog to rdkafka's own consumer at {read_rate:.0} records/s");
    println!(
        "drain: {} requests, {} answered 429 = {:.4} (target < 0.01); duplicates {}",
        r.event_requests,
        r.rate_limited,
        r.rate_limited as f64 / (r.event_requests + r.rate_limited).max(1) as f64,
        r.duplicates
    );
    rig.sim_stop.trigger();
}

/// Waits until each dispatcher at `addrs` holds partitions, together all 8.
async fn settled(addrs: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut held = Vec::new();
        for a in addrs {
            let text = common::get_text(&format!("http://{a}/metrics")).await;
            held.push(metric(&text, "conduit_kafka_assigned_partitions") as u64);
        }
        if held.iter().all(|h| *h > 0) && held.iter().sum::<u64>() == 8 {
            return;
        }
        assert!(Instant::now() < deadline, "the group did not settle: {held:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn scale(full: bool) {
    let events = arg("--scale-events", if full { 30_000 } else { 1_000 });
    let rig = Rig::start(
        "scale",
        SimConfig {
            requests_per_minute: 10_000_000,
            ..SimConfig::default()
        },
        events,
    )
    .await;
    let written = rig.written;
    rig.sim.set_faults(&FaultUpdate {
        latency_ms: Some(200),
        ..FaultUpdate::default()
    });
    let mut rates = Vec::new();
    for n in [1usize, 2] {
        // A group of its own: each run reads the whole topic.
        let base = rig.sim.report().entities_accepted;
        let start = Instant::now();
        let mut children = Vec::new();
        let mut addrs = Vec::new();
        for k in 0..n {
            let path = rig.dispatcher(&format!("d{n}-{k}"), &format!("run{n}"), "concurrency = 2\n");
            let (child, addr) = spawn_conduit(BIN, &path);
            children.push(child);
            addrs.push(addr);
        }
        // Measured once the group has settled: every dispatcher holds partitions.
        settled(&addrs).await;
        let settle = start.elapsed().as_secs_f64();
        let done = rig.sim.report().entities_accepted - base;
        let rest = written - done;
        let secs = delivered(&rig.sim, base + done, rest, Duration::from_secs(3600)).await;
        for c in &mut children {
            stop(c);
        }
        let rate = rest as f64 / secs;
        println!(
            "scale: {n} dispatcher(s): the group settled {settle:.1} s after the start ({done} events delivered by then); the other {rest} in {secs:.1} s = {rate:.0} events/s"
        );
        rates.push(rate);
    }
    println!(
        "scale: two dispatchers against one: {:.2}x (target >= 1.8; the cloud allows it: no rate limit, 200 ms a request, two lanes a dispatcher)",
        rates[1] / rates[0]
    );
    rig.sim_stop.trigger();
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let named: Vec<String> = std::env::args()
        .filter(|a| ["produce", "drain", "scale"].contains(&a.as_str()))
        .collect();
    let all = named.is_empty();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if all || named.iter().any(|a| a == "produce") {
            produce(full).await;
        }
        if all || named.iter().any(|a| a == "drain") {
            drain(full).await;
        }
        if all || named.iter().any(|a| a == "scale") {
            scale(full).await;
        }
    });
}
