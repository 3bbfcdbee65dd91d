//! A real Kafka-protocol broker for the tests: `tansu` 0.6.0 (`cargo install tansu --version
//! 0.6.0 --locked --features libsql`), its sqlite storage in a scratch directory, on loopback.
//! `.ci/run` installs it; a machine without it fails the Kafka tests with that command.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running broker; killed when dropped.
pub struct Broker {
    child: Option<Child>,
    /// The port clients connect to (and the broker advertises).
    port: u16,
    /// The port the broker listens on: `port`, or behind a TLS front, the front's backend.
    listen: u16,
    dir: tempfile::TempDir,
    /// Stops the TLS front, when there is one.
    _front: Option<tokio::sync::oneshot::Sender<()>>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TLS listener on `listener` (with `cert` and `key`) forwarding each connection to the
/// broker's plaintext port `backend`, on a thread of its own until `stop`. (tansu 0.6.0's own
/// TLS cannot be turned on: its command line refuses `--cert` and `--key` together.)
pub fn tls_front(
    listener: std::net::TcpListener,
    backend: u16,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> tokio::sync::oneshot::Sender<()> {
    let config = cic_conduit::sim::tls::server_config(cert, key).expect("the test certificate");
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            loop {
                let tcp = tokio::select! {
                    r = listener.accept() => match r { Ok((tcp, _)) => tcp, Err(_) => continue },
                    _ = &mut stopped => return,
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that does not trust the certificate ends here.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut back) = tokio::net::TcpStream::connect(("127.0.0.1", backend)).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut back).await;
                });
            }
        })
    });
    stop
}

fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TANSU") {
        return p.into();
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    let installed = home.join("bin").join("tansu");
    if installed.exists() {
        return installed;
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("tansu")).find(|p| p.exists()))
        .unwrap_or_default();
    on_path.unwrap_or_else(|| {
        panic!("the Kafka tests need the tansu broker: cargo install tansu --version 0.6.0 --locked --features libsql")
    })
}

impl Broker {
    /// Starts a broker on a free loopback port.
    pub fn start() -> Broker {
        Self::start_with(None)
    }

    /// Starts a broker reached over TLS, with `cert` and `key` (PEM).
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Broker {
        Self::start_with(Some((cert.to_path_buf(), key.to_path_buf())))
    }

    fn start_with(tls: Option<(PathBuf, PathBuf)>) -> Broker {
        let (port, listen, front) = match tls {
            None => {
                let port = free_port();
                (port, port, None)
            }
            Some((cert, key)) => {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let port = listener.local_addr().unwrap().port();
                let backend = free_port();
                (port, backend, Some(tls_front(listener, backend, &cert, &key)))
            }
        };
        let mut b = Broker {
            child: None,
            port,
            listen,
            dir: tempfile::tempdir().unwrap(),
            _front: front,
        };
        b.spawn();
        b.index_headers();
        b
    }

    /// tansu 0.6.0's sqlite schema has no index on a record's headers, and a fetch reads each
    /// record's headers: every record fetched scans all the headers stored, so reading slows
    /// with the topic's size (quadratically over a backlog). The index a broker's storage would
    /// have, added to its database (Python's sqlite3, present wherever the tests run).
    fn index_headers(&self) {
        let script = "import sqlite3,sys\n\
                      c=sqlite3.connect(sys.argv[1],timeout=10)\n\
                      c.execute('create index if not exists header_by_record on header (topition, offset_id)')\n\
                      c.commit()";
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(self.dir.path().join("tansu.db"))
            .output()
            .expect("python3, for the broker's storage");
        assert!(
            out.status.success(),
            "indexing the broker's headers: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `host:port`, for `brokers`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.listen);
        let advertised = format!("tcp://127.0.0.1:{}", self.port);
        let mut child = Command::new(binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(self.dir.path())
            .stdout(Stdio::piped())
            .stderr(match std::env::var_os("TEST_LOG_DIR") {
                Some(d) => Stdio::from(
                    std::fs::File::options()
                        .create(true)
                        .append(true)
                        .open(PathBuf::from(d).join(format!("tansu-{}.log", self.port)))
                        .unwrap(),
                ),
                None => Stdio::null(),
            })
            .spawn()
            .expect("start tansu");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let keep = std::env::var_os("TEST_LOG_DIR").map(|d| PathBuf::from(d).join(format!("tansu-{}.out", self.port)));
        std::thread::spawn(move || {
            use std::io::Write;
            let mut file = keep.and_then(|p| std::fs::File::options().create(true).append(true).open(p).ok());
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                if line.contains("ready in") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("tansu did not say it was ready within 30 s");
        self.child = Some(child);
    }

    /// Kills it (SIGKILL): its stored records stay in its directory.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Creates `topic` with `partitions` (with tansu's own client).
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let out = Command::new(binary())
            .args(["topic", "create", topic, "--broker"])
            .arg(format!("tcp://127.0.0.1:{}", self.listen))
            .args(["--partitions", &partitions.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `text` (a config from [`super::config_text`]) with its buffer made the topic `topic` of
/// `broker` (`partitions` when `setup` creates it), consumed by the group `dispatchers`. Short
/// sessions: a dispatcher that leaves is noticed within seconds.
pub fn kafka_buffer(text: &str, broker: &Broker, topic: &str, partitions: u32) -> String {
    let kafka = format!(
        "[buffer]\ntype = \"kafka\"\n[buffer.kafka]\nbrokers = \"{}\"\ntopic = \"{topic}\"\ngroup = \"dispatchers\"\npartitions = {partitions}\nreplication_factor = 1\nrevoke_timeout_ms = 5000\nproduce_timeout_ms = 3000\n[buffer.kafka.properties]\n\"compression.type\" = \"lz4\"\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n",
        broker.addr()
    );
    assert!(text.contains("[buffer]\ntype = \"disk\"\n"), "a config of config_text");
    text.replace("[buffer]\ntype = \"disk\"\n", &kafka)
}
