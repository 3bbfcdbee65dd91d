//! Configuration: the TOML file, `CONDUIT_` environment overrides and secrets, validated at
//! start-up into the structs the rest of the code runs on.
//!
//! Promises: unknown keys and bad values fail before anything starts, with a message naming the
//! full key (`buffer.persist`) and what is allowed; secrets are only ever held as
//! [`secret::Secret`], whose `Debug` and `Display` print `<redacted>`. Every key is documented in
//! `deploy/cic-conduit.toml`, and these doc comments say the same.

mod load;
mod region;
pub mod secret;
mod validate;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use load::{load_file, load_str};
pub use region::{REGIONS, region_domain};
pub use secret::{Secret, SecretSource};

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
    /// The durable buffer.
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
    /// What loading set aside with a warning (environment variables that name no key): logged
    /// at start and printed by `check-config`.
    #[serde(skip)]
    pub warnings: Vec<String>,
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

fn default_true() -> bool {
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
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: default_log_format(),
            level: default_log_level(),
        }
    }
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

/// When an append finds the buffer at its size cap.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait for room (up to `block_timeout_ms`), then tell the source to retry later.
    Block,
    /// Drop the new records and count them in `conduit_buffer_dropped_total`.
    DropNewest,
}

/// How far an append goes before it counts as accepted.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PersistPolicy {
    /// On disk: `fdatasync` before the caller is answered (group commit). Survives power loss.
    Fsync,
    /// In the OS page cache: survives a crash of the process, not of the machine.
    Flush,
}

/// The durable buffer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// Directory for the buffer (`buffer/`) and later dead letters.
    pub data_dir: PathBuf,
    /// `fsync` (default) or `flush`.
    #[serde(default = "default_persist")]
    pub persist: PersistPolicy,
    /// Size at which a segment file is sealed and a new one started.
    #[serde(default = "default_segment_max_bytes")]
    pub segment_max_bytes: u64,
    /// Cap on the buffer's size on disk.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// `block` (default) or `drop_newest`.
    #[serde(default = "default_when_full")]
    pub when_full: WhenFull,
    /// With `block`: how long an append waits for room before the source is told to back off.
    #[serde(default = "default_block_timeout_ms")]
    pub block_timeout_ms: u64,
    /// Largest single record accepted.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: u32,
}

fn default_persist() -> PersistPolicy {
    PersistPolicy::Fsync
}
fn default_segment_max_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_max_bytes() -> u64 {
    10 * 1024 * 1024 * 1024
}
fn default_when_full() -> WhenFull {
    WhenFull::Block
}
fn default_block_timeout_ms() -> u64 {
    5_000
}
fn default_max_record_bytes() -> u32 {
    1024 * 1024
}

impl BufferConfig {
    /// Defaults for a data dir (used by the tools and tests).
    pub fn with_dir(data_dir: impl Into<PathBuf>) -> Self {
        BufferConfig {
            data_dir: data_dir.into(),
            persist: default_persist(),
            segment_max_bytes: default_segment_max_bytes(),
            max_bytes: default_max_bytes(),
            when_full: default_when_full(),
            block_timeout_ms: default_block_timeout_ms(),
            max_record_bytes: default_max_record_bytes(),
        }
    }

    /// `block_timeout_ms` as a duration.
    pub fn block_timeout(&self) -> Duration {
        Duration::from_millis(self.block_timeout_ms)
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

/// Inputs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcesConfig {
    /// The HTTP push endpoint.
    #[serde(default)]
    pub http: HttpSourceConfig,
    /// The CIC server's ICWS API.
    #[serde(default)]
    pub icws: IcwsSourceConfig,
}

/// The ICWS source: reads interactions from the CIC server itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcwsSourceConfig {
    /// Read from ICWS.
    #[serde(default)]
    pub enabled: bool,
    /// Base URLs of the CIC server (and its switchover partner), e.g. `https://cic01:8019`.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// The CIC user to log in as.
    #[serde(default = "default_icws_user")]
    pub user: String,
    /// Its password: a string, `{ env = "VAR" }` or `{ file = "PATH" }`.
    #[serde(default)]
    pub password: Option<SecretSource>,
    /// Workgroup queues to read.
    #[serde(default)]
    pub workgroups: Vec<String>,
    /// User queues to read (CIC user names).
    #[serde(default)]
    pub user_queues: Vec<String>,
    /// Read messages as server-sent events when the server offers them (messaging feature
    /// version 2 or more); false: always poll.
    #[serde(default = "default_true")]
    pub event_stream: bool,
    /// Pause between message polls (ms); the next poll goes only after the previous answer.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Longest wait between login attempts (ms).
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// The `applicationName` given at login (shown in CIC's session list).
    #[serde(default = "default_application_name")]
    pub application_name: String,
    /// A PEM file of CA certificates trusted besides the system's (for a CIC server whose
    /// certificate comes from an in-house CA). Certificates are always verified.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Allow `http://` hosts other than loopback: the password then crosses the network in
    /// clear. Off by default; HTTPS (port 8019) is what to use.
    #[serde(default)]
    pub allow_plain_http: bool,
}

impl Default for IcwsSourceConfig {
    fn default() -> Self {
        IcwsSourceConfig {
            enabled: false,
            hosts: Vec::new(),
            user: default_icws_user(),
            password: None,
            workgroups: Vec::new(),
            user_queues: Vec::new(),
            event_stream: true,
            poll_interval_ms: default_poll_interval_ms(),
            reconnect_max_ms: default_reconnect_max_ms(),
            application_name: default_application_name(),
            ca_file: None,
            allow_plain_http: false,
        }
    }
}

fn default_icws_user() -> String {
    "PureCloudAdmin".into()
}
fn default_poll_interval_ms() -> u64 {
    1000
}
fn default_reconnect_max_ms() -> u64 {
    30_000
}
fn default_application_name() -> String {
    "cic-conduit".into()
}

/// The HTTP push endpoint, `POST /v1/interactions`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSourceConfig {
    /// Serve the push endpoint.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Bearer token the sender must present: a string, `{ env = "VAR" }` or `{ file = "PATH" }`.
    #[serde(default)]
    pub token: Option<SecretSource>,
    /// Largest request body, compressed or not.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Most items in one request.
    #[serde(default = "default_max_items")]
    pub max_items: usize,
    /// `Retry-After` seconds sent with a 503 when the buffer is full.
    #[serde(default = "default_retry_after")]
    pub retry_after_secs: u32,
}

impl Default for HttpSourceConfig {
    fn default() -> Self {
        HttpSourceConfig {
            enabled: true,
            token: None,
            max_body_bytes: default_max_body_bytes(),
            max_items: default_max_items(),
            retry_after_secs: default_retry_after(),
        }
    }
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}
fn default_max_items() -> usize {
    10_000
}
fn default_retry_after() -> u32 {
    2
}

/// Destinations in Genesys Cloud.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinksConfig {
    /// Journey external events (Predictive Engagement). Absent: events stay in the buffer.
    #[serde(default)]
    pub journey: Option<JourneySinkConfig>,
}

/// The journey external-events sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JourneySinkConfig {
    /// Deliver (false: keep the section but send nothing; events stay in the buffer).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The external-events configuration id (`cic-conduit setup` prints it).
    pub configuration_id: String,
    /// The `externalSourceId` put on every customer identifier.
    pub external_source_id: String,
    /// Most events in one request.
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// Largest request body (bytes).
    #[serde(default = "default_sink_max_bytes")]
    pub max_bytes: usize,
    /// Longest an event waits for its batch to fill (ms).
    #[serde(default = "default_max_age_ms")]
    pub max_age_ms: u64,
    /// Requests in flight at once (each interaction's events always go through the same one).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Time allowed for one request (ms).
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// First retry delay (ms); doubles per attempt, with full jitter.
    #[serde(default = "default_retry_initial_ms")]
    pub retry_initial_ms: u64,
    /// Longest retry delay (ms).
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// Attempts for an entity the cloud keeps returning as retryable before it is dead-lettered.
    #[serde(default = "default_max_entity_attempts")]
    pub max_entity_attempts: u32,
    /// Share of the OAuth client's rate limit this conduit may use (0 < share <= 1).
    #[serde(default = "default_rate_limit_share")]
    pub rate_limit_share: f64,
}

impl JourneySinkConfig {
    /// `max_age_ms` as a duration.
    pub fn max_age(&self) -> Duration {
        Duration::from_millis(self.max_age_ms)
    }
}

fn default_max_events() -> usize {
    100
}
fn default_sink_max_bytes() -> usize {
    1024 * 1024
}
fn default_max_age_ms() -> u64 {
    1000
}
fn default_concurrency() -> usize {
    4
}
fn default_request_timeout_ms() -> u64 {
    30_000
}
fn default_retry_initial_ms() -> u64 {
    500
}
fn default_retry_max_ms() -> u64 {
    30_000
}
fn default_max_entity_attempts() -> u32 {
    10
}
fn default_rate_limit_share() -> f64 {
    0.98
}
