//! `[sinks.*]`: the Genesys Cloud destinations.

use std::time::Duration;

use serde::Deserialize;

use super::default_true;

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
    /// Share of the OAuth client's rate limit this conduit may use (0 < share <= 1). Other
    /// programs' requests on the same client are in the count the pacing reads, so the whole
    /// limit (1.0) leaves them what they use; a lower share keeps room for their bursts.
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
    1.0
}
