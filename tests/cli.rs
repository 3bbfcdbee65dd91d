//! The command line: config checking and the buffer tools, as an operator runs them.

mod common;

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_cic-conduit");

#[test]
fn the_example_config_is_accepted() {
    let out = Command::new(BIN)
        .args([
            "check-config",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/cic-conduit.toml"),
        ])
        .env("CIC_CONDUIT_PUSH_TOKEN", "s3cret-value-0123456")
        .env("CIC_CONDUIT_CLIENT_SECRET", "oauth-s3cret")
        .env("CONDUIT_HOME", "/opt/conduit")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("config OK"));
    // An unrelated prefixed variable is named in a warning, and does not stop anything.
    assert!(
        stderr.contains("warning: environment variable CONDUIT_HOME ignored"),
        "{stderr}"
    );
    assert!(stdout.contains("journey sink   configuration"));
    assert!(
        !stdout.contains("s3cret-value-0123456") && !stdout.contains("oauth-s3cret"),
        "a secret was printed"
    );
}

#[test]
fn a_bad_config_names_the_key_and_a_missing_secret_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    let text = common::config_text(dir.path(), "persist = \"sometimes\"", "");
    std::fs::write(&p, text).unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("buffer.persist") && err.contains("fsync"), "{err}");

    let out = Command::new(BIN)
        .args([
            "check-config",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/cic-conduit.toml"),
        ])
        .env_remove("CIC_CONDUIT_PUSH_TOKEN")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("sources.http.token") && err.contains("CIC_CONDUIT_PUSH_TOKEN"),
        "{err}"
    );

    let out = Command::new(BIN)
        .args([
            "check-config",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/cic-conduit.toml"),
        ])
        .env("CIC_CONDUIT_PUSH_TOKEN", "x")
        .env("CONDUIT_ORGANIZATION__REGION", "moon-1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("organization.region") && err.contains("us-east-1"),
        "{err}"
    );
}

#[test]
fn inspect_and_verify_report_damage() {
    use cic_conduit::buffer::{Buffer, BufferReader, DiskBuffer, Entry, Kind};
    use cic_conduit::config::BufferConfig;
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    {
        let b = DiskBuffer::open(
            &BufferConfig::with_dir(dir.path()),
            cic_conduit::metrics::Metrics::new().buffer,
        )
        .unwrap();
        for i in 0..10u8 {
            let entry = Entry::new(Kind::Interaction, bytes::Bytes::new(), vec![i; 100]);
            rt.block_on(b.append(vec![entry])).unwrap();
        }
        let mut reader = b.disk_reader("test").unwrap();
        let mut read = Vec::new();
        reader.read_available(4, &mut read).unwrap();
        reader.acker().ack(&read.iter().map(|r| r.position).collect::<Vec<_>>());
        rt.block_on(b.close()).unwrap();
    }
    let inspect = Command::new(BIN)
        .args(["buffer", "inspect", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success());
    assert!(
        text.contains("ack cursor: 4") && text.contains("10 records, 6 unacknowledged"),
        "{text}"
    );
    assert!(
        Command::new(BIN)
            .args(["buffer", "verify", "--data-dir"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success()
    );

    let seg = dir.path().join("buffer").join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[300] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();
    let verify = Command::new(BIN)
        .args(["buffer", "verify", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("DAMAGED"));
    let json = Command::new(BIN)
        .args(["buffer", "inspect", "--json", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["missing_records"], 1);
}

/// `log.file`: the log goes to the file (a service's, say), not to standard error.
#[tokio::test]
async fn the_log_goes_to_the_file_the_config_names() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("logs").join("conduit.log");
    let text = common::config_text(&dir.path().join("data"), "", "").replace(
        "level = \"info\"\n",
        &format!("level = \"info\"\nfile = \"{}\"\n", log.display()),
    );
    let config = dir.path().join("c.toml");
    std::fs::write(&config, text).unwrap();
    let stderr = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .stderr(stderr.reopen().unwrap())
        .spawn()
        .unwrap();
    let mut addr = None;
    common::wait_for(
        std::time::Duration::from_secs(30),
        "the listening line in the log file",
        || {
            addr = std::fs::read_to_string(&log).unwrap_or_default().lines().find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                (v["message"] == "listening").then(|| v["addr"].as_str().unwrap().to_string())
            });
            addr.is_some()
        },
    )
    .await;
    let addr = addr.unwrap();
    assert_eq!(common::get_text(&format!("http://{addr}/livez")).await.trim(), "live");
    common::terminate(&child);
    assert!(child.wait().unwrap().success());
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(
        written.lines().any(|l| l.contains(r#""message":"stopped""#)),
        "{written}"
    );
    let on_stderr = std::fs::read_to_string(stderr.path()).unwrap();
    assert!(
        !on_stderr.contains("listening"),
        "the log went to standard error too: {on_stderr}"
    );
}
