//! Logging set-up: human-readable lines or one JSON object per line, filtered by level, to
//! standard error or to a size-rolled file ([`rolling`]). Secrets never reach a log: they are
//! held as [`crate::config::Secret`], which prints `<redacted>`.

pub mod rolling;

use std::io::IsTerminal;
use std::path::Path;
use std::sync::OnceLock;

use tracing_subscriber::fmt::writer::BoxMakeWriter;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt, reload};

use crate::config::{LogConfig, LogFormat};

/// The installed subscriber's filter, to change it (a reload).
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the global subscriber (once; later calls are ignored). `RUST_LOG` overrides the
/// configured level. Lines go to `log.file` when it is set, else to standard error; human lines
/// are coloured only on a terminal (a journal or a file gets plain text).
pub fn init(cfg: &LogConfig) {
    init_with(cfg, None);
}

/// As [`init`], the log going to `default_file` when `log.file` is not set (a Windows service has
/// no standard error anyone reads).
pub fn init_with(cfg: &LogConfig, default_file: Option<&Path>) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let mut unopened = None;
    let (writer, terminal) = match cfg.file.as_deref().or(default_file) {
        Some(path) => match rolling::RollingFile::open(path, cfg.file_max_bytes, cfg.file_keep) {
            Ok(file) => (BoxMakeWriter::new(file), false),
            Err(e) => {
                unopened = Some(format!("{}: {e}", path.display()));
                (BoxMakeWriter::new(std::io::stderr), std::io::stderr().is_terminal())
            }
        },
        None => (BoxMakeWriter::new(std::io::stderr), std::io::stderr().is_terminal()),
    };
    let output = match cfg.format {
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(writer)
            .boxed(),
        LogFormat::Human => fmt::layer()
            .with_target(false)
            .with_ansi(terminal)
            .with_writer(writer)
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
    if let Some(why) = unopened {
        tracing::error!(file = %why, "the log file cannot be opened; logging to standard error");
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
