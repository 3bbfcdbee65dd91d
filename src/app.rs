//! The composition root: builds [`Settings`] from the [`Config`] once, starts what the role runs
//! (the sources — `sources` — into the buffer, the dispatcher from it to the sinks) with
//! constructors, every long-running task under one [`Supervisor`], and stops them in order.
//!
//! Stop order on the shutdown signal: the listener stops accepting; push requests in flight
//! finish (their appends are stored and answered); the ICWS source stops and the sources' state
//! is saved; the dispatcher's reader stops and its lanes deliver what they hold, up to
//! `drain_timeout_ms` (what they had not confirmed then stays in the buffer); the buffer is
//! closed — queued appends written, synced, every acknowledgement in the persisted cursor; then
//! [`Running::wait`] returns (an error when a task or the buffer failed: the exit is non-zero).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(all(feature = "kafka", not(windows)))]
use crate::buffer::kafka::KafkaBuffer;
use crate::buffer::{Buffer, BufferError, DiskBuffer};
use crate::config::{Config, ConfigError, JourneySinkConfig};
use crate::deadletter::StatusChanges;
use crate::deadletter::{DeadLetterError, DeadLetters, Interactions};
use crate::dispatch::gate::Gate;
use crate::dispatch::{Delivery, Dispatcher, Route};
use crate::metrics::Metrics;
use crate::server::{self, Status};
use crate::settings::{ClientSettings, Settings};
use crate::shutdown::{OsSignals, Shutdown};
use crate::sink::journey::{JourneySink, Mapper};
use crate::sink::oauth::TokenSource;
use crate::sink::presence::PresenceSink;
use crate::source::carry;
use crate::source::icws::people::People;
use crate::supervisor::Supervisor;
use crate::users::feed::DirectoryFeed;
use crate::users::scim::Scim;
use crate::users::status::Statuses;
use crate::users::sync::UserSync;
use sources::{Sources, start_sources};

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

/// The HTTP client every sink shares: rustls with the platform's roots (and
/// `organization.ca_file`'s), certificates verified, no redirects followed, through
/// `organization.proxy` (or the environment's proxy).
pub fn http_client(
    org: &crate::config::OrganizationConfig,
    request_timeout: std::time::Duration,
) -> Result<reqwest::Client, AppError> {
    let b = reqwest::Client::builder()
        .timeout(request_timeout)
        .connect_timeout(std::time::Duration::from_secs(10))
        .redirect(crate::outbound::no_redirects())
        .user_agent(concat!("cic-conduit/", env!("CARGO_PKG_VERSION")));
    let b = crate::outbound::with_roots(b, org.ca_file.as_deref(), "organization.ca_file")?;
    let b = crate::outbound::with_proxy(b, org.proxy.as_ref(), "organization.proxy")?;
    b.build().map_err(|e| AppError::Http(e.to_string()))
}

/// The token source of the organization's OAuth client, shared by every sink that uses it.
pub fn token_source(client: &ClientSettings, http: reqwest::Client, metrics: &Metrics) -> Arc<TokenSource> {
    Arc::new(TokenSource::new(
        http,
        client.login_base.as_str(),
        client.credentials.clone(),
        metrics.oauth_refreshes.clone(),
    ))
}

/// What every request to the organization shares: the HTTP client, the OAuth client's token
/// source and its gate (Genesys Cloud limits requests per OAuth client, so one pacer serves every
/// sink and user sync).
#[derive(Clone)]
pub struct Cloud {
    /// The HTTP client.
    pub http: reqwest::Client,
    /// The API base.
    pub api_base: String,
    /// The token source.
    pub tokens: Arc<TokenSource>,
    /// The gate.
    pub gate: Arc<Gate>,
}

impl Cloud {
    /// The organization's shared parts, for `client`.
    fn new(config: &Config, client: &ClientSettings, metrics: &Metrics) -> Result<Self, AppError> {
        let journey = config.sinks.journey.as_ref();
        let timeout = journey.map_or(30_000, |j| j.request_timeout_ms);
        let share = journey.map_or(1.0, |j| j.rate_limit_share);
        let http = http_client(&config.organization, Duration::from_millis(timeout))?;
        Ok(Cloud {
            tokens: token_source(client, http.clone(), metrics),
            http,
            api_base: client.api_base.as_str().trim_end_matches('/').to_string(),
            gate: Arc::new(Gate::new(share)),
        })
    }

    /// The SCIM users endpoint, through this client's gate.
    fn scim(&self, metrics: &Metrics, shutdown: &Shutdown) -> Scim {
        Scim::new(
            self.http.clone(),
            &self.api_base,
            self.tokens.clone(),
            self.gate.clone(),
            shutdown.clone(),
            metrics.users.clone(),
        )
    }
}

/// With a Kafka buffer, creates its topic unless it exists (`setup`'s first step).
#[cfg(all(feature = "kafka", not(windows)))]
pub async fn setup_topic(cfg: &Config) -> Result<Option<(String, crate::buffer::kafka::setup::TopicSetup)>, AppError> {
    let Some(k) = crate::settings::kafka(cfg)? else {
        return Ok(None);
    };
    let done = crate::buffer::kafka::setup::create_topic(&k)
        .await
        .map_err(|e| AppError::Buffer(BufferError::Unavailable(e)))?;
    Ok(Some((k.config.topic.clone(), done)))
}

/// Runs `setup` (see [`crate::sink::setup`]) against the configured organization.
pub async fn setup(cfg: &Config, name: &str, source: &str) -> Result<crate::sink::setup::SetupResult, AppError> {
    use crate::sink::setup::Setup;
    let http = http_client(&cfg.organization, std::time::Duration::from_secs(30))?;
    let tokens = token_source(&crate::settings::client(cfg)?, http.clone(), &Metrics::new());
    let setup = Setup::for_config(cfg, http, tokens);
    let presence = cfg.users.enabled && cfg.users.statuses;
    Ok(setup.run(&Setup::mapper_for(cfg), name, source, presence).await?)
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

/// How status changes are delivered: small batches soon (a status is news for seconds), lanes
/// by user, and retries governed by the sink's own wait for a user not yet synced.
fn presence_delivery() -> Delivery {
    Delivery {
        concurrency: 8,
        max_events: 50,
        max_bytes: 256 * 1024,
        max_age: Duration::from_millis(200),
        retry_initial: Duration::from_millis(1000),
        retry_max: Duration::from_secs(30),
        max_entity_attempts: u32::MAX,
    }
}

/// Starts delivering to the enabled sinks, if this process dispatches and any is enabled.
fn start_dispatch(
    settings: &Settings,
    buffer: &Arc<dyn Buffer>,
    metrics: &Metrics,
    shutdown: &Shutdown,
    supervisor: &Supervisor,
    cloud: Option<&Cloud>,
    statuses: Option<&Arc<Statuses>>,
) -> Result<Option<Dispatcher>, AppError> {
    let config = &settings.config;
    if !settings.role().dispatches() {
        tracing::info!("role = \"ingest\": another process delivers what this one buffers");
        return Ok(None);
    }
    let Some(cloud) = cloud else {
        tracing::warn!("no destination is enabled: events stay in the buffer");
        return Ok(None);
    };
    // Interaction events are also where what no sink takes is kept.
    let interactions: Arc<DeadLetters<Interactions>> = Arc::new(DeadLetters::open(&config.data_dir)?);
    let mut routes = Vec::new();
    if let Some(j) = config.sinks.journey.as_ref().filter(|j| j.enabled) {
        let journey = JourneySink::new(
            cloud.http.clone(),
            &cloud.api_base,
            &j.configuration_id,
            cloud.tokens.clone(),
            Mapper::new(&config.normalize.custom_attributes, &j.external_source_id),
        );
        routes.push(Route {
            sink: Arc::new(journey),
            delivery: journey_delivery(j),
            gate: cloud.gate.clone(),
            dead: interactions.clone(),
        });
        tracing::info!(
            sink = crate::sink::journey::NAME,
            configuration_id = %j.configuration_id,
            concurrency = j.concurrency,
            max_events = j.max_events,
            "delivering interaction events to Genesys Cloud"
        );
    }
    let u = &config.users;
    if let (true, true, Some(source)) = (u.enabled, u.statuses, u.presence_source_id.as_deref()) {
        let presence = PresenceSink::new(
            cloud.http.clone(),
            &cloud.api_base,
            cloud.tokens.clone(),
            source,
            u.status_map.clone(),
            Duration::from_millis(u.status_wait_ms),
            statuses.cloned(),
            cloud.scim(metrics, shutdown),
        );
        let dead: Arc<DeadLetters<StatusChanges>> = Arc::new(DeadLetters::open(&config.data_dir)?);
        routes.push(Route {
            sink: Arc::new(presence),
            delivery: presence_delivery(),
            gate: cloud.gate.clone(),
            dead,
        });
        tracing::info!(sink = crate::sink::presence::NAME, source_id = %source, "delivering CIC statuses as presence");
    }
    if routes.is_empty() {
        tracing::warn!("no destination is enabled: events stay in the buffer");
        return Ok(None);
    }
    let reader = buffer.reader(DISPATCH_READER)?;
    Ok(Some(Dispatcher::spawn(
        reader,
        routes,
        interactions,
        metrics.sink.clone(),
        shutdown,
        supervisor,
    )))
}

/// User sync, running.
struct UsersRunning {
    statuses: Arc<Statuses>,
    feed: Arc<DirectoryFeed>,
    task: tokio::task::JoinHandle<()>,
}

/// The buffer the config names: the disk log (keeping the records from `keep_from` on), or a
/// Kafka topic.
async fn open_buffer(
    settings: &Settings,
    metrics: &Arc<Metrics>,
    keep_from: Option<crate::buffer::Position>,
) -> Result<Arc<dyn Buffer>, AppError> {
    #[cfg(all(feature = "kafka", not(windows)))]
    if let Some(k) = &settings.kafka {
        // No buffer directory makes the data directory here: the sources' state and the dead
        // letters still go there.
        crate::private_fs::create_dir(&settings.config.data_dir).map_err(|e| AppError::Buffer(BufferError::Io(e)))?;
        tracing::info!(brokers = %k.config.brokers, topic = %k.config.topic, "the buffer is a Kafka topic");
        return Ok(Arc::new(KafkaBuffer::open(
            k.clone(),
            &metrics.registrar,
            metrics.buffer.clone(),
        )?));
    }
    let cfg = settings.config.buffer.clone();
    let m = metrics.buffer.clone();
    Ok(Arc::new(
        tokio::task::spawn_blocking(move || DiskBuffer::open_retaining(&cfg, m, keep_from))
            .await
            .map_err(|e| AppError::Join(e.to_string()))??,
    ))
}

/// Starts user sync, if it is on and this process reads CIC.
fn start_users(
    settings: &Settings,
    cloud: Option<&Cloud>,
    metrics: &Metrics,
    shutdown: &Shutdown,
    supervisor: &Supervisor,
) -> Option<UsersRunning> {
    let config = &settings.config;
    let cloud = cloud.filter(|_| config.users.enabled && settings.icws_password.is_some())?;
    let statuses = Arc::new(Statuses::open(&config.data_dir, metrics.users.clone()));
    let feed = Arc::new(DirectoryFeed::default());
    let sync = UserSync::new(
        cloud.scim(metrics, shutdown),
        statuses.clone(),
        config.users.clone(),
        config.normalize.default_country_code.clone(),
        metrics.users.clone(),
        shutdown.clone(),
    );
    let task = supervisor.spawn("user_sync", sync.run(feed.clone()));
    tracing::info!(
        removed = ?config.users.removed,
        statuses = config.users.statuses,
        "syncing CIC users with the organization"
    );
    Some(UsersRunning { statuses, feed, task })
}

/// A started conduit.
pub struct Running {
    /// The address the HTTP listener is bound to.
    pub addr: SocketAddr,
    /// The shared metrics.
    pub metrics: Arc<Metrics>,
    /// The buffer.
    pub buffer: Arc<dyn Buffer>,
    /// What a reload changes.
    pub reloader: Arc<reload::Reloader>,
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
    let settings = Settings::from_config(config)?;
    let config = &settings.config;
    // The ICWS source's metrics only where it runs.
    let icws = settings.role().ingests() && settings.icws_password.is_some();
    let metrics = Arc::new(Metrics::with_icws(icws));
    metrics.enabled.set(i64::from(config.enabled));
    let enabled = crate::switch::Switch::new(config.enabled);
    let shutdown = Shutdown::new();
    let supervisor = Supervisor::new(shutdown.clone(), metrics.task_failures.clone());
    // The sources' carried state first: the buffer keeps the records written after it.
    let carried = if settings.role().ingests() {
        let (dir, server) = (config.data_dir.clone(), config.cic_server.clone());
        tokio::task::spawn_blocking(move || carry::load(&dir, &server))
            .await
            .map_err(|e| AppError::Join(e.to_string()))?
    } else {
        None
    };
    let buffer = open_buffer(&settings, &metrics, carried.as_ref().and_then(|c| c.position())).await?;
    let cloud = settings
        .client
        .as_ref()
        .map(|c| Cloud::new(config, c, &metrics))
        .transpose()?;
    let users = start_users(&settings, cloud.as_ref(), &metrics, &shutdown, &supervisor);
    let statuses = users.as_ref().map(|u| u.statuses.clone());
    let dispatcher = start_dispatch(
        &settings,
        &buffer,
        &metrics,
        &shutdown,
        &supervisor,
        cloud.as_ref(),
        statuses.as_ref(),
    )?;
    let destinations = dispatcher.as_ref().map(|d| d.destinations.clone()).unwrap_or_default();
    let sources = if settings.role().ingests() {
        let people = users
            .as_ref()
            .map(|u| People::new(u.feed.clone(), config.users.directory_page, config.users.statuses));
        let around = sources::Around {
            metrics: &metrics,
            enabled: &enabled,
            shutdown: &shutdown,
            supervisor: &supervisor,
        };
        start_sources(&settings, &buffer, carried, people, around).await?
    } else {
        tracing::info!("role = \"dispatch\": no source runs; delivering what the buffer holds");
        Sources::default()
    };
    // The page's charts; sampling never stops the process, whatever becomes of it.
    let history = crate::history::History::new(metrics.clone());
    tokio::spawn(history.clone().run(shutdown.clone()));
    let reloader = Arc::new(reload::Reloader::new(
        config,
        enabled.clone(),
        cloud.as_ref().map(|c| c.gate.clone()),
        metrics.clone(),
        sources.icws.is_some(),
    ));
    let status = Arc::new(Status {
        enabled: enabled.clone(),
        role: settings.role(),
        cic_server: config.cic_server.clone(),
        started: Instant::now(),
        persist: config.buffer.persist,
        buffer: buffer.clone(),
        metrics: metrics.clone(),
        destinations,
        icws: sources.icws_status.clone(),
        supervisor: supervisor.clone(),
        users: statuses.clone(),
        history: history.clone(),
        data_dir: config.data_dir.display().to_string(),
    });
    let fd_limit = server::fdlimit::raise();
    let limits = server::Limits {
        max_connections: server::fdlimit::connection_cap(config.server.max_connections, fd_limit),
        idle_timeout: Duration::from_millis(config.server.idle_timeout_ms),
        header_timeout: Duration::from_millis(config.server.header_timeout_ms),
    };
    if limits.max_connections < config.server.max_connections {
        tracing::warn!(
            configured = config.server.max_connections,
            max_connections = limits.max_connections,
            open_file_limit = fd_limit,
            "server.max_connections lowered to fit the open-file limit; raise LimitNOFILE (ulimit -n)"
        );
    }
    let addr = settings.listen;
    let (listener, bound) = server::bind(addr)
        .await
        .map_err(|source| AppError::Bind { addr, source })?;
    tracing::info!(
        addr = %bound,
        enabled = config.enabled,
        role = settings.role().label(),
        max_connections = limits.max_connections,
        cic_server = %config.cic_server,
        persist = ?config.buffer.persist,
        "listening"
    );
    if !config.enabled {
        tracing::warn!("ingest is disabled (enabled = false): serving health and metrics only");
    }
    let router = server::router(status, sources.push.clone());
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
    let drain = settings.drain();
    let task = tokio::spawn(async move {
        let served = server::serve(listener, router, sd, limits, server_metrics).await;
        if let Some(i) = sources.icws {
            let _ = i.await;
        }
        // User sync saves its statuses as it stops.
        if let Some(u) = users {
            let _ = u.task.await;
        }
        // The sources have stopped: save their state once more, for a restart to carry on from.
        if let Some((carrier, task)) = sources.carrier {
            let _ = task.await;
            carrier.save().await;
        }
        if let Some(d) = dispatcher {
            d.drain(drain).await;
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
        reloader,
        shutdown,
        task,
    })
}

/// What stops or reloads a running conduit from outside: the process's signals, or the Windows
/// Service Control Manager's controls.
#[derive(Debug, Clone, Default)]
pub struct Controls {
    /// Notified to stop cleanly.
    pub stop: Arc<tokio::sync::Notify>,
    /// Notified to reload what can be reloaded from the config file (see [`reload`]).
    pub reload: Arc<tokio::sync::Notify>,
}

/// Runs until SIGTERM/SIGINT (Ctrl-C, Ctrl-Break on Windows), then stops cleanly. On Unix,
/// SIGHUP reloads what can be reloaded from `path` (see [`reload`]).
pub async fn run(config: Config, path: &std::path::Path) -> Result<(), AppError> {
    let controls = Controls::default();
    let mut signals = OsSignals::install().map_err(AppError::Signals)?;
    let stop = controls.stop.clone();
    tokio::spawn(async move {
        signals.recv().await;
        stop.notify_one();
    });
    #[cfg(unix)]
    {
        let mut hangups =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).map_err(AppError::Signals)?;
        let reload = controls.reload.clone();
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                tracing::info!("SIGHUP received");
                reload.notify_one();
            }
        });
    }
    serve(config, path, controls, |_| {}).await
}

/// Starts the conduit, calls `started` once it runs, and runs until `controls.stop` is
/// notified, reloading from `path` at each `controls.reload`; then stops cleanly.
pub async fn serve(
    config: Config,
    path: &std::path::Path,
    controls: Controls,
    started: impl FnOnce(&Running),
) -> Result<(), AppError> {
    let running = start(config).await?;
    started(&running);
    let sd = running.shutdown().clone();
    tokio::spawn(async move {
        controls.stop.notified().await;
        sd.trigger();
    });
    let (reloader, path) = (running.reloader.clone(), path.to_path_buf());
    tokio::spawn(async move {
        loop {
            controls.reload.notified().await;
            reload_from(&reloader, &path).await;
        }
    });
    running.wait().await
}

/// Reloads from the file at `path`: what can change does, the rest waits for a restart; a file
/// that does not load changes nothing.
async fn reload_from(reloader: &reload::Reloader, path: &std::path::Path) {
    let p = path.to_path_buf();
    match tokio::task::spawn_blocking(move || crate::config::load_file(&p)).await {
        Ok(Ok(config)) => {
            let changed = reloader.apply(&config);
            if changed.is_empty() {
                tracing::info!(config = %path.display(), "reloaded; nothing that a reload changes is different (log.level, enabled, sinks.journey.rate_limit_share; other keys need a restart)");
            } else {
                tracing::info!(config = %path.display(), changed = %changed.join(", "), "reloaded (other keys need a restart)");
            }
        }
        Ok(Err(e)) => {
            tracing::error!(config = %path.display(), error = %e, "reload: the config does not load; nothing changed")
        }
        Err(e) => tracing::error!(error = %e, "reload failed; nothing changed"),
    }
}

mod reload;
mod sources;
#[cfg(test)]
mod tests;
