//! Sinks: the destinations in Genesys Cloud. This module holds what every sink shares — how a
//! response is classified ([`classify`]), how requests are paced from the rate-limit headers
//! ([`ratelimit`]), the shared OAuth token cache ([`oauth`]) — and the destinations themselves:
//! journey external events ([`journey`]) and their one-time set-up ([`setup`]).

pub mod classify;
pub mod journey;
pub mod oauth;
pub mod ratelimit;
pub mod setup;

/// The `ININ-Correlation-Id` of a Genesys Cloud answer (empty when absent): logged with every
/// failure, and what Genesys support asks for.
pub fn correlation_id(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get("inin-correlation-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}
