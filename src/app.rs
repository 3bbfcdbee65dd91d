//! Wiring: start every part from a validated [`Config`], and stop them in order.
//!
//! Stop order on the shutdown signal: the listener stops accepting; requests in flight finish
//! (their appends are stored and answered); the dispatcher stops (what it had not confirmed
//! stays in the buffer); the buffer is closed — queued appends written, synced, every
//! acknowledgement in the persisted cursor; then [`Running::wait`] returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::buffer::{Buffer, BufferError, DiskBuffer};
use crate::config::{Config, ConfigError, JourneySinkConfig};
use crate::dispatch::deadletter::{DeadLetterError, DeadLetters};
use crate::dispatch::gate::Gate;
use crate::dispatch::{Common, Delivery, Dispatcher, Route};
use crate::metrics::Metrics;
use crate::normalize::Normalizer;
use crate::server::{self, Status};
use crate::shutdown::{OsSignals, Shutdown};
use crate::sink::journey::{JourneySink, Mapper};
use crate::sink::oauth::{Credentials, TokenSource};
use crate::source::Ingest;
use crate::source::carry::{self, Carrier};
use crate::source::http::HttpSource;
use crate::source::icws::members::Members;
use crate::source::icws::{IcwsSource, IcwsStatus};
use crate::supervisor::Supervisor;

/// Why the conduit could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The buffer.
    #[error("buffer: {0}")]
    Buffer(#[from] BufferError),
    /// The listener.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("server: {0}")]
    Serve(std::io::Error),
    /// The stop-signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// A task panicked.
    #[error("task failed: {0}")]
    Join(String),
    /// The dead-letter directory.
    #[error(transparent)]
    DeadLetter(#[from] DeadLetterError),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(String),
    /// `setup` failed.
    #[error(transparent)]
    Setup(#[from] crate::sink::setup::SetupError),
    /// A part failed for good while running; the process exits non-zero to be restarted.
    #[error("stopped after a failure: {0}")]
    Failed(String),
}

/// The HTTP client every sink shares: rustls with the platform's roots, certificates verified,
/// no redirects followed.
pub fn http_client(request_timeout: std::time::Duration) -> Result<reqwest::Client, AppError> {
    reqwest::Client::builder()
        .timeout(request_timeout)
        .connect_timeout(std::time::Duration::from_secs(10))
        .redirect(crate::outbound::no_redirects())
        .user_agent(concat!("cic-conduit/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| AppError::Http(e.to_string()))
}

/// The ICWS client: TLS verified (with `ca_file`'s certificates trusted too), connect timeout;
/// per-call timeouts are set on each call, since the event stream stays open.
pub fn icws_client(ca_file: Option<&std::path::Path>) -> Result<reqwest::Client, AppError> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .redirect(crate::outbound::no_redirects())
        .user_agent(concat!("cic-conduit/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            ConfigError::invalid("sources.icws.ca_file", format!("cannot read {}: {e}", path.display()))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            ConfigError::invalid(
                "sources.icws.ca_file",
                format!("{} is not PEM certificates: {e}", path.display()),
            )
        })?;
        if certs.is_empty() {
            return Err(ConfigError::invalid(
                "sources.icws.ca_file",
                format!("{} holds no certificate", path.display()),
            )
            .into());
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(|e| AppError::Http(e.to_string()))
}

/// The shared token source of the configured organization.
pub fn token_source(config: &Config, http: reqwest::Client, metrics: &Metrics) -> Result<Arc<TokenSource>, AppError> {
    let org = &config.organization;
    let client_id = org
        .client_id
        .clone()
        .ok_or_else(|| ConfigError::invalid("organization.client_id", "required"))?;
    let client_secret = org
        .client_secret
        .as_ref()
        .ok_or_else(|| ConfigError::invalid("organization.client_secret", "required"))?
        .resolve("organization.client_secret")?;
    Ok(Arc::new(TokenSource::new(
        http,
        &org.login_base(),
        Credentials {
            client_id,
            client_secret,
        },
        metrics.oauth_refreshes.clone(),
    )))
}

/// Runs `setup` (see [`crate::sink::setup`]) against the configured organization.
pub async fn setup(cfg: &Config, name: &str, source: &str) -> Result<crate::sink::setup::SetupResult, AppError> {
    use crate::sink::setup::Setup;
    let http = http_client(std::time::Duration::from_secs(30))?;
    let tokens = token_source(cfg, http.clone(), &Metrics::new())?;
    let setup = Setup::for_config(cfg, http, tokens);
    Ok(setup.run(&Setup::mapper_for(cfg), name, source).await?)
}

/// The buffer reader the dispatcher owns.
pub const DISPATCH_READER: &str = "dispatch";

/// How the journey sink's records are delivered, from its section.
fn journey_delivery(j: &JourneySinkConfig) -> Delivery {
    Delivery {
        concurrency: j.concurrency,
        max_events: j.max_events,
        max_bytes: j.max_bytes,
        max_age: j.max_age(),
        retry_initial: Duration::from_millis(j.retry_initial_ms),
        retry_max: Duration::from_millis(j.retry_max_ms),
        max_entity_attempts: j.max_entity_attempts,
    }
}

/// Starts delivering to the enabled sinks, if any.
fn start_dispatch(
    config: &Config,
    buffer: &Arc<dyn Buffer>,
    metrics: &Metrics,
    shutdown: &Shutdown,
    supervisor: &Supervisor,
) -> Result<Option<Dispatcher>, AppError> {
    let Some(j) = config.sinks.journey.as_ref().filter(|j| j.enabled) else {
        tracing::warn!("no destination is enabled: events stay in the buffer");
        return Ok(None);
    };
    let http = http_client(Duration::from_millis(j.request_timeout_ms))?;
    // One token source and one gate for the organization's OAuth client, shared by every sink
    // that uses it: Genesys Cloud limits requests per client.
    let tokens = token_source(config, http.clone(), metrics)?;
    let gate = Arc::new(Gate::new(j.rate_limit_share));
    let journey = JourneySink::new(
        http,
        &config.organization.api_base(),
        &j.configuration_id,
        tokens,
        Mapper::new(&config.normalize.custom_attributes, &j.external_source_id),
    );
    let routes = vec![Route {
        sink: Arc::new(journey),
        delivery: journey_delivery(j),
        gate,
    }];
    let reader = buffer.reader(DISPATCH_READER)?;
    let common = Common {
        acker: reader.acker(),
        dead: Arc::new(DeadLetters::open(&config.data_dir)?),
        metrics: metrics.sink.clone(),
        shutdown: shutdown.clone(),
    };
    tracing::info!(
        sink = crate::sink::journey::NAME,
        configuration_id = %j.configuration_id,
        concurrency = j.concurrency,
        max_events = j.max_events,
        "delivering to Genesys Cloud"
    );
    Ok(Some(Dispatcher::spawn(reader, routes, common, supervisor)))
}

/// A started conduit.
pub struct Running {
    /// The address the HTTP listener is bound to.
    pub addr: SocketAddr,
    /// The shared metrics.
    pub metrics: Arc<Metrics>,
    /// The buffer.
    pub buffer: Arc<dyn Buffer>,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<Result<(), AppError>>,
}

impl Running {
    /// The shutdown signal (trigger it to stop).
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Waits until the conduit has stopped.
    pub async fn wait(self) -> Result<(), AppError> {
        self.task.await.map_err(|e| AppError::Join(e.to_string()))?
    }

    /// Triggers shutdown and waits for it.
    pub async fn stop(self) -> Result<(), AppError> {
        self.shutdown.trigger();
        self.wait().await
    }
}

/// Starts the conduit; returns once the listener is bound.
pub async fn start(config: Config) -> Result<Running, AppError> {
    let metrics = Arc::new(Metrics::new());
    metrics.enabled.set(i64::from(config.enabled));
    let shutdown = Shutdown::new();
    let supervisor = Supervisor::new(shutdown.clone(), metrics.task_failures.clone());
    // The sources' carried state first: the buffer keeps the records written after it.
    let carried = {
        let (dir, server) = (config.data_dir.clone(), config.cic_server.clone());
        tokio::task::spawn_blocking(move || carry::load(&dir, &server))
            .await
            .map_err(|e| AppError::Join(e.to_string()))?
    };
    let buffer: Arc<dyn Buffer> = {
        let cfg = config.buffer.clone();
        let m = metrics.buffer.clone();
        let keep_from = carried.as_ref().and_then(|c| c.position());
        Arc::new(
            tokio::task::spawn_blocking(move || DiskBuffer::open_retaining(&cfg, m, keep_from))
                .await
                .map_err(|e| AppError::Join(e.to_string()))??,
        )
    };
    let dispatcher = start_dispatch(&config, &buffer, &metrics, &shutdown, &supervisor)?;
    let destinations = dispatcher.as_ref().map(|d| d.destinations.clone()).unwrap_or_default();
    // One normalizer for every source: they describe the same CIC server's interactions.
    let normalizer = Normalizer::new(&config.cic_server, &config.normalize, metrics.normalize.clone());
    let ingest = Arc::new(Ingest::new(normalizer, buffer.clone()));
    let icws_on = config.sources.icws.enabled && config.enabled;
    let members: Option<Arc<Members>> = icws_on.then(Default::default);
    if let Some(carried) = carried {
        let (ingest, members) = (ingest.clone(), members.clone());
        let only_icws = !config.sources.http.enabled;
        let restored =
            tokio::task::spawn_blocking(move || carry::restore(carried, &ingest, members.as_deref(), only_icws))
                .await
                .map_err(|e| AppError::Join(e.to_string()))?;
        tracing::info!(
            interactions = restored.interactions,
            replayed_records = restored.replayed,
            "source state from before the restart taken back"
        );
    }
    let carrier = Arc::new(Carrier {
        path: config.data_dir.join(carry::FILE),
        cic_server: config.cic_server.clone(),
        ingest: ingest.clone(),
        members: members.clone(),
    });
    let carrier_task = supervisor.spawn("source_state", carrier.clone().run(shutdown.clone()));
    let push = if config.sources.http.enabled {
        let token = config.push_token()?;
        Some(Arc::new(HttpSource {
            cfg: config.sources.http.clone(),
            token,
            ingest: ingest.clone(),
            metrics: metrics.source.clone(),
            enabled: config.enabled,
            shutdown: shutdown.clone(),
            body_timeout: std::time::Duration::from_millis(config.server.body_timeout_ms),
        }))
    } else {
        None
    };
    let icws_status = icws_on.then(|| Arc::new(IcwsStatus::default()));
    let icws = if let Some(status) = &icws_status {
        let cfg = config.sources.icws.clone();
        let password = cfg
            .password
            .as_ref()
            .ok_or_else(|| ConfigError::invalid("sources.icws.password", "required"))?
            .resolve("sources.icws.password")?;
        let http = icws_client(cfg.ca_file.as_deref())?;
        let source = IcwsSource {
            cfg,
            password,
            http,
            ingest: ingest.clone(),
            metrics: metrics.icws.clone(),
            source_metrics: metrics.source.clone(),
            shutdown: shutdown.clone(),
            status: status.clone(),
            ha: config.ha.clone(),
            members: members.clone().unwrap_or_default(),
        };
        Some(supervisor.spawn("icws", source.run()))
    } else {
        None
    };
    let status = Arc::new(Status {
        enabled: config.enabled,
        cic_server: config.cic_server.clone(),
        started: Instant::now(),
        persist: config.buffer.persist,
        buffer: buffer.clone(),
        metrics: metrics.clone(),
        destinations,
        icws: icws_status,
        supervisor: supervisor.clone(),
    });
    let fd_limit = server::fdlimit::raise();
    let limits = server::Limits {
        max_connections: server::fdlimit::connection_cap(config.server.max_connections, fd_limit),
        idle_timeout: std::time::Duration::from_millis(config.server.idle_timeout_ms),
        header_timeout: std::time::Duration::from_millis(config.server.header_timeout_ms),
    };
    if limits.max_connections < config.server.max_connections {
        tracing::warn!(
            configured = config.server.max_connections,
            max_connections = limits.max_connections,
            open_file_limit = fd_limit,
            "server.max_connections lowered to fit the open-file limit; raise LimitNOFILE (ulimit -n)"
        );
    }
    let addr = config.listen_addr()?;
    let (listener, bound) = server::bind(addr)
        .await
        .map_err(|source| AppError::Bind { addr, source })?;
    tracing::info!(
        addr = %bound,
        enabled = config.enabled,
        max_connections = limits.max_connections,
        cic_server = %config.cic_server,
        persist = ?config.buffer.persist,
        "listening"
    );
    if !config.enabled {
        tracing::warn!("ingest is disabled (enabled = false): serving health and metrics only");
    }
    let router = server::router(status, push);
    let sd = shutdown.clone();
    let buf = buffer.clone();
    let server_metrics = metrics.server.clone();
    let fatal = {
        let (buf, sd) = (buffer.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                why = buf.fatal() => {
                    tracing::error!(reason = %why, "the buffer failed for good; stopping so that the service manager restarts the conduit");
                    sd.trigger();
                    Some(why)
                }
                _ = sd.wait() => None,
            }
        })
    };
    let task = tokio::spawn(async move {
        let served = server::serve(listener, router, sd, limits, server_metrics).await;
        if let Some(i) = icws {
            let _ = i.await;
        }
        // The sources have stopped: save their state once more, for a restart to carry on from.
        let _ = carrier_task.await;
        carrier.save().await;
        if let Some(d) = dispatcher {
            d.wait().await;
        }
        let closed = buf.close().await;
        tracing::info!(backlog = buf.stats().backlog_records, "stopped");
        served.map_err(AppError::Serve)?;
        if let Ok(Some(why)) = fatal.await {
            return Err(AppError::Failed(why));
        }
        if let Some(why) = supervisor.failure() {
            return Err(AppError::Failed(why));
        }
        closed?;
        Ok(())
    });
    Ok(Running {
        addr: bound,
        metrics,
        buffer,
        shutdown,
        task,
    })
}

/// Runs until SIGTERM/SIGINT, then stops cleanly.
pub async fn run(config: Config) -> Result<(), AppError> {
    let mut signals = OsSignals::install().map_err(AppError::Signals)?;
    let running = start(config).await?;
    let sd = running.shutdown().clone();
    tokio::spawn(async move {
        signals.recv().await;
        sd.trigger();
    });
    running.wait().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::cloud::{CloudSim, SimConfig};

    /// A delivery lane that panics does not leave the conduit up and silent: `/health` turns
    /// `failing` naming the task, the failure is counted, and the process stops with an error
    /// (its service manager restarts it).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lane_that_panics_stops_the_conduit_and_says_why() {
        let stop = Shutdown::new();
        let cloud = CloudSim::new(SimConfig::default());
        let cloud_addr = cloud.spawn("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let base = format!(
            "cic_server = \"cic\"\ndata_dir = \"{}\"\n[server]\nlisten = \"127.0.0.1:0\"\n[organization]\nshort_name = \"acme\"\nregion = \"us-east-1\"\napi_base_url = \"http://{cloud_addr}\"\nlogin_base_url = \"http://{cloud_addr}\"\nclient_id = \"sim-client\"\nclient_secret = \"sim-secret\"\n[sources.http]\ntoken = \"0123456789abcdef0123\"\n",
            dir.path().display().to_string().replace('\\', "\\\\")
        );
        let pre = crate::config::load_str(&base, Vec::new()).unwrap();
        let configuration = setup(&pre, crate::sink::setup::DEFAULT_CONFIGURATION_NAME, "PureConnect")
            .await
            .unwrap()
            .configuration_id;
        let text = format!(
            "{base}[sinks.journey]\nconfiguration_id = \"{configuration}\"\nexternal_source_id = \"cic\"\nmax_age_ms = 20\n"
        );
        let running = start(crate::config::load_str(&text, Vec::new()).unwrap())
            .await
            .unwrap();
        let (addr, metrics) = (running.addr, running.metrics.clone());
        let item = serde_json::json!([{
            "interactionId": crate::dispatch::lane::TEST_PANIC_MARK,
            "attributes": {"Eic_State": "C", "Eic_RemoteAddress": "+13175551234"}
        }]);
        let c = reqwest::Client::new();
        let pushed = c
            .post(format!("http://{addr}/v1/interactions"))
            .bearer_auth("0123456789abcdef0123")
            .json(&item)
            .send()
            .await
            .unwrap();
        assert_eq!(pushed.status().as_u16(), 202);
        let stopped = tokio::time::timeout(std::time::Duration::from_secs(30), running.wait()).await;
        match stopped.expect("the conduit must stop by itself") {
            Err(AppError::Failed(why)) => assert!(why.contains("dispatch_lane: it panicked"), "{why}"),
            other => panic!("the conduit must stop with the failure: {other:?}"),
        }
        assert_eq!(metrics.task_failures.with_label_values(&["dispatch_lane"]).get(), 1);
        stop.trigger();
    }
}
