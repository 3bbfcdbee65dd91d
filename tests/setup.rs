//! `cic-conduit setup` against the Genesys Cloud simulator, which checks every body against the
//! official SDK's models: the configuration is filed under a division, what is retryable is
//! retried with the steps shown, a refusal names the cloud's reason and correlation id, and a
//! re-run after the derived schema changed updates it.
#![cfg(unix)]

mod common;

use std::process::Command;

use cic_conduit::shutdown::Shutdown;
use cic_conduit::sim::cloud::{CloudSim, FaultUpdate, HOME_DIVISION, SimConfig};
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_cic-conduit");

fn run_setup(config: &std::path::Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(["setup", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A simulator serving on loopback, and a config delivering to it.
struct Rig {
    stop: Shutdown,
    cloud: std::sync::Arc<CloudSim>,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    let (stop, cloud, dir) = (
        Shutdown::new(),
        CloudSim::new(SimConfig::default()),
        tempfile::tempdir().unwrap(),
    );
    let addr = cloud.spawn("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, cloud_config_text(&dir.path().join("d"), addr, "")).unwrap();
    Rig {
        stop,
        cloud,
        config,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_files_under_the_home_division_retries_an_outage_and_updates_a_changed_schema() {
    let Rig {
        stop,
        cloud,
        config,
        _dir,
    } = rig().await;

    // A cloud that answers 503 for the first two seconds: retried, and said so.
    cloud.set_faults(&FaultUpdate {
        outage_secs: Some(2.0),
        ..Default::default()
    });
    let (ok, stdout, stderr) = run_setup(&config, &[]);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stderr.contains("HTTP 503") && stderr.contains("retrying in"),
        "{stderr}"
    );
    assert!(stderr.contains("creating the configuration in division"), "{stderr}");
    // The simulator refuses any division but the organization's: the home one was looked up.
    assert!(
        stdout.contains(&format!("(created, division {HOME_DIVISION})")),
        "{stdout}"
    );
    assert!(stdout.contains("(created)"), "the schema: {stdout}");
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("configuration  "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();

    // Run again: nothing changes.
    let (ok, again, stderr) = run_setup(&config, &[]);
    assert!(ok, "{again}{stderr}");
    assert!(again.contains(&id) && again.contains("already there") && !again.contains("created"));

    // The derived schema changes (a custom attribute added): the schema is updated in place.
    let custom = [("CONDUIT_NORMALIZE__CUSTOM_ATTRIBUTES", "[\"AccountTier\"]")];
    let (ok, updated, stderr) = run_setup(&config, &custom);
    assert!(ok, "{updated}{stderr}");
    assert!(updated.contains("updated to this release's fields"), "{updated}");
    assert!(updated.contains(&id), "the same configuration: {updated}");
    let (ok, same, _) = run_setup(&config, &custom);
    assert!(
        ok && same.contains("already there") && !same.contains("updated"),
        "{same}"
    );
    stop.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_names_the_clouds_reason_and_correlation_id() {
    let Rig {
        stop,
        cloud: _cloud,
        config,
        _dir,
    } = rig().await;
    let (ok, stdout, stderr) = run_setup(&config, &[("CONDUIT_ORGANIZATION__DIVISION_ID", "no-such-division")]);
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("HTTP 400") && stderr.contains("divisionId names no division of this organization"),
        "{stderr}"
    );
    let correlation = stderr
        .split("correlation id ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or("");
    assert!(correlation.len() >= 16, "a correlation id: {stderr}");
    assert!(!stderr.contains("retrying"), "a 400 is not retried: {stderr}");
    stop.trigger();
}
