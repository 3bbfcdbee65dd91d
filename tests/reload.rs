//! `SIGHUP` (what `systemctl reload` sends) on a running conduit, the binary: it changes the
//! log level, the `enabled` switch and the rate-limit share from the file, never stops the
//! process, and a file that does not load changes nothing.
#![cfg(unix)]

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cic-conduit");

fn hup(pid: u32) {
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

fn log_text(path: &Path) -> String {
    let mut s = String::new();
    std::fs::File::open(path).unwrap().read_to_string(&mut s).unwrap();
    s
}

async fn health(addr: &str) -> Value {
    serde_json::from_str(&get_text(&format!("http://{addr}/health")).await).unwrap()
}

async fn push_status(addr: &str) -> u16 {
    client()
        .post(format!("http://{addr}/v1/interactions"))
        .bearer_auth(TOKEN)
        .json(&[item("1000000001", "O")])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn sighup_reloads_level_switch_and_share_and_never_stops_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    let base = config_text(&dir.path().join("data"), "", "");
    std::fs::write(&config, &base).unwrap();
    let log = dir.path().join("log.jsonl");
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(child.id());
    let mut addr = String::new();
    wait_for(Duration::from_secs(20), "listening", || {
        addr = log_text(&log)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["message"] == "listening")
            .and_then(|v| v["addr"].as_str().map(str::to_string))
            .unwrap_or_default();
        !addr.is_empty()
    })
    .await;
    assert_eq!(push_status(&addr).await, 202);

    // Switched off, and only warnings logged from now on.
    std::fs::write(
        &config,
        base.replace("level = \"info\"", "level = \"warn\"").replacen(
            "\ncic_server",
            "\nenabled = false\ncic_server",
            1,
        ),
    )
    .unwrap();
    hup(child.id());
    wait_until(Duration::from_secs(20), "switched off", || async {
        health(&addr).await["status"] == "disabled"
    })
    .await;
    assert_eq!(push_status(&addr).await, 503);
    assert_eq!(
        metric(&get_text(&format!("http://{addr}/metrics")).await, "conduit_enabled"),
        0.0
    );

    // A file that does not load changes nothing, and says so.
    std::fs::write(&config, "this is [not toml").unwrap();
    hup(child.id());
    wait_for(Duration::from_secs(20), "the refusal logged", || {
        log_text(&log).contains("the config does not load; nothing changed")
    })
    .await;
    assert_eq!(health(&addr).await["status"], "disabled");

    // Back on, at info level again.
    std::fs::write(&config, &base).unwrap();
    hup(child.id());
    wait_until(Duration::from_secs(20), "switched on", || async {
        health(&addr).await["status"] == "ok"
    })
    .await;
    assert_eq!(push_status(&addr).await, 202);
    wait_for(Duration::from_secs(20), "the reload logged", || {
        log_text(&log).contains("enabled = true")
    })
    .await;
    let text = log_text(&log);
    assert!(
        !text.contains("enabled = false"),
        "the reload to warn level logged at info:\n{text}"
    );
    assert!(child.try_wait().unwrap().is_none(), "SIGHUP stopped the process");
    terminate(&child);
    assert!(child.wait().unwrap().success());
}
