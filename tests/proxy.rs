//! Genesys Cloud through a corporate proxy: a real proxy on loopback (Debian's `tinyproxy`;
//! `.ci/run` installs it) in front of the cloud simulator served over HTTPS with a private CA's
//! certificate (`organization.ca_file`). A proxy that refuses the tunnel is a clear error and an
//! outage (nothing lost, delivered once the way is open); the configured proxy's credentials
//! and the environment's `HTTPS_PROXY`/`NO_PROXY` are honoured and shown by `check-config`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use cic_conduit::shutdown::Shutdown;
use cic_conduit::sim::cic::{CicSim, CicSimConfig};
use cic_conduit::sim::cloud::{CloudSim, SimConfig};
use common::kafka::tls_front;
use common::prometheus::free_port;
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_cic-conduit");
const PROXY_USER: &str = "proxyuser";
const PROXY_PASSWORD: &str = "proxy-pass-7d1f";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// A tinyproxy on loopback asking for basic authentication and opening tunnels only to
/// `connect_port`; its log in `dir`.
struct Tinyproxy {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Tinyproxy {
    async fn start(dir: &Path, name: &str, connect_port: u16) -> Tinyproxy {
        let port = free_port();
        let conf = dir.join(format!("{name}.conf"));
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogLevel Connect\nMaxClients 50\nAllow 127.0.0.1\nConnectPort {connect_port}\nBasicAuth {PROXY_USER} {PROXY_PASSWORD}\n"
            ),
        )
        .unwrap();
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new("tinyproxy")
            .args(["-d", "-c"])
            .arg(&conf)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("tinyproxy (Debian's tinyproxy package: apt-get install tinyproxy)");
        wait_until(Duration::from_secs(20), "tinyproxy listening", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await;
        Tinyproxy { child, port, log }
    }

    /// The tunnels asked of it to `port`.
    fn connects_to(&self, port: u16) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches(&format!("CONNECT 127.0.0.1:{port} "))
            .count()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn check_config(config: &Path, env: &[(&str, &str)]) -> String {
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(config)
        .env_remove("HTTPS_PROXY")
        .env_remove("NO_PROXY")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_traffic_goes_through_the_proxy_and_a_refused_tunnel_loses_nothing() {
    let stop = Shutdown::new();
    let sim = CloudSim::new(SimConfig::default());
    let sim_addr = sim.spawn("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
    // The cloud over HTTPS, its certificate from the test CA (as a TLS-inspecting proxy's is).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tls_port = listener.local_addr().unwrap().port();
    let _front = tls_front(listener, sim_addr.port(), &fixture("cic.pem"), &fixture("cic.key"));
    let dir = tempfile::tempdir().unwrap();
    let base = cloud_config_text(&dir.path().join("data"), sim_addr, "")
        .replace(&format!("http://{sim_addr}"), &format!("https://127.0.0.1:{tls_port}"))
        .replace(
            "client_secret = \"sim-secret\"\n",
            &format!("client_secret = \"sim-secret\"\nca_file = {:?}\n", fixture("ca.pem")),
        );
    let config = dir.path().join("c.toml");
    std::fs::write(&config, &base).unwrap();
    let id = setup_configuration(BIN, &config, &[]);
    let sink = format!(
        "[sinks.journey]\nconfiguration_id = \"{id}\"\nexternal_source_id = \"cic-test\"\nmax_age_ms = 50\nretry_max_ms = 1000\n"
    );
    let with_proxy = |port: u16| {
        format!(
            "{base}{sink}[organization.proxy]\nurl = \"http://127.0.0.1:{port}\"\nusername = \"{PROXY_USER}\"\npassword = {{ env = \"TEST_PROXY_PASSWORD\" }}\n"
        )
    };
    let env = [("TEST_PROXY_PASSWORD", PROXY_PASSWORD)];

    // A proxy that does not open tunnels to the cloud's port.
    let closed = Tinyproxy::start(dir.path(), "closed", 1).await;
    std::fs::write(&config, with_proxy(closed.port)).unwrap();
    let text = check_config(&config, &env);
    assert!(
        text.contains(&format!(
            "cloud via      http://127.0.0.1:{} as {PROXY_USER} (organization.proxy), also trusting",
            closed.port
        )),
        "{text}"
    );
    assert!(!text.contains(PROXY_PASSWORD), "{text}");
    let (child, addr) = spawn_conduit_env(BIN, &config, &env);
    let _guard = KillOnDrop(child.id());
    let accepted = push_lifecycles(&addr, "p", 10).await;
    wait_until(Duration::from_secs(30), "the refusal shown", || async {
        let h: serde_json::Value = serde_json::from_str(&get_text(&format!("http://{addr}/health")).await).unwrap();
        h["destinations"][0]["last_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("the proxy refused to open a tunnel"))
    })
    .await;
    assert!(closed.connects_to(tls_port) >= 1, "the conduit asked the proxy");
    assert_eq!(sim.report().unique_ids, 0);
    let m = get_text(&format!("http://{addr}/metrics")).await;
    assert!(metric(&m, "conduit_buffer_records") > 0.0, "kept in the buffer");
    terminate(&child);
    let mut child = child;
    assert!(child.wait().unwrap().success());

    // The way open: everything accepted is delivered, through the proxy.
    let open = Tinyproxy::start(dir.path(), "open", tls_port).await;
    std::fs::write(&config, with_proxy(open.port)).unwrap();
    let (child, addr) = spawn_conduit_env(BIN, &config, &env);
    let _guard = KillOnDrop(child.id());
    let s2 = sim.clone();
    wait_for(Duration::from_secs(30), "delivered through the proxy", || {
        s2.report().unique_ids == accepted
    })
    .await;
    assert!(open.connects_to(tls_port) >= 1);
    let before = open.connects_to(tls_port);
    terminate(&child);
    let mut child = child;
    assert!(child.wait().unwrap().success());
    drop(addr);

    // No proxy in the config: the environment's HTTPS_PROXY (credentials in it), unless
    // NO_PROXY names the host.
    std::fs::write(&config, format!("{base}{sink}")).unwrap();
    let env_proxy = format!("http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{}", open.port);
    let text = check_config(&config, &[("HTTPS_PROXY", &env_proxy)]);
    assert!(
        text.contains(&format!(
            "cloud via      http://127.0.0.1:{} (from HTTPS_PROXY)",
            open.port
        )),
        "{text}"
    );
    assert!(!text.contains(PROXY_PASSWORD), "{text}");
    let text = check_config(&config, &[("HTTPS_PROXY", &env_proxy), ("NO_PROXY", "127.0.0.1")]);
    assert!(
        text.contains("cloud via      direct (127.0.0.1 is in NO_PROXY"),
        "{text}"
    );
    let (child, addr) = spawn_conduit_env(BIN, &config, &[("HTTPS_PROXY", &env_proxy)]);
    let _guard = KillOnDrop(child.id());
    let more = push_lifecycles(&addr, "q", 5).await;
    let s3 = sim.clone();
    wait_for(
        Duration::from_secs(30),
        "delivered through the environment's proxy",
        || s3.report().unique_ids == accepted + more,
    )
    .await;
    assert!(open.connects_to(tls_port) > before, "through the proxy");
    terminate(&child);
    let mut child = child;
    assert!(child.wait().unwrap().success());
    stop.trigger();
}

/// The CIC side through its own proxy (`[sources.icws.proxy]`), ICWS over HTTPS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icws_goes_through_its_proxy() {
    let stop = Shutdown::new();
    let cic = CicSim::new(CicSimConfig::default());
    let tls = cic_conduit::sim::tls::server_config(&fixture("cic.pem"), &fixture("cic.key")).unwrap();
    let cic_addr = cic
        .spawn_tls("127.0.0.1:0".parse().unwrap(), tls, stop.clone())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let proxy = Tinyproxy::start(dir.path(), "icws", cic_addr.port()).await;
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        config_text(&dir.path().join("data"), "", "").replace("[sources.http]", "[sources.http]\nenabled = false")
            + &format!(
                "[sources.icws]\nenabled = true\nhosts = [\"https://{cic_addr}\"]\npassword = {{ env = \"TEST_CIC_PASSWORD\" }}\nworkgroups = [\"Support\"]\nreconnect_max_ms = 1000\nca_file = {:?}\n[sources.icws.proxy]\nurl = \"http://127.0.0.1:{}\"\nusername = \"{PROXY_USER}\"\npassword = {{ env = \"TEST_PROXY_PASSWORD\" }}\n[ha]\nmode = \"follow-primary\"\n",
                fixture("ca.pem"),
                proxy.port
            ),
    )
    .unwrap();
    let env = [
        ("TEST_CIC_PASSWORD", "sim-password"),
        ("TEST_PROXY_PASSWORD", PROXY_PASSWORD),
    ];
    let text = check_config(&config, &env);
    assert!(
        text.contains(&format!(
            "ICWS via       http://127.0.0.1:{} as {PROXY_USER} (sources.icws.proxy)",
            proxy.port
        )),
        "{text}"
    );
    let (child, _addr) = spawn_conduit_env(BIN, &config, &env);
    let _guard = KillOnDrop(child.id());
    let c2 = cic.clone();
    wait_for(
        Duration::from_secs(30),
        "a queue subscription through the proxy",
        || c2.report().queue_subscriptions == 1,
    )
    .await;
    assert!(proxy.connects_to(cic_addr.port()) >= 1, "through the proxy");
    terminate(&child);
    let mut child = child;
    assert!(child.wait().unwrap().success());
    stop.trigger();
}

#[test]
fn a_proxy_url_with_credentials_in_it_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        config_text(&dir.path().join("data"), "", "").replace(
            "[buffer]",
            "[organization.proxy]\nurl = \"http://user:secret@proxy.example:3128\"\n[buffer]",
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("organization.proxy.url"), "{err}");
    assert!(!err.contains("secret@"), "{err}");
}
