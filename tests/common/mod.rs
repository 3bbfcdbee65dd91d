//! Shared helpers for the black-box tests: configs on disk, a loopback HTTP client, items.
#![allow(dead_code)]

pub mod kafka;
pub mod prometheus;
pub mod story;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const TOKEN: &str = "test-push-token-0123456789";

/// CPU seconds (user + system) process `pid` has used (`"self"` for this one), from its
/// `/proc/<pid>/stat` (in clock ticks of 1/100 s).
pub fn cpu_secs(pid: impl std::fmt::Display) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 =
        f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// A benchmark's numeric argument `name` (`-- --events 1000`), or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const LOAD_STATES: [&str; 5] = ["O", "C", "H", "C", "E"];

/// One request of the load benchmarks: `batch / 5` interactions, each going through offer, connect, hold, resume, end.
pub fn load_body(client: u64, request: u64, batch: u64) -> String {
    let mut s = String::with_capacity(batch as usize * 220);
    s.push('[');
    for i in 0..batch {
        let id = format!("{:02}{:08}", client, request * (batch / 5) + i / 5);
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"interactionId":"{id}","attributes":{{"Eic_CallIdKey":"{id}20240409","Eic_State":"{}","Eic_CallDirection":"I","Eic_ObjectType":"Call","Eic_RemoteAddress":"+1317555{:04}","Eic_WorkgroupName":"Support","Eic_UserName":"agent{}"}}}}"#,
            LOAD_STATES[(i % 5) as usize],
            i % 10_000,
            (i / 5) % 50
        ));
    }
    s.push(']');
    s
}

/// A complete config for a conduit on loopback with its data under `dir`.
pub fn config_text(dir: &Path, extra_buffer: &str, extra_top: &str) -> String {
    format!(
        r#"
{extra_top}
cic_server = "cic-test"
data_dir = "{}"
[server]
listen = "127.0.0.1:0"
[log]
format = "json"
level = "info"
[organization]
short_name = "acme"
region = "us-east-1"
api_base_url = "http://127.0.0.1:9"
login_base_url = "http://127.0.0.1:9"
[buffer]
type = "disk"
{extra_buffer}
[normalize]
default_country_code = "1"
[sources.http]
token = "{TOKEN}"
"#,
        dir.display().to_string().replace('\\', "\\\\")
    )
}

/// One push item: a new inbound call in `state`.
pub fn item(id: &str, state: &str) -> serde_json::Value {
    serde_json::json!({
        "interactionId": id,
        "attributes": {
            "Eic_CallIdKey": format!("{id}20240409"),
            "Eic_State": state,
            "Eic_CallDirection": "I",
            "Eic_ObjectType": "Call",
            "Eic_RemoteAddress": "+13175551234",
            "Eic_WorkgroupName": "Support",
            "Eic_InitiationTime": "20240409T140311Z"
        }
    })
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Every event in a buffer directory, decoded, in sequence order.
pub fn events_in(data_dir: &Path) -> Vec<cic_conduit::event::InteractionEvent> {
    let codec = cic_conduit::event::EventCodec::new();
    let mut out = Vec::new();
    cic_conduit::buffer::inspect::scan_dir(data_dir, |_, _, p| out.push(codec.decode(p).expect("valid record")))
        .expect("scan");
    out
}

/// Starts the real binary with `run --config`, and returns it with the address it listens on
/// (read from its JSON log, which must be configured). Its log keeps being drained.
pub fn spawn_conduit(bin: &str, config: &Path) -> (Child, String) {
    spawn_conduit_env(bin, config, &[])
}

/// [`spawn_conduit`] with extra environment variables.
pub fn spawn_conduit_env(bin: &str, config: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let mut cmd = Command::new(bin);
    cmd.args(["run", "--config"]).arg(config).envs(env.iter().copied());
    spawn_listening(cmd)
}

/// [`spawn_conduit`] with the process's open-file limit (soft and hard) set to `nofile`.
pub fn spawn_conduit_nofile(bin: &str, config: &Path, nofile: u32) -> (Child, String) {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -n {nofile} && exec \"$0\" run --config \"$1\""))
        .arg(bin)
        .arg(config);
    spawn_listening(cmd)
}

/// Starts `cmd` (a conduit with a JSON log) and returns it with the address it listens on.
pub fn spawn_listening(mut cmd: Command) -> (Child, String) {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let addr = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!("conduit exited before listening:\n{}", seen.join("\n"));
        };
        seen.push(line.clone());
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "listening" {
            break v["addr"].as_str().unwrap().to_string();
        }
    };
    // Keep draining the log so the child never blocks on a full pipe; with TEST_LOG_DIR set,
    // into `<dir>/<pid>.log` for reading after a failure.
    let keep =
        std::env::var_os("TEST_LOG_DIR").map(|d| std::path::PathBuf::from(d).join(format!("{}.log", child.id())));
    std::thread::spawn(move || {
        use std::io::Write;
        let mut file = keep.and_then(|p| std::fs::File::create(p).ok());
        for line in seen.into_iter().map(Ok).chain(lines) {
            if let (Some(f), Ok(line)) = (file.as_mut(), line) {
                let _ = writeln!(f, "{line}");
            }
        }
    });
    (child, addr)
}

/// Asks a process to stop the way a service manager does (SIGTERM on Unix).
pub fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Pushes `items` to a conduit at `addr`, expecting 202; returns the events accepted.
pub async fn push_items(addr: &str, items: &[serde_json::Value]) -> u64 {
    let resp = client()
        .post(format!("http://{addr}/v1/interactions"))
        .bearer_auth(TOKEN)
        .json(&items)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let v: serde_json::Value = resp.json().await.unwrap();
    v["events"].as_u64().unwrap()
}

/// The body of `GET url`.
pub async fn get_text(url: &str) -> String {
    client().get(url).send().await.unwrap().text().await.unwrap()
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `limit`.
pub async fn wait_for(limit: std::time::Duration, what: &str, mut cond: impl FnMut() -> bool) {
    wait_until(limit, what, || std::future::ready(cond())).await
}

/// Polls an asynchronous `cond` (an HTTP call, say) every 20 ms until it holds; panics with
/// `what` after `limit`.
pub async fn wait_until<F, Fut>(limit: std::time::Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = std::time::Instant::now() + limit;
    let mut every = tokio::time::interval(std::time::Duration::from_millis(20));
    loop {
        every.tick().await;
        if cond().await {
            return;
        }
        assert!(std::time::Instant::now() < end, "timed out waiting for {what}");
    }
}

/// Runs `cic-conduit setup` with `config` (and `env`); returns the configuration id it printed.
pub fn setup_configuration(bin: &str, config: &Path, env: &[(&str, &str)]) -> String {
    let out = Command::new(bin)
        .args(["setup", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    text.lines()
        .find_map(|l| {
            l.strip_prefix("configuration  ")?
                .split_whitespace()
                .next()
                .map(str::to_string)
        })
        .expect("a configuration id")
}

/// A conduit config on loopback delivering to a cloud simulator at `cloud`, with `extra`
/// appended (sources, sinks, ha).
pub fn cloud_config_text(data: &Path, cloud: std::net::SocketAddr, extra: &str) -> String {
    config_text(data, "", "").replace(
        "api_base_url = \"http://127.0.0.1:9\"\nlogin_base_url = \"http://127.0.0.1:9\"\n",
        &format!(
            "api_base_url = \"http://{cloud}\"\nlogin_base_url = \"http://{cloud}\"\nclient_id = \"sim-client\"\nclient_secret = \"sim-secret\"\n"
        ),
    ) + extra
}

/// Interaction changes for ids `<prefix><i:02>` over `ids`; when they name a workgroup (a new
/// interaction), also its call id key and a phone number.
pub fn changes_of(
    prefix: &str,
    ids: std::ops::Range<usize>,
    attrs: &[(&'static str, &str)],
) -> Vec<cic_conduit::sim::traffic::Change> {
    ids.map(|i| {
        let id = format!("{prefix}{i:02}");
        let mut a: Vec<(&'static str, String)> = attrs.iter().map(|(k, v)| (*k, v.to_string())).collect();
        if attrs.iter().any(|(k, _)| *k == "Eic_WorkgroupName") {
            a.push(("Eic_CallIdKey", format!("{id}20240409")));
            a.push(("Eic_RemoteAddress", format!("+1317555{i:04}")));
        }
        cic_conduit::sim::traffic::Change {
            interaction_id: id,
            attributes: a,
        }
    })
    .collect()
}

/// Kills a conduit left running when a test fails before stopping it (a reaped pid may have been
/// reused, so only a process that is still a conduit is killed).
pub struct KillOnDrop(pub u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.0)).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("cic-conduit") {
            let _ = Command::new("kill").args(["-KILL", &self.0.to_string()]).status();
        }
    }
}

/// The value of one sample (`name{labels}`, as rendered) in a Prometheus text exposition; 0 when
/// absent.
pub fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Asks the Genesys Cloud simulator at `base` for a token as its default client.
pub async fn sim_token_request(base: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/oauth/token"))
        .basic_auth("sim-client", Some("sim-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap()
}

/// A bearer token of the Genesys Cloud simulator at `base`, for its default client.
pub async fn sim_token(base: &str) -> String {
    let v: serde_json::Value = sim_token_request(base).await.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// Interactions `<prefix>0000..n`, each offered, connected, then disconnected: three requests;
/// returns the events accepted.
pub async fn push_lifecycles(addr: &str, prefix: &str, n: usize) -> u64 {
    let mut events = 0;
    for state in ["O", "C", "E"] {
        let items: Vec<serde_json::Value> = (0..n).map(|i| item(&format!("{prefix}{i:04}"), state)).collect();
        events += push_items(addr, &items).await;
    }
    events
}

/// Per interaction key, the event types in the order the cloud simulator received them.
pub fn by_interaction(
    received: &[cic_conduit::sim::cloud::Received],
) -> std::collections::HashMap<String, Vec<String>> {
    let mut m: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for r in received {
        m.entry(r.call_id_key.clone().unwrap())
            .or_default()
            .push(r.event_type.clone().unwrap());
    }
    m
}

/// CIC directory user `agent<i:05>` (an e-mail, a business phone with an extension, `mobile`),
/// as the CIC simulator serves it.
pub fn cic_user(i: u64, mobile: &str) -> serde_json::Value {
    let id = format!("agent{i:05}");
    serde_json::json!({"configurationId": {"id": id, "displayName": format!("Agent {i}")},
        "personalInformationProperties": {"emailAddress": format!("{id}@example.com"),
            "phoneNumberOfBusiness1": {"number": format!("317555{:04}", i % 10_000), "extension": format!("{}", 1000 + i)},
            "phoneNumberOfMobile": {"number": mobile, "extension": ""}}})
}

/// Config sections for the ICWS source at `cic` (its password in the environment variable
/// `password_env`) with the user sync on and statuses off, as the benchmarks run it.
pub fn user_sync_sections(cic: impl std::fmt::Display, password_env: &str) -> String {
    format!(
        "[sources.icws]\nenabled = true\nhosts = [\"http://{cic}\"]\npassword = {{ env = \"{password_env}\" }}\nworkgroups = [\"Support\"]\n[ha]\nmode = \"follow-primary\"\n[users]\nenabled = true\nstatuses = false\n"
    )
}

/// A CIC simulator (one server, no generated directory) serving `users` directory users
/// ([`cic_user`], one mobile number for all), started on loopback until `stop`.
pub async fn cic_with_users(
    users: u64,
    stop: cic_conduit::shutdown::Shutdown,
) -> (std::sync::Arc<cic_conduit::sim::cic::CicSim>, std::net::SocketAddr) {
    use cic_conduit::sim::cic::{CicSim, CicSimConfig};
    let cic = CicSim::new(CicSimConfig {
        pair: vec!["127.0.0.1".into()],
        directory_users: 0,
        ..CicSimConfig::default()
    });
    for i in 0..users {
        cic.set_user(cic_user(i, "3175550000"));
    }
    let addr = cic.spawn("127.0.0.1:0".parse().unwrap(), stop).await.unwrap();
    (cic, addr)
}
