//! Wiring: start every part from a validated [`Config`], and stop them in order.
//!
//! Stop order on the shutdown signal: the listener stops accepting; requests in flight finish
//! (their appends are stored and answered); the buffer is closed — queued appends written,
//! synced, the cursor persisted; then [`Running::wait`] returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::buffer::{Buffer, BufferError, DiskBuffer};
use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use crate::normalize::Normalizer;
use crate::server::{self, Status};
use crate::shutdown::{OsSignals, Shutdown};
use crate::source::Ingest;
use crate::source::http::HttpSource;

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
    let buffer: Arc<dyn Buffer> = {
        let cfg = config.buffer.clone();
        let m = metrics.buffer.clone();
        Arc::new(
            tokio::task::spawn_blocking(move || DiskBuffer::open(&cfg, m))
                .await
                .map_err(|e| AppError::Join(e.to_string()))??,
        )
    };
    let push = if config.sources.http.enabled {
        let token = config
            .sources
            .http
            .token
            .as_ref()
            .ok_or_else(|| ConfigError::invalid("sources.http.token", "required"))?
            .resolve("sources.http.token")?;
        let normalizer = Normalizer::new(&config.cic_server, &config.normalize, metrics.normalize.clone());
        Some(Arc::new(HttpSource {
            cfg: config.sources.http.clone(),
            token,
            ingest: Arc::new(Ingest::new(normalizer, buffer.clone())),
            metrics: metrics.source.clone(),
            enabled: config.enabled,
            shutdown: shutdown.clone(),
        }))
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
    });
    let addr = config.listen_addr()?;
    let (listener, bound) = server::bind(addr)
        .await
        .map_err(|source| AppError::Bind { addr, source })?;
    tracing::info!(
        addr = %bound,
        enabled = config.enabled,
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
    let task = tokio::spawn(async move {
        let served = server::serve(listener, router, sd).await;
        let closed = buf.close().await;
        tracing::info!(backlog = buf.stats().backlog_records, "stopped");
        served.map_err(AppError::Serve)?;
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
