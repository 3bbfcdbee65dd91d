//! The composition root, run as a user runs it: a lane that panics stops the process; the drain
//! on shutdown; the roles.

use std::time::Duration;

use super::*;
use crate::sim::cloud::{CloudSim, FaultUpdate, SimConfig};

const PUSH_TOKEN: &str = "0123456789abcdef0123";

/// A simulated organization with a configured external-events configuration, and the config
/// text of a conduit delivering to it (data under `dir`) before its `[sinks.journey]` section.
struct Cloud {
    sim: std::sync::Arc<CloudSim>,
    base: String,
    configuration: String,
    _stop: Shutdown,
}

impl Cloud {
    async fn new(dir: &std::path::Path) -> Self {
        let stop = Shutdown::new();
        let sim = CloudSim::new(SimConfig::default());
        let addr = sim.spawn("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
        let base = format!(
            "cic_server = \"cic\"\ndata_dir = \"{}\"\n[server]\nlisten = \"127.0.0.1:0\"\n[organization]\nshort_name = \"acme\"\nregion = \"us-east-1\"\napi_base_url = \"http://{addr}\"\nlogin_base_url = \"http://{addr}\"\nclient_id = \"sim-client\"\nclient_secret = \"sim-secret\"\n[sources.http]\ntoken = \"{PUSH_TOKEN}\"\n",
            dir.display().to_string().replace('\\', "\\\\")
        );
        let pre = crate::config::load_str(&base, Vec::new()).unwrap();
        let configuration = setup(&pre, crate::sink::setup::DEFAULT_CONFIGURATION_NAME, "PureConnect")
            .await
            .unwrap()
            .configuration_id;
        Cloud {
            sim,
            base,
            configuration,
            _stop: stop,
        }
    }

    /// A conduit's config: `top` first (top-level keys), then the base and the sink.
    fn config(&self, top: &str) -> Config {
        let text = format!(
            "{top}\n{}[sinks.journey]\nconfiguration_id = \"{}\"\nexternal_source_id = \"cic\"\nmax_age_ms = 20\n",
            self.base, self.configuration
        );
        crate::config::load_str(&text, Vec::new()).unwrap()
    }
}

/// Pushes one change of each interaction in `ids`; answers the status.
async fn push(addr: SocketAddr, ids: &[&str]) -> u16 {
    let items: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| serde_json::json!({"interactionId": id, "attributes": {"Eic_State": "C", "Eic_RemoteAddress": "+13175551234"}}))
        .collect();
    reqwest::Client::new()
        .post(format!("http://{addr}/v1/interactions"))
        .bearer_auth(PUSH_TOKEN)
        .json(&items)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn health(addr: SocketAddr) -> serde_json::Value {
    reqwest::get(format!("http://{addr}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits (up to 30 s) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The buffer under `dir` as a stopped conduit left it: (acknowledged, written).
fn buffer_left(dir: &std::path::Path) -> (u64, u64) {
    let b = DiskBuffer::open(&crate::config::BufferConfig::with_dir(dir), Metrics::new().buffer).unwrap();
    let s = b.stats();
    (s.cursor, s.next_seq)
}

/// A delivery lane that panics does not leave the conduit up and silent: `/health` turns
/// `failing` naming the task, the failure is counted, and the process stops with an error
/// (its service manager restarts it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_that_panics_stops_the_conduit_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::new(dir.path()).await;
    let running = start(cloud.config("")).await.unwrap();
    let metrics = running.metrics.clone();
    assert_eq!(push(running.addr, &[crate::dispatch::lane::TEST_PANIC_MARK]).await, 202);
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(30), running.wait()).await;
    match stopped.expect("the conduit must stop by itself") {
        Err(AppError::Failed(why)) => assert!(why.contains("dispatch_lane: it panicked"), "{why}"),
        other => panic!("the conduit must stop with the failure: {other:?}"),
    }
    assert_eq!(metrics.task_failures.with_label_values(&["dispatch_lane"]).get(), 1);
}

/// On shutdown, a request already on its way to Genesys Cloud may finish, and what it confirmed
/// is acknowledged before the process exits; with no time to drain, it stays in the buffer for
/// the restart (sent again, same ids).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_lets_requests_in_flight_finish_and_be_acknowledged() {
    for (drain_ms, acknowledged) in [(10_000, 2), (0, 0)] {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Cloud::new(dir.path()).await;
        cloud.sim.set_faults(&FaultUpdate {
            latency_ms: Some(1500),
            ..FaultUpdate::default()
        });
        let running = start(cloud.config(&format!("drain_timeout_ms = {drain_ms}")))
            .await
            .unwrap();
        let metrics = running.metrics.clone();
        assert_eq!(push(running.addr, &["1000000001"]).await, 202);
        let sent = || {
            metrics
                .sink
                .batch_events
                .with_label_values(&["journey"])
                .get_sample_count()
        };
        until("the request to be sent", || sent() >= 1).await;
        running.stop().await.unwrap();
        let (cursor, written) = buffer_left(dir.path());
        assert_eq!(written, 2, "STARTED and CONNECTED");
        assert_eq!(cursor, acknowledged, "drain_timeout_ms = {drain_ms}");
        if acknowledged > 0 {
            assert_eq!(cloud.sim.report().entities_accepted, 2);
        }
    }
}

/// `role = "ingest"` buffers and leaves the reader to another process; `role = "dispatch"`
/// takes no input and delivers what the buffer holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_process_buffers_and_a_dispatch_process_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::new(dir.path()).await;
    let ingest = start(cloud.config("role = \"ingest\"")).await.unwrap();
    assert_eq!(push(ingest.addr, &["1000000001", "1000000002"]).await, 202);
    let h = health(ingest.addr).await;
    assert_eq!(
        (h["role"].as_str(), h["destinations"].as_array().map(Vec::len)),
        (Some("ingest"), Some(0))
    );
    let probe = ingest.buffer.reader("probe").expect("no dispatcher owns the reader");
    drop(probe);
    assert_eq!(ingest.buffer.stats().backlog_records, 4);
    ingest.stop().await.unwrap();
    assert_eq!(cloud.sim.report().entities_received, 0, "nothing was sent");

    let dispatch = start(cloud.config("role = \"dispatch\"")).await.unwrap();
    assert!(
        matches!(dispatch.buffer.reader("probe"), Err(BufferError::ReaderTaken { .. })),
        "the dispatcher owns the reader"
    );
    assert_eq!(push(dispatch.addr, &["1000000003"]).await, 404, "no input");
    let h = health(dispatch.addr).await;
    assert_eq!(
        (h["role"].as_str(), h["destinations"].as_array().map(Vec::len)),
        (Some("dispatch"), Some(1))
    );
    until("the buffered events to arrive", || {
        cloud.sim.report().entities_accepted == 4
    })
    .await;
    let buffer = dispatch.buffer.clone();
    until("their acknowledgement", || buffer.stats().backlog_records == 0).await;
    dispatch.stop().await.unwrap();
}
