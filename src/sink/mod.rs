//! Sinks: the destinations in Genesys Cloud. A [`Sink`] knows only its destination — which
//! records it takes, how a record becomes its part of a request and which lane it goes through,
//! how a batch becomes a request body, how to send it and read the answer. Batching, lanes,
//! retries, pacing, dead letters and acknowledgements are the dispatcher's
//! ([`crate::dispatch`]), the same for every sink.
//!
//! This module also holds what every sink shares — how an answer is classified ([`classify`]),
//! how requests are paced from the rate-limit headers ([`ratelimit`]), the OAuth token source
//! one client's sinks share ([`oauth`]) — and the destinations themselves: journey external
//! events ([`journey`]) and their one-time set-up ([`setup`]).

pub mod classify;
pub mod journey;
pub mod oauth;
pub mod ratelimit;
pub mod setup;

use std::time::Duration;

use bytes::Bytes;

use crate::buffer::{BoxFuture, Kind, Record};
use oauth::OAuthError;
use ratelimit::RateLimit;

/// A destination, as the dispatcher drives it.
pub trait Sink: Send + Sync + 'static {
    /// Its name in metrics, logs, dead letters and `/health`.
    fn name(&self) -> &'static str;

    /// Whether it takes records of `kind` (each kind goes to one sink).
    fn takes(&self, kind: Kind) -> bool;

    /// A record as its part of a request, and the key that picks its lane (records with one key
    /// are delivered in order); or why it can never be sent (it is dead-lettered).
    fn prepare(&self, record: &Record) -> Result<Prepared, Unsendable>;

    /// Bytes a request body adds around its parts; each part adds its length and one separator.
    fn envelope_bytes(&self) -> usize;

    /// The request body for `parts`, in order.
    fn body(&self, parts: &[&[u8]]) -> Bytes;

    /// Sends one body and reads the answer: status, `Retry-After`, correlation id, rate-limit
    /// headers, and which records were not processed (by index in the body).
    fn send(&self, body: Bytes) -> BoxFuture<'_, Result<Answer, SendError>>;
}

/// A record ready for a request.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Picks the lane: the same key, the same lane, in order.
    pub lane_key: Bytes,
    /// Its part of the request body.
    pub part: Bytes,
}

/// Why a record can never be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsendable {
    /// Bounded reason code (`conduit_sink_events_dead_lettered_total{reason}`).
    pub reason: &'static str,
    /// What is wrong, for the dead letter.
    pub message: String,
}

/// One record of a request the destination did not process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unprocessed {
    /// Its index in the request.
    pub index: usize,
    /// Whether sending it again may succeed.
    pub retryable: bool,
    /// The per-entity status, if given.
    pub status: Option<u16>,
    /// The cloud's message.
    pub message: String,
}

/// What came back for one request.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After`, as sent.
    pub retry_after: Option<String>,
    /// `ININ-Correlation-Id` (empty when absent).
    pub correlation_id: String,
    /// The rate-limit headers, when all three came.
    pub rate: Option<RateLimit>,
    /// A 2xx whose body is the API's own answer: only that confirms delivery.
    pub confirmed: bool,
    /// On success: the records not processed, by their index in the request.
    pub unprocessed: Vec<Unprocessed>,
    /// On failure: the error body's message (bounded).
    pub message: String,
    /// How long the request took.
    pub elapsed: Duration,
}

/// A request that got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection (refused, reset, TLS).
    #[error("cannot reach Genesys Cloud: {0}")]
    Connect(String),
    /// No answer in time.
    #[error("no answer within the request timeout")]
    Timeout,
    /// No token.
    #[error(transparent)]
    Auth(#[from] OAuthError),
}

/// The `ININ-Correlation-Id` of a Genesys Cloud answer (empty when absent): logged with every
/// failure, and what Genesys support asks for.
pub fn correlation_id(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get("inin-correlation-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}
