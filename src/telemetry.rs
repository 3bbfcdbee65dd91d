//! Logging set-up: human-readable lines or one JSON object per line, filtered by level.
//! Secrets never reach a log: they are held as [`crate::config::Secret`], which prints
//! `<redacted>`.

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt, reload};

use crate::config::{LogConfig, LogFormat};

/// The installed subscriber's filter, to change it (a reload).
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the global subscriber (once; later calls are ignored). `RUST_LOG` overrides the
/// configured level. Human lines are coloured only on a terminal (a journal or a file gets plain
/// text).
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let output = match cfg.format {
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Human => fmt::layer()
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
    };
    if tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .is_ok()
    {
        let _ = FILTER.set(handle);
    }
}

/// Filters the log by `level` from now on (a reload); refused while `RUST_LOG` is set (it
/// overrides the configured level), or when `level` is not a filter.
pub fn set_level(level: &str) -> Result<(), String> {
    if std::env::var_os(EnvFilter::DEFAULT_ENV).is_some() {
        return Err(format!("{} is set and overrides log.level", EnvFilter::DEFAULT_ENV));
    }
    let filter = EnvFilter::try_new(level).map_err(|e| format!("log.level {level:?}: {e}"))?;
    match FILTER.get() {
        Some(handle) => handle.reload(filter).map_err(|e| e.to_string()),
        None => Err("no log subscriber of this process to change".into()),
    }
}
