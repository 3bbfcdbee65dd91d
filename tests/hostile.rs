//! What a hostile network can do to the push port, against the real binary: floods of idle
//! connections with few file descriptors, slow headers, bodies that never arrive.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_cic-conduit");

fn write_config(dir: &std::path::Path, server: &str) -> std::path::PathBuf {
    // Small segments, so that the pushes below roll (a roll opens new files).
    let text = config_text(
        dir,
        "segment_max_bytes = 65536\nmax_record_bytes = 16384\npersist = \"fsync\"",
        "",
    )
    .replace("[server]\n", &format!("[server]\n{server}\n"));
    let path = dir.join("conduit.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn push_status(addr: &str, items: &[serde_json::Value]) -> u16 {
    client()
        .post(format!("http://{addr}/v1/interactions"))
        .bearer_auth(TOKEN)
        .json(&items)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn batch(start: usize, n: usize) -> Vec<serde_json::Value> {
    (start..start + n)
        .map(|i| item(&format!("{:010}", 3_000_000_000u64 + i as u64), "C"))
        .collect()
}

/// 1,100 idle connections against a conduit allowed 256 file descriptors: `/health` answers,
/// every push is stored (segment rolls included), and after the flood pushes still go in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_cannot_take_ingest_down() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let (child, addr) = spawn_conduit_nofile(BIN, &config, 256);
    let _kill = KillOnDrop(child.id());

    let mut flood = Vec::new();
    for _ in 0..1100 {
        match TcpStream::connect(&addr).await {
            Ok(s) => flood.push(s),
            Err(e) => panic!("connect failed: {e}"),
        }
    }
    let health = client().get(format!("http://{addr}/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200, "health answers during the flood");

    // ~4,000 events of ~220 bytes: several 64 KiB segments rolled during the flood.
    for round in 0..10 {
        let status = push_status(&addr, &batch(round * 200, 200)).await;
        assert_eq!(status, 202, "push {round} during the flood");
        flood.push(TcpStream::connect(&addr).await.unwrap());
    }
    // An evicted connection is closed by its own task, a moment after the eviction (under load,
    // after the next scrape has been counted): the gauge comes within the cap once they ran.
    let mut m = String::new();
    let mut open = f64::MAX;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while open > 128.0 && std::time::Instant::now() < until {
        m = get_text(&format!("http://{addr}/metrics")).await;
        open = metric(&m, "conduit_server_connections ");
    }
    assert!(
        open <= 128.0,
        "connections open {open} within the cap that 256 descriptors leave"
    );
    assert!(metric(&m, "conduit_server_connections_closed_total{reason=\"evicted\"}") >= 900.0);
    assert!(
        metric(&m, "conduit_buffer_segments ") >= 3.0,
        "segments rolled during the flood"
    );
    eprintln!(
        "flood: {} connections made, {open} open in the conduit, {} evicted, {} refused; /health 200; 10 of 10 pushes stored",
        flood.len(),
        metric(&m, "conduit_server_connections_closed_total{reason=\"evicted\"}"),
        metric(&m, "conduit_server_connections_closed_total{reason=\"refused\"}"),
    );

    drop(flood);
    assert_eq!(push_status(&addr, &batch(5000, 200)).await, 202, "push after the flood");
    let h: serde_json::Value = serde_json::from_str(&get_text(&format!("http://{addr}/health")).await).unwrap();
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["buffer"]["state"], "ok", "{h}");
}

/// A client that sends half its headers, or announces a body it never sends, is cut off.
#[tokio::test]
async fn slow_headers_and_missing_bodies_are_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "idle_timeout_ms = 300\nbody_timeout_ms = 300");
    let (child, addr) = spawn_conduit(BIN, &config);
    let _kill = KillOnDrop(child.id());

    // Connects and says nothing: closed.
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    // Half the headers, then nothing: closed.
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"POST /v1/interactions HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Headers announcing 100 bytes, 10 sent: answered 408.
    let mut short = TcpStream::connect(&addr).await.unwrap();
    short
        .write_all(
            format!(
                "POST /v1/interactions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n[{{\"intera"
            )
            .as_bytes(),
        )
        .await
        .unwrap();

    let read_all = |mut s: TcpStream| async move {
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
            .await
            .expect("the server closed the connection")
            .ok();
        String::from_utf8_lossy(&out).into_owned()
    };
    assert_eq!(
        read_all(std::mem::replace(&mut silent, TcpStream::connect(&addr).await.unwrap())).await,
        ""
    );
    let slow_answer = read_all(slow).await;
    assert!(!slow_answer.contains("202"), "{slow_answer}");
    let short_answer = read_all(short).await;
    assert!(short_answer.starts_with("HTTP/1.1 408"), "{short_answer}");
    drop(silent);

    let m = get_text(&format!("http://{addr}/metrics")).await;
    assert!(
        metric(&m, "conduit_server_connections_closed_total{reason=\"idle\"}") >= 2.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "conduit_source_events_rejected_total{reason=\"timeout\",source=\"http\"}"
        ) >= 1.0
    );
    // The conduit still takes pushes.
    assert_eq!(push_status(&addr, &batch(0, 2)).await, 202);
}

/// Customer data on disk is owner-only, whatever umask the service was started with.
#[cfg(unix)]
#[tokio::test]
async fn customer_data_on_disk_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let text = config_text(&data, "", "").replace(
        "login_base_url = \"http://127.0.0.1:9\"\n",
        "login_base_url = \"http://127.0.0.1:9\"\nclient_id = \"c\"\nclient_secret = \"s\"\n",
    ) + "\n[sinks.journey]\nconfiguration_id = \"cfg\"\nexternal_source_id = \"x\"\n";
    let config = dir.path().join("conduit.toml");
    std::fs::write(&config, text).unwrap();
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("umask 022 && exec \"$0\" run --config \"$1\"")
        .arg(BIN)
        .arg(&config);
    let (child, addr) = spawn_listening(cmd);
    let _kill = KillOnDrop(child.id());
    assert_eq!(push_status(&addr, &batch(0, 5)).await, 202);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data directory it created");
    assert_eq!(mode(&data.join("buffer")), 0o700);
    assert_eq!(mode(&data.join("dead-letter")), 0o700);
    let mut files = 0;
    for e in std::fs::read_dir(data.join("buffer")).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
        files += 1;
    }
    assert!(files >= 2, "a segment and the lock at least");
}
