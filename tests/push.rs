//! The HTTP push source end to end, against a conduit listening on loopback.

mod common;

use std::io::Write;

use cic_conduit::app;
use cic_conduit::config;
use common::*;
use serde_json::{Value, json};

async fn start(dir: &std::path::Path, extra_buffer: &str, extra_top: &str) -> app::Running {
    let cfg = config::load_str(&config_text(dir, extra_buffer, extra_top), Vec::new()).unwrap();
    app::start(cfg).await.unwrap()
}

fn url(r: &app::Running, path: &str) -> String {
    format!("http://{}{}", r.addr, path)
}

async fn get_text(r: &app::Running, path: &str) -> String {
    client().get(url(r, path)).send().await.unwrap().text().await.unwrap()
}

async fn get_json(r: &app::Running, path: &str) -> Value {
    serde_json::from_str(&get_text(r, path).await).unwrap()
}

async fn push(r: &app::Running, body: impl Into<reqwest::Body>) -> (u16, Value, reqwest::header::HeaderMap) {
    let resp = client()
        .post(url(r, "/v1/interactions"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.json().await.unwrap_or(Value::Null), headers)
}

#[tokio::test]
async fn accepted_items_are_in_the_buffer_as_events() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path(), "", "").await;
    let body = json!([item("1000000001", "O"), item("1000000002", "C")]).to_string();
    let (status, resp, _) = push(&r, body).await;
    assert_eq!(status, 202, "{resp}");
    assert_eq!(resp["accepted"], 2);
    assert_eq!(resp["events"], 4, "started+queued, started+connected");

    // NDJSON, gzip-compressed, a delta for an interaction already seen.
    let nd = format!(
        "{}\n",
        json!({"interactionId": "1000000001", "attributes": {"eic_state": "C"}})
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(nd.as_bytes()).unwrap();
    let resp = client()
        .post(url(&r, "/v1/interactions"))
        .bearer_auth(TOKEN)
        .header("content-encoding", "gzip")
        .header("content-type", "application/x-ndjson")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let buffer = r.buffer.clone();
    r.stop().await.unwrap();
    assert_eq!(buffer.stats().next_seq, 5);

    let events = events_in(dir.path());
    let kinds: Vec<String> = events
        .iter()
        .map(|e| format!("{}:{:?}", e.interaction.call_id, e.event_type))
        .collect();
    assert_eq!(
        kinds,
        [
            "1000000001:Started",
            "1000000001:Queued",
            "1000000002:Started",
            "1000000002:Connected",
            "1000000001:Connected"
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e.cic_server == "cic-test" && e.customer.phone.as_deref() == Some("+13175551234"))
    );
}

#[tokio::test]
async fn one_bad_item_refuses_the_whole_request_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path(), "", "").await;
    let body = json!([
        item("1000000001", "O"),
        {"interactionId": "1000000002", "attributes": {"Eic_State": 7}},
        {"attributes": {}},
    ])
    .to_string();
    let (status, resp, _) = push(&r, body).await;
    assert_eq!(status, 400);
    assert_eq!(resp["accepted"], 0);
    let items = resp["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|i| i["index"] == 1 && i["field"] == "attributes.Eic_State")
    );
    assert!(items.iter().any(|i| i["index"] == 2 && i["field"] == "interactionId"));
    let (status, _, _) = push(&r, "{not json").await;
    assert_eq!(status, 400);
    let metrics = get_text(&r, "/metrics").await;
    assert!(
        metrics.contains(r#"conduit_source_events_rejected_total{reason="invalid",source="http"} 3"#),
        "{metrics}"
    );
    let buffer = r.buffer.clone();
    r.stop().await.unwrap();
    assert_eq!(buffer.stats().next_seq, 0, "nothing of a bad request is stored");
}

#[tokio::test]
async fn auth_size_and_encoding_limits() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path(), "", "").await;
    let body = json!([item("1", "O")]).to_string();
    let c = client();
    let no_token = c
        .post(url(&r, "/v1/interactions"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status().as_u16(), 401);
    assert_eq!(no_token.headers()["www-authenticate"], "Bearer");
    let wrong = c
        .post(url(&r, "/v1/interactions"))
        .bearer_auth("nope")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);

    let huge = format!("[{}]", vec![item("1", "O").to_string(); 6000].join(","));
    assert!(huge.len() > 1024 * 1024);
    let (status, resp, _) = push(&r, huge).await;
    assert_eq!(status, 413, "{resp}");

    // A gzip bomb: small on the wire, too large decompressed.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b' '; 4 * 1024 * 1024]).unwrap();
    let bomb = c
        .post(url(&r, "/v1/interactions"))
        .bearer_auth(TOKEN)
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(bomb.status().as_u16(), 413);
    let br = c
        .post(url(&r, "/v1/interactions"))
        .bearer_auth(TOKEN)
        .header("content-encoding", "br")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(br.status().as_u16(), 415);
    r.stop().await.unwrap();
}

#[tokio::test]
async fn full_buffer_answers_503_with_retry_after_and_the_retry_gets_the_same_events() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(
        dir.path(),
        "segment_max_bytes = 65536\nmax_bytes = 131072\nmax_record_bytes = 16384\nblock_timeout_ms = 100",
        "",
    )
    .await;
    let mut n = 0;
    let (status, headers, body) = loop {
        let items: Vec<Value> = (0..50).map(|i| item(&format!("{:010}", n * 50 + i), "O")).collect();
        let body = Value::Array(items).to_string();
        let (status, _, headers) = push(&r, body.clone()).await;
        if status != 202 {
            break (status, headers, body);
        }
        n += 1;
        assert!(n < 1000, "the buffer never filled");
    };
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "2");
    // Alive, but not ready for more while full (a probe takes it out of rotation, not restarts it).
    let ready = client().get(url(&r, "/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let why = ready.text().await.unwrap();
    assert!(why.starts_with("not ready: buffer full"), "{why}");
    assert_eq!(
        client().get(url(&r, "/livez")).send().await.unwrap().status().as_u16(),
        200
    );
    // Make room as a sink would: read and acknowledge everything. Each retry waits server-side
    // (up to block_timeout_ms) for the acknowledged segments to be deleted.
    let mut reader = r.buffer.reader("test").unwrap();
    let stored = reader.next_batch(usize::MAX).await.unwrap();
    assert_eq!(
        stored.len() as u64,
        r.buffer.stats().next_seq,
        "everything stored was read"
    );
    reader
        .acker()
        .ack(&stored.iter().map(|r| r.position).collect::<Vec<_>>());
    let mut tries = 0;
    let resp = loop {
        let (status, resp, _) = push(&r, body.clone()).await;
        if status == 202 {
            break resp;
        }
        tries += 1;
        assert!(tries < 100, "room never came back");
    };
    // Had the refused attempt left its state behind, the retry would yield no STARTED events.
    assert_eq!(resp["events"], 100);
    assert_eq!(
        client().get(url(&r, "/readyz")).send().await.unwrap().status().as_u16(),
        200
    );
    let metrics = get_text(&r, "/metrics").await;
    assert!(metrics.contains("conduit_source_events_rejected_total{reason=\"buffer_full\",source=\"http\"}"));
    r.stop().await.unwrap();
}

#[tokio::test]
async fn disabled_conduit_serves_health_and_metrics_but_ingests_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path(), "", "enabled = false").await;
    let (status, resp, _) = push(&r, json!([item("1", "O")]).to_string()).await;
    assert_eq!(status, 503);
    assert!(resp["error"].as_str().unwrap().contains("disabled"));
    let health = get_json(&r, "/health").await;
    assert_eq!(health["status"], "disabled");
    assert_eq!(health["enabled"], false);
    let metrics = get_text(&r, "/metrics").await;
    assert!(metrics.contains("conduit_enabled 0"));
    r.stop().await.unwrap();
}

#[tokio::test]
async fn health_and_metrics_report_the_backlog_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path(), "", "").await;
    push(&r, json!([item("1", "O"), item("2", "C")]).to_string()).await;
    let resp = client().get(url(&r, "/health")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    let health: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["buffer"]["backlog_records"], 4);
    assert_eq!(health["buffer"]["persist"], "fsync");
    let metrics = get_text(&r, "/metrics").await;
    for name in [
        "conduit_source_events_received_total{source=\"http\"} 2",
        "conduit_buffer_records 4",
        "conduit_buffer_bytes",
        "conduit_buffer_fsync_seconds_bucket",
        "conduit_buffer_corrupt_records_total 0",
        "conduit_buffer_dropped_total 0",
        "conduit_normalize_events_total{type=\"started\"} 2",
    ] {
        assert!(metrics.contains(name), "missing {name} in:\n{metrics}");
    }
    assert!(!text.contains(TOKEN) && !metrics.contains(TOKEN));
    r.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_answers_every_request_in_flight_and_keeps_what_it_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path(), "", "").await;
    let base = url(&r, "/v1/interactions");
    let (accepted_tx, mut accepted_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<String>>();
    let (first_tx, mut first_rx) = tokio::sync::mpsc::channel::<()>(4);
    let pushers: Vec<_> = (0..4)
        .map(|p| {
            let (base, accepted_tx, first_tx) = (base.clone(), accepted_tx.clone(), first_tx.clone());
            tokio::spawn(async move {
                let c = client();
                for n in 0.. {
                    let ids: Vec<String> = (0..20).map(|i| format!("s{p}n{n}i{i}")).collect();
                    let body = Value::Array(ids.iter().map(|id| item(id, "O")).collect()).to_string();
                    match c.post(&base).bearer_auth(TOKEN).body(body).send().await {
                        Ok(resp) if resp.status().as_u16() == 202 => {
                            accepted_tx.send(ids).unwrap();
                            let _ = first_tx.try_send(());
                        }
                        // Refused while stopping (503) or the listener is gone: not accepted.
                        Ok(resp) => assert_eq!(resp.status().as_u16(), 503),
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    drop(accepted_tx);
    // Stop once every pusher has had at least one request accepted.
    for _ in 0..4 {
        first_rx.recv().await.unwrap();
    }
    let buffer = r.buffer.clone();
    r.stop().await.unwrap();
    for p in pushers {
        p.await.unwrap();
    }
    let mut accepted = std::collections::HashSet::new();
    while let Some(ids) = accepted_rx.recv().await {
        accepted.extend(ids);
    }
    drop(buffer);
    let stored: std::collections::HashSet<String> = events_in(dir.path())
        .into_iter()
        .filter(|e| e.event_type == cic_conduit::event::EventType::Started)
        .map(|e| e.interaction.call_id)
        .collect();
    assert!(accepted.len() >= 80);
    let lost = accepted.iter().filter(|id| !stored.contains(*id)).count();
    assert_eq!(lost, 0, "{lost} accepted interactions missing after a clean stop");
}

/// `/metrics` is what Prometheus expects: `promtool check metrics` (Debian's `prometheus`
/// package; `.ci/run` installs it) finds nothing to say, and the standard process metrics are
/// there.
#[tokio::test]
async fn metrics_pass_promtool_and_include_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path(), "", "").await;
    push(&r, json!([item("1", "O"), item("2", "C")]).to_string()).await;
    let text = get_text(&r, "/metrics").await;
    for name in [
        "# TYPE conduit_build_info gauge",
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
        "process_start_time_seconds ",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package: apt-get install prometheus)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}"
    );
    r.stop().await.unwrap();
}
