//! Sinks: the destinations in Genesys Cloud. A [`Sink`] knows only its destination — which
//! records it takes, how a record becomes its part of a request and which lane it goes through,
//! how a batch becomes a request body, how to send it and read the answer. Batching, lanes,
//! retries, pacing, dead letters and acknowledgements are the dispatcher's
//! ([`crate::dispatch`]), the same for every sink.
//!
//! This module also holds what every sink shares — how an answer is classified ([`classify`]),
//! how requests are paced from the rate-limit headers ([`ratelimit`]), the OAuth token source
//! one client's sinks share ([`oauth`]) — and the destinations themselves: journey external
//! events ([`journey`]) and their one-time set-up ([`setup`]), and user presence ([`presence`]).

pub mod classify;
pub mod journey;
pub mod oauth;
pub mod presence;
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

    /// The dead-letter reasons of its own ([`Unsendable::reason`], [`Unprocessed`] reasons),
    /// beside the dispatcher's: their counters exist from start-up at zero.
    fn refusal_reasons(&self) -> &'static [&'static str] {
        &[]
    }
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
    /// The dead-letter reason when the sink itself knows it (`user_not_synced`, ...); else
    /// `rejected` or `retries_exhausted`.
    pub reason: Option<&'static str>,
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
    /// Answered by the sink itself, without a request: nothing of the batch could be sent yet
    /// (its records are all in `unprocessed`). Not counted as a request.
    pub local: bool,
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

/// `open`, the parts separated by commas, `close`: a JSON body around its parts.
pub fn joined(open: &[u8], parts: &[&[u8]], close: &[u8]) -> Bytes {
    let mut body = Vec::with_capacity(open.len() + close.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>());
    body.extend_from_slice(open);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(p);
    }
    body.extend_from_slice(close);
    Bytes::from(body)
}

/// Longest error message kept from a response body.
pub const MAX_MESSAGE: usize = 1024;

/// `s` cut to [`MAX_MESSAGE`] bytes.
pub fn bounded_message(s: String) -> String {
    if s.len() <= MAX_MESSAGE {
        return s;
    }
    crate::outbound::bounded(&s, MAX_MESSAGE)
}

/// The message for a 2xx whose body is not the API's answer: not a confirmation.
pub fn not_an_answer(status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> String {
    format!(
        "HTTP {status} without the API's answer ({}); not a confirmation",
        crate::outbound::describe_unexpected(headers, body)
    )
}

/// POSTs a JSON `body` to `url` with `token` and reads the answer: status, `Retry-After`,
/// correlation id and rate-limit headers into an [`Answer`] (not confirmed: only the sink can
/// tell its API's answer), with the error's message for a refusal or a redirect (never
/// followed); and the body, read with a bound.
pub async fn exchange(
    http: &reqwest::Client,
    url: &str,
    token: &crate::config::Secret,
    body: Bytes,
) -> Result<(Answer, Bytes, reqwest::header::HeaderMap), SendError> {
    let started = std::time::Instant::now();
    let resp = http
        .post(url)
        .bearer_auth(token.expose())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                SendError::Timeout
            } else {
                SendError::Connect(crate::outbound::describe_error(e))
            }
        })?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut answer = Answer {
        status,
        retry_after: header("retry-after"),
        correlation_id: correlation_id(&headers),
        rate: RateLimit::from_headers(|n| headers.get(n).and_then(|v| v.to_str().ok())),
        confirmed: false,
        unprocessed: Vec::new(),
        message: String::new(),
        elapsed: std::time::Duration::ZERO,
        local: false,
    };
    let bytes = crate::outbound::read_body(resp, crate::outbound::MAX_API_BODY)
        .await
        .map_err(|e| match e {
            crate::outbound::ReadError::Transport { timeout: true, .. } => SendError::Timeout,
            other => SendError::Connect(other.to_string()),
        })?;
    answer.elapsed = started.elapsed();
    if (300..400).contains(&status) {
        answer.message = crate::outbound::redirect_note(status, &headers);
    } else if !(200..300).contains(&status) {
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let mut msg = v["message"].as_str().unwrap_or_default().to_string();
        // `ErrorBody.errors` holds one `ErrorBody` per fault, each with its message.
        if let Some(errors) = v["errors"].as_array() {
            for d in errors.iter().filter_map(|d| d["message"].as_str()).take(5) {
                msg.push_str("; ");
                msg.push_str(d);
            }
        }
        if msg.is_empty() {
            msg = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
        }
        answer.message = bounded_message(msg);
    }
    Ok((answer, bytes, headers))
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
