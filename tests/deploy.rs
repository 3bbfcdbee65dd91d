//! What `deploy/` gives an operator, tried the way they would use it: the systemd unit as
//! `systemd-analyze security` rates it, and a conduit started with the container image's
//! settings and the Kubernetes example's config, environment and probes — in a namespace where a
//! service named `conduit` makes Kubernetes add `CONDUIT_*` variables of its own.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_cic-conduit");

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(file)
}

/// `systemd-analyze security` (Debian's systemd package; `.ci/run` installs it) rates the unit
/// "OK" or better: an exposure of at most 4.9.
#[test]
fn the_systemd_unit_is_rated_ok_or_better() {
    let unit = deploy("cic-conduit.service");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=49"])
        .arg(&unit)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let said = String::from_utf8_lossy(&out.stdout);
    let overall = said
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_default();
    assert!(out.status.success(), "exposure above 4.9: {overall}\n{said}");
    let text = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "DynamicUser=yes",
        "StateDirectoryMode=0700",
        "UMask=0077",
        "LimitNOFILE=",
        "LoadCredential=",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(text.contains(line), "{line} not in the unit");
    }
}

/// The lines of the block under `key: |` in `yaml`, de-indented.
fn yaml_block(yaml: &str, key: &str) -> String {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != format!("{key}: |"));
    let head = lines.next().expect("the block");
    let indent = head.len() - head.trim_start().len() + 2;
    lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `(name, value)` of the `ENV` instruction of a Containerfile.
fn container_env(containerfile: &str) -> Vec<(String, String)> {
    let joined = containerfile.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|l| l.strip_prefix("ENV "))
        .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

#[tokio::test]
async fn the_container_and_kubernetes_settings_start_a_conduit_that_answers_its_probes() {
    let containerfile = std::fs::read_to_string(deploy("Containerfile")).unwrap();
    let yaml = std::fs::read_to_string(deploy("kubernetes/cic-conduit.yaml")).unwrap();
    let image_env = container_env(&containerfile);
    let get = |k: &str| image_env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("CONDUIT_SERVER__LISTEN").as_deref(), Some("0.0.0.0:8087"));
    assert_eq!(get("CONDUIT_DATA_DIR").as_deref(), Some("/var/lib/cic-conduit"));
    assert!(containerfile.contains("USER 65532") && containerfile.contains("VOLUME [\"/var/lib/cic-conduit\"]"));
    assert!(
        yaml.contains("name: conduit\nspec:"),
        "the example's service is named conduit"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cic-conduit.toml");
    std::fs::write(&config, yaml_block(&yaml, "cic-conduit.toml")).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--config"]).arg(&config);
    // The image's environment, where this test can listen and write.
    for (k, v) in &image_env {
        let v = match k.as_str() {
            "CONDUIT_DATA_DIR" => dir.path().join("data").display().to_string(),
            "CONDUIT_SERVER__LISTEN" => "127.0.0.1:0".into(),
            "CONDUIT_LOG__FORMAT" => "json".into(),
            _ => v.clone(),
        };
        cmd.env(k, v);
    }
    // The Secret's keys, as the example's env entries name them.
    for name in [
        "CIC_CONDUIT_CLIENT_SECRET",
        "CIC_CONDUIT_ICWS_PASSWORD",
        "CIC_CONDUIT_PUSH_TOKEN",
    ] {
        assert!(yaml.contains(&format!("- name: {name}")), "{name}");
        cmd.env(name, "a-secret-from-the-secret-0123456789");
    }
    // What Kubernetes adds for the service `conduit`.
    for (k, v) in [
        ("CONDUIT_SERVICE_HOST", "10.96.0.12"),
        ("CONDUIT_SERVICE_PORT", "8087"),
        ("CONDUIT_SERVICE_PORT_HTTP", "8087"),
        ("CONDUIT_PORT", "tcp://10.96.0.12:8087"),
        ("CONDUIT_PORT_8087_TCP", "tcp://10.96.0.12:8087"),
        ("CONDUIT_PORT_8087_TCP_PROTO", "tcp"),
        ("CONDUIT_PORT_8087_TCP_PORT", "8087"),
        ("CONDUIT_PORT_8087_TCP_ADDR", "10.96.0.12"),
    ] {
        cmd.env(k, v);
    }
    let (mut child, addr) = spawn_listening(cmd);
    let _guard = KillOnDrop(child.id());
    for (probe, answer) in [("livenessProbe", "live"), ("readinessProbe", "ready")] {
        let path = yaml
            .split(&format!("{probe}:"))
            .nth(1)
            .and_then(|rest| rest.lines().find_map(|l| l.trim().strip_prefix("path: ")))
            .unwrap_or_else(|| panic!("{probe} path"));
        let resp = client().get(format!("http://{addr}{path}")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{probe} {path}");
        assert_eq!(resp.text().await.unwrap().trim(), answer);
    }
    let health = get_text(&format!("http://{addr}/health")).await;
    assert!(!health.contains("a-secret-from-the-secret"), "{health}");
    // The service-link variables were not taken for overrides: no warning about them.
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .envs([
            ("CONDUIT_PORT", "tcp://10.96.0.12:8087"),
            ("CONDUIT_SERVICE_HOST", "10.96.0.12"),
            ("CIC_CONDUIT_CLIENT_SECRET", "x"),
            ("CIC_CONDUIT_ICWS_PASSWORD", "x"),
            ("CIC_CONDUIT_PUSH_TOKEN", "a-secret-from-the-secret-0123456789"),
        ])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("warning"), "{said}");
    terminate(&child);
    assert!(child.wait().unwrap().success());
}
