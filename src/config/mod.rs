//! Configuration: the TOML file, `CONDUIT_` environment overrides and secrets, validated at
//! start-up into the structs the rest of the code runs on.
//!
//! Promises: unknown keys and bad values fail before anything starts, with a message naming the
//! full key (`buffer.persist`) and what is allowed; secrets are only ever held as
//! [`secret::Secret`], whose `Debug` and `Display` print `<redacted>`. Every key is documented in
//! `deploy/cic-conduit.toml`, and these doc comments say the same.

mod buffer;
mod load;
mod region;
pub mod secret;
mod sinks;
mod sources;
mod users;
mod validate;

use std::path::PathBuf;

use serde::Deserialize;

pub use buffer::{BufferConfig, BufferType, KAFKA_OWNED_PROPERTIES, KafkaConfig, PersistPolicy, WhenFull};
pub use load::{load_file, load_str};
pub use region::{REGIONS, region_domain};
pub use secret::{Secret, SecretSource};
pub use sinks::{JourneySinkConfig, SinksConfig};
pub use sources::{HttpSourceConfig, IcwsSourceConfig, SourcesConfig};
pub use users::{RemovedUsers, UsersConfig};

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax error.
    #[error("config is not valid TOML: {0}")]
    Syntax(String),
    /// A key is unknown, missing, or has a value of the wrong type or out of range.
    #[error("config key `{key}`: {message}")]
    Invalid {
        /// The dotted key path, e.g. `buffer.persist`.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A secret could not be resolved from its env var or file.
    #[error("config key `{key}`: {message}")]
    Secret {
        /// The key holding the secret.
        key: String,
        /// What is wrong (never the secret itself).
        message: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Interaction Administrator switch: when false the process runs and answers `/health`
    /// and `/metrics`, but ingests nothing.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Name of the CIC server this sidecar runs beside; written into every event.
    pub cic_server: String,
    /// The HTTP listener (push source, health, metrics).
    #[serde(default)]
    pub server: ServerConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The paired Genesys Cloud organization.
    pub organization: OrganizationConfig,
    /// What this process does: `both` (default), `ingest` (sources into the buffer) or
    /// `dispatch` (the buffer to the sinks).
    #[serde(default)]
    pub role: Role,
    /// On shutdown, how long requests already on their way to Genesys Cloud may take to finish
    /// (and be acknowledged) before the process stops without them.
    #[serde(default = "default_drain_timeout_ms")]
    pub drain_timeout_ms: u64,
    /// Where the conduit keeps its data: the disk buffer (`buffer/`), dead letters
    /// (`dead-letter/`) and the sources' carried state (`source-state.json`).
    pub data_dir: PathBuf,
    /// The durable buffer (default: the disk log with its defaults).
    #[serde(default)]
    pub buffer: BufferConfig,
    /// Mapping from CIC attributes to events.
    #[serde(default)]
    pub normalize: NormalizeConfig,
    /// Inputs.
    #[serde(default)]
    pub sources: SourcesConfig,
    /// Destinations in Genesys Cloud.
    #[serde(default)]
    pub sinks: SinksConfig,
    /// Switchover pairs: which conduit of a pair reads CIC.
    #[serde(default)]
    pub ha: HaConfig,
    /// CIC users and statuses kept in sync with the organization.
    #[serde(default)]
    pub users: UsersConfig,
    /// What loading set aside with a warning (environment variables that name no key): logged
    /// at start and printed by `check-config`.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// What a process does.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The sources, into the buffer.
    Ingest,
    /// The buffer, to the sinks.
    Dispatch,
    /// Both (one process beside one CIC server).
    #[default]
    Both,
}

impl Role {
    /// Whether the sources run.
    pub fn ingests(self) -> bool {
        self != Role::Dispatch
    }

    /// Whether the dispatcher runs.
    pub fn dispatches(self) -> bool {
        self != Role::Ingest
    }

    /// Its name in config and `/health`.
    pub fn label(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Dispatch => "dispatch",
            Role::Both => "both",
        }
    }
}

fn default_drain_timeout_ms() -> u64 {
    10_000
}

/// How a conduit beside one server of a CIC switchover pair behaves.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HaMode {
    /// Read only while this conduit's own CIC server (the first of `sources.icws.hosts`) is the
    /// primary; otherwise stand by (still draining the buffer).
    LocalPrimary,
    /// Read from whichever server of the pair is primary, over the network.
    FollowPrimary,
}

/// Switchover pairs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaConfig {
    /// `local-primary` (default) or `follow-primary`.
    #[serde(default = "default_ha_mode")]
    pub mode: HaMode,
    /// While standing by, how often to look whether the own server became primary (ms).
    #[serde(default = "default_standby_check_ms")]
    pub standby_check_ms: u64,
}

impl Default for HaConfig {
    fn default() -> Self {
        HaConfig {
            mode: default_ha_mode(),
            standby_check_ms: default_standby_check_ms(),
        }
    }
}

fn default_ha_mode() -> HaMode {
    HaMode::LocalPrimary
}
fn default_standby_check_ms() -> u64 {
    5_000
}

pub(crate) fn default_true() -> bool {
    true
}

/// The HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on, e.g. `127.0.0.1:8087` (port 0 picks a free one).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Most connections open at once. At the cap, a new connection closes the oldest one that
    /// has no request in flight (an idle or slow client), or is refused if every one is busy.
    /// Lowered at start to what the process's file-descriptor limit leaves room for.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A connection with no request in flight for this long is closed (ms): idle keep-alive
    /// connections, and clients that connect and send nothing or send headers too slowly.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Time allowed for a request's headers to arrive once they start (ms).
    #[serde(default = "default_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// Time allowed for a request's whole body to arrive (ms): a push whose body (or the
    /// `Content-Length` it announced) does not come in time is answered 408.
    #[serde(default = "default_body_timeout_ms")]
    pub body_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            max_connections: default_max_connections(),
            idle_timeout_ms: default_idle_timeout_ms(),
            header_timeout_ms: default_header_timeout_ms(),
            body_timeout_ms: default_body_timeout_ms(),
        }
    }
}

fn default_max_connections() -> usize {
    256
}
fn default_idle_timeout_ms() -> u64 {
    10_000
}
fn default_header_timeout_ms() -> u64 {
    5_000
}
fn default_body_timeout_ms() -> u64 {
    30_000
}

fn default_listen() -> String {
    "127.0.0.1:8087".into()
}

/// Log output format.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line per event for a terminal or the Windows event log.
    Human,
    /// One JSON object per line for a log shipper.
    Json,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `human` or `json`.
    #[serde(default = "default_log_format")]
    pub format: LogFormat,
    /// A tracing filter such as `info` or `cic_conduit=debug,info`.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// A file to write the log to instead of standard error, rolled at `file_max_bytes` (the
    /// Windows service writes to `logs\cic-conduit.log` beside its config file unless this is
    /// set).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// The size at which the log file is rolled: it becomes `<file>.1` (the older ones move up).
    #[serde(default = "default_log_file_max_bytes")]
    pub file_max_bytes: u64,
    /// How many rolled files are kept besides the current one.
    #[serde(default = "default_log_file_keep")]
    pub file_keep: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: default_log_format(),
            level: default_log_level(),
            file: None,
            file_max_bytes: default_log_file_max_bytes(),
            file_keep: default_log_file_keep(),
        }
    }
}

fn default_log_file_max_bytes() -> u64 {
    16 << 20
}
fn default_log_file_keep() -> u32 {
    5
}

fn default_log_format() -> LogFormat {
    LogFormat::Human
}
fn default_log_level() -> String {
    "info".into()
}

/// The Genesys Cloud organization paired with this CIC server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationConfig {
    /// The organization's short name (letters and digits only).
    pub short_name: String,
    /// AWS region name of the organization, e.g. `us-east-1`.
    pub region: String,
    /// Overrides `https://api.<region domain>` (simulators and tests).
    #[serde(default)]
    pub api_base_url: Option<String>,
    /// Overrides `https://login.<region domain>` (simulators and tests).
    #[serde(default)]
    pub login_base_url: Option<String>,
    /// The OAuth client-credentials client id (needed by every sink).
    #[serde(default)]
    pub client_id: Option<String>,
    /// The OAuth client secret: a string, `{ env = "VAR" }` or `{ file = "PATH" }`.
    #[serde(default)]
    pub client_secret: Option<SecretSource>,
    /// The division `setup` files the external-events configuration under; unset: the
    /// organization's home division.
    #[serde(default)]
    pub division_id: Option<String>,
    /// Certificates (PEM) trusted for Genesys Cloud and its login host besides the platform's
    /// roots: the company's CA of a proxy that inspects TLS.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// The proxy to Genesys Cloud; absent: `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and
    /// `NO_PROXY` from the environment.
    #[serde(default)]
    pub proxy: Option<ProxyConfig>,
}

/// An outbound HTTP(S) proxy for one destination (`[organization.proxy]`,
/// `[sources.icws.proxy]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// `http://host:port` (or `https://`); `"none"`: straight to the destination, whatever the
    /// environment says.
    pub url: String,
    /// The proxy user, when the proxy asks for one (basic authentication).
    #[serde(default)]
    pub username: Option<String>,
    /// Its password: a string, `{ env = "VAR" }` or `{ file = "PATH" }`.
    #[serde(default)]
    pub password: Option<SecretSource>,
    /// Hosts reached directly (`NO_PROXY` syntax: names, `.domain` suffixes, IPs, CIDR ranges).
    #[serde(default)]
    pub no_proxy: Vec<String>,
}

impl OrganizationConfig {
    /// The API base URL: the override, or the region's.
    pub fn api_base(&self) -> String {
        self.api_base_url
            .clone()
            .unwrap_or_else(|| format!("https://api.{}", region_domain(&self.region).unwrap_or("invalid")))
    }

    /// The login base URL: the override, or the region's.
    pub fn login_base(&self) -> String {
        self.login_base_url
            .clone()
            .unwrap_or_else(|| format!("https://login.{}", region_domain(&self.region).unwrap_or("invalid")))
    }
}

/// Mapping from CIC attributes to events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeConfig {
    /// Extra interaction attributes copied into each event's `attributes` map.
    #[serde(default)]
    pub custom_attributes: Vec<String>,
    /// Country calling code for national numbers without one (e.g. `1`); none: such numbers get
    /// no E.164 phone identifier.
    #[serde(default)]
    pub default_country_code: Option<String>,
    /// How long an ended interaction is remembered (to absorb late or repeated messages).
    #[serde(default = "default_forget_ended")]
    pub forget_ended_after_secs: u64,
    /// How long an interaction with no message at all is remembered.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Most interactions tracked at once; beyond it the least recently seen are forgotten.
    #[serde(default = "default_max_tracked")]
    pub max_tracked_interactions: usize,
    /// Longest attribute value kept, in bytes; longer values are cut (and counted).
    #[serde(default = "default_max_value_bytes")]
    pub max_attribute_value_bytes: usize,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        NormalizeConfig {
            custom_attributes: Vec::new(),
            default_country_code: None,
            forget_ended_after_secs: default_forget_ended(),
            idle_timeout_secs: default_idle_timeout(),
            max_tracked_interactions: default_max_tracked(),
            max_attribute_value_bytes: default_max_value_bytes(),
        }
    }
}

fn default_forget_ended() -> u64 {
    300
}
fn default_idle_timeout() -> u64 {
    86_400
}
fn default_max_tracked() -> usize {
    200_000
}
fn default_max_value_bytes() -> usize {
    2048
}
