//! The Windows build as a Windows admin uses it, run under wine (Debian's `wine`): the
//! `x86_64-pc-windows-gnu` binary (which has no Kafka buffer) (`.ci/run` builds it first:
//! `cargo build --target x86_64-pc-windows-gnu --bin cic-conduit`),
//! beside the `bcryptprimitives.dll` that wine 8 lacks (built here from `tests/wine/` with
//! mingw-w64's gcc). In a fresh wine prefix: `check-config` on the default config under
//! `%ProgramData%`, `service install`, `net start`, pushes into the service, `service reload`
//! (a control sent through the SCM), `net stop` (a graceful stop: the service says so in its log file
//! and the SCM records exit code 0), `buffer verify` of what it wrote, the records read back by
//! the Linux build, and `service uninstall`.
#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

const LINUX_BIN: &str = env!("CARGO_BIN_EXE_cic-conduit");

/// The Windows binary beside the Linux one in the same target directory.
fn windows_exe() -> PathBuf {
    let linux = Path::new(LINUX_BIN);
    let profile = linux.parent().unwrap();
    let target = profile.parent().unwrap();
    let exe = target
        .join("x86_64-pc-windows-gnu")
        .join(profile.file_name().unwrap())
        .join("cic-conduit.exe");
    assert!(
        exe.exists(),
        "{} is missing: build it with `cargo build --target x86_64-pc-windows-gnu --bin cic-conduit` (`rustup target add x86_64-pc-windows-gnu`, Debian's gcc-mingw-w64-x86-64; .ci/run does both)",
        exe.display()
    );
    exe
}

/// Runs `cmd` to its end, at most `limit`. Its output goes through files, not pipes: the
/// background processes wine starts (its services.exe among them) inherit them and keep a pipe
/// open long after the command ended.
fn output_within(mut cmd: Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let (out, err) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(limit) {
        Ok(status) => status.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            panic!("{what} did not end within {limit:?}");
        }
    };
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut v = Vec::new();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    };
    Output {
        status,
        stdout: read(out),
        stderr: read(err),
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A wine prefix of its own, its server kept up (services live as long as it does), with the
/// conduit's executable and the ProcessPrng DLL in one directory.
struct Wine {
    prefix: tempfile::TempDir,
    bin_dir: tempfile::TempDir,
}

impl Wine {
    fn new() -> Wine {
        let exe = windows_exe();
        let prefix = tempfile::tempdir().unwrap();
        let bin_dir = tempfile::tempdir().unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wine");
        let mut gcc = Command::new("x86_64-w64-mingw32-gcc");
        gcc.args(["-shared", "-O2", "-o"])
            .arg(bin_dir.path().join("bcryptprimitives.dll"))
            .arg(src.join("bcryptprimitives.c"))
            .arg(src.join("bcryptprimitives.def"))
            .arg("-ladvapi32");
        let out = output_within(gcc, Duration::from_secs(120));
        assert!(
            out.status.success(),
            "mingw-w64 gcc (Debian's gcc-mingw-w64-x86-64): {}",
            text(&out)
        );
        let copy = bin_dir.path().join("cic-conduit.exe");
        if std::fs::hard_link(&exe, &copy).is_err() {
            std::fs::copy(&exe, &copy).unwrap();
        }
        let wine = Wine { prefix, bin_dir };
        // The prefix made, its server gone; then one server kept up for the test, so that one
        // services.exe holds the services (a server made persistent before the prefix exists
        // ends up with two).
        let out = output_within(wine.command("wineboot", &["-i"]), Duration::from_secs(300));
        assert!(out.status.success(), "wineboot -i (Debian's wine) failed");
        output_within(wine.command("wineserver", &["-w"]), Duration::from_secs(60));
        let out = output_within(wine.command("wineserver", &["-p"]), Duration::from_secs(60));
        assert!(out.status.success(), "wineserver -p failed");
        wine
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args)
            .current_dir(self.bin_dir.path())
            .env("WINEPREFIX", self.prefix.path())
            .env("WINEDEBUG", "-all")
            // No Mono or Gecko installer prompts.
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env_remove("DISPLAY")
            .env_remove("RUST_LOG");
        c
    }

    /// Runs a Windows program (`cic-conduit.exe`, `net`, `sc`) to its end.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let mut all = vec![program];
        all.extend_from_slice(args);
        output_within(self.command("wine", &all), Duration::from_secs(180))
    }

    /// `C:\<path>` on the Linux side.
    fn c_drive(&self, path: &str) -> PathBuf {
        self.prefix.path().join("drive_c").join(path)
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        let _ = output_within(self.command("wineserver", &["-k"]), Duration::from_secs(60));
    }
}

fn config(level: &str) -> String {
    format!(
        r#"cic_server = "cic-test"
data_dir = 'C:\ProgramData\cic-conduit\data'
[server]
listen = "127.0.0.1:0"
[log]
format = "json"
level = "{level}"
[organization]
short_name = "acme"
region = "us-east-1"
[normalize]
default_country_code = "1"
[sources.http]
token = "{TOKEN}"
"#
    )
}

/// Waits for a line of the service's JSON log that holds `needle`; returns it.
async fn log_line(log: &Path, needle: &str) -> serde_json::Value {
    let mut found = None;
    wait_for(
        Duration::from_secs(60),
        &format!("{needle:?} in {}", log.display()),
        || {
            found = std::fs::read_to_string(log)
                .unwrap_or_default()
                .lines()
                .find(|l| l.contains(needle))
                .map(|l| serde_json::from_str(l).unwrap());
            found.is_some()
        },
    )
    .await;
    found.unwrap()
}

#[tokio::test]
async fn the_windows_build_runs_as_a_service_under_wine_and_stops_gracefully() {
    let wine = Wine::new();
    let home = wine.c_drive("ProgramData/cic-conduit");
    std::fs::create_dir_all(&home).unwrap();
    let config_file = home.join("cic-conduit.toml");
    std::fs::write(&config_file, config("info")).unwrap();
    let log = home.join("logs").join("cic-conduit.log");

    // The default config is the one under %ProgramData%.
    let out = wine.run(
        "cic-conduit.exe",
        &[
            "check-config",
            "--config",
            r"C:\ProgramData\cic-conduit\cic-conduit.toml",
        ],
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("config OK") && said.contains(r"C:\ProgramData\cic-conduit\data"),
        "{said}"
    );

    // The Windows build has no Kafka buffer, and says so naming the key.
    std::fs::write(
        home.join("kafka.toml"),
        format!(
            "{}[buffer]\ntype = \"kafka\"\n[buffer.kafka]\nbrokers = \"127.0.0.1:9092\"\n",
            config("info")
        ),
    )
    .unwrap();
    let out = wine.run(
        "cic-conduit.exe",
        &["check-config", "--config", r"C:\ProgramData\cic-conduit\kafka.toml"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("buffer.type") && text(&out).contains("no Kafka buffer"),
        "{}",
        text(&out)
    );

    // A config a service cannot use is refused before anything is registered.
    std::fs::write(
        home.join("relative.toml"),
        config("info").replace(r"C:\ProgramData\cic-conduit\data", "data"),
    )
    .unwrap();
    let out = wine.run(
        "cic-conduit.exe",
        &[
            "service",
            "install",
            "--config",
            r"C:\ProgramData\cic-conduit\relative.toml",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("must be an absolute path for a service"),
        "{}",
        text(&out)
    );

    let out = wine.run("cic-conduit.exe", &["service", "install"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("installed the service cic-conduit"),
        "{}",
        text(&out)
    );
    let again = wine.run("cic-conduit.exe", &["service", "install"]);
    assert!(
        text(&again).contains("installed already"),
        "first: {}\nagain: {}",
        text(&out),
        text(&again)
    );

    let out = wine.run("net", &["start", "cic-conduit"]);
    assert!(out.status.success(), "net start: {}", text(&out));
    let runs = log_line(&log, "the service runs").await;
    let addr = runs["listen"].as_str().unwrap().to_string();
    assert_eq!(get_text(&format!("http://{addr}/readyz")).await.trim(), "ready");

    let mut pushed = 0;
    let mut ids = std::collections::BTreeSet::new();
    for batch in 0..3 {
        let items: Vec<_> = (0..100)
            .map(|i| {
                let id = format!("{}", 3_000_000 + batch * 100 + i);
                ids.insert(format!("{id}20240409"));
                item(&id, "O")
            })
            .collect();
        pushed += push_items(&addr, &items).await;
    }

    // A reload through the SCM (wine's `sc` has no `control`; `service reload` sends the
    // service its reload control), as SIGHUP does on Linux.
    std::fs::write(&config_file, config("debug")).unwrap();
    let out = wine.run("cic-conduit.exe", &["service", "reload"]);
    assert!(out.status.success(), "service reload: {}", text(&out));
    let reloaded = log_line(&log, "reloaded").await;
    assert!(
        reloaded["changed"].as_str().unwrap().contains("log.level"),
        "{reloaded}"
    );

    let out = wine.run("net", &["stop", "cic-conduit"]);
    assert!(out.status.success(), "net stop: {}", text(&out));
    let out = wine.run("sc", &["query", "cic-conduit"]);
    let state = text(&out);
    assert!(state.contains("STOPPED"), "{state}");
    assert!(
        state.contains("WIN32_EXIT_CODE    : 0") && state.contains("SERVICE_EXIT_CODE  : 0"),
        "{state}"
    );
    log_line(&log, "the Service Control Manager asks the service to stop").await;
    let stopped = log_line(&log, r#""message":"stopped""#).await;
    assert_eq!(stopped["backlog"].as_u64(), Some(pushed), "{stopped}");
    log_line(&log, "the service stopped").await;

    // What the service wrote is whole, read by its own `buffer verify` and by the Linux build.
    let out = wine.run(
        "cic-conduit.exe",
        &["buffer", "verify", "--data-dir", r"C:\ProgramData\cic-conduit\data"],
    );
    let verified = text(&out);
    assert!(out.status.success(), "{verified}");
    assert!(
        verified.contains(&format!("total: {pushed} records")) && verified.contains("status: ok"),
        "{verified}"
    );
    let events = events_in(&home.join("data"));
    assert_eq!(events.len() as u64, pushed);
    let seen: std::collections::BTreeSet<String> = events.iter().map(|e| e.interaction.call_id_key.clone()).collect();
    assert_eq!(seen, ids);

    let out = wine.run("cic-conduit.exe", &["service", "uninstall"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = wine.run("sc", &["query", "cic-conduit"]);
    assert!(!text(&out).contains("STOPPED"), "still installed: {}", text(&out));

    // `service run` from a console says what to do instead. (Last: under wine, a service
    // dispatcher started outside the SCM upsets wine's services.exe for what follows.)
    let out = wine.run("cic-conduit.exe", &["service", "run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("sc start cic-conduit"), "{}", text(&out));
}
