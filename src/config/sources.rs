//! `[sources.*]`: the ICWS source and the HTTP push endpoint.

use std::path::PathBuf;

use serde::Deserialize;

use super::{SecretSource, default_true};

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
    /// The proxy to the CIC servers; absent: the environment's (`HTTPS_PROXY`, `NO_PROXY`, ...).
    #[serde(default)]
    pub proxy: Option<super::ProxyConfig>,
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
            proxy: None,
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
