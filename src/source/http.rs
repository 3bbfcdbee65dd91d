//! The HTTP push source: `POST /v1/interactions`, for CIC handlers.
//!
//! Answers (every body is JSON):
//! - `202 {"accepted": n, "events": m}` — only after all of the request's events are in the
//!   buffer at the configured persist level (`"dropped": k` too if `when_full = drop_newest` hit);
//! - `400 {"error", "items": [{"index", "field", "reason"}]}` — nothing of the request is accepted;
//! - `401` without a valid bearer token (compared in constant time);
//! - `408` when the body (or the length it announced) does not arrive within the body timeout;
//! - `413` over `max_body_bytes` (compressed or decompressed), `415` for an unknown encoding;
//! - `503` with `Retry-After` when the buffer is full or the conduit is stopping or disabled.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::push::{self, BodyError};
use super::{Ingest, IngestError, Refusal};
use crate::buffer::BufferError;
use crate::config::{HttpSourceConfig, Secret};
use crate::metrics::SourceMetrics;
use crate::shutdown::Shutdown;

const SOURCE: &str = "http";

/// Why a push is refused (`conduit_source_events_rejected_total{reason}`).
const REFUSALS: [&str; 10] = [
    "invalid",
    "unauthorized",
    "too_large",
    "bad_encoding",
    "timeout",
    "buffer_full",
    "buffer_unavailable",
    "buffer_error",
    "stopping",
    "disabled",
];

/// Everything the push handler needs.
pub struct HttpSource {
    /// Limits and `Retry-After`.
    cfg: HttpSourceConfig,
    /// The bearer token senders must present.
    token: Secret,
    /// The ingest path.
    ingest: Arc<Ingest>,
    /// Metrics.
    metrics: SourceMetrics,
    /// Whether ingesting is switched on (a reload may flip it).
    enabled: crate::switch::Switch,
    /// Set while stopping: new requests are refused.
    shutdown: Shutdown,
    /// Time allowed for the whole body to arrive.
    body_timeout: std::time::Duration,
}

impl HttpSource {
    /// The push source: takes requests bearing `token` into `ingest`.
    pub fn new(
        cfg: HttpSourceConfig,
        token: Secret,
        ingest: Arc<Ingest>,
        metrics: SourceMetrics,
        enabled: crate::switch::Switch,
        shutdown: Shutdown,
        body_timeout: std::time::Duration,
    ) -> Self {
        // Alerts read these: they exist from start-up at zero.
        for reason in REFUSALS {
            metrics.rejected.with_label_values(&[SOURCE, reason]);
        }
        HttpSource {
            cfg,
            token,
            ingest,
            metrics,
            enabled,
            shutdown,
            body_timeout,
        }
    }

    fn reply(&self, status: StatusCode, body: serde_json::Value, retry_after: bool) -> Response {
        self.metrics
            .requests
            .with_label_values(&[SOURCE, status.as_str()])
            .inc();
        let mut resp = (status, axum::Json(body)).into_response();
        if retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(self.cfg.retry_after_secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }

    fn reject(&self, reason: &str, n: u64) {
        debug_assert!(REFUSALS.contains(&reason), "{reason} is not in REFUSALS");
        self.metrics
            .rejected
            .with_label_values(&[SOURCE, reason])
            .inc_by(n.max(1));
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some(presented) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) else {
            return false;
        };
        presented.trim().as_bytes().ct_eq(self.token.expose().as_bytes()).into()
    }
}

/// `POST /v1/interactions`.
pub async fn push_handler(State(src): State<Arc<HttpSource>>, headers: HeaderMap, body: Body) -> Response {
    if !src.authorized(&headers) {
        src.reject("unauthorized", 1);
        return src.reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "missing or invalid bearer token"}),
            false,
        );
    }
    if !src.enabled.is_on() {
        src.reject("disabled", 1);
        return src.reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "ingest is disabled (enabled = false in the conduit's config)"}),
            false,
        );
    }
    if src.shutdown.is_triggered() {
        src.reject("stopping", 1);
        return src.reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "the conduit is stopping"}),
            true,
        );
    }
    let limit = src.cfg.max_body_bytes;
    let raw: Bytes = match tokio::time::timeout(src.body_timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(b)) => b,
        Err(_) => {
            src.reject("timeout", 1);
            let secs = src.body_timeout.as_secs_f64();
            return src.reply(
                StatusCode::REQUEST_TIMEOUT,
                json!({"error": format!("the body did not arrive within {secs} s; nothing was accepted")}),
                false,
            );
        }
        Ok(Err(_)) => {
            src.reject("too_large", 1);
            return src.reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": format!("body exceeds {limit} bytes; send smaller batches")}),
                false,
            );
        }
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    let decoded = match encoding.trim().to_ascii_lowercase().as_str() {
        "identity" | "" => Ok(std::borrow::Cow::Borrowed(&raw[..])),
        "gzip" | "x-gzip" => push::gunzip(&raw, limit).map(std::borrow::Cow::Owned),
        other => {
            src.reject("bad_encoding", 1);
            return src.reply(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({"error": format!("content-encoding `{other}` is not supported; use gzip or none")}),
                false,
            );
        }
    };
    // The observations borrow their text from the body.
    let body = match decoded {
        Ok(body) => body,
        Err(e) => return body_error(&src, e),
    };
    let items = match push::parse(&body, src.cfg.max_items) {
        Ok(items) => items,
        Err(e) => return body_error(&src, e),
    };
    let n = items.len() as u64;
    match src.ingest.ingest(&items).await {
        Ok(done) => {
            src.metrics.received.with_label_values(&[SOURCE]).inc_by(n);
            let mut body = json!({"accepted": n, "events": done.events});
            if done.dropped > 0 {
                body["dropped"] = json!(done.dropped);
            }
            src.reply(StatusCode::ACCEPTED, body, false)
        }
        Err(e) => ingest_error(&src, e, n),
    }
}

fn body_error(src: &HttpSource, e: BodyError) -> Response {
    match e {
        BodyError::TooLarge { .. } => {
            src.reject("too_large", 1);
            src.reply(StatusCode::PAYLOAD_TOO_LARGE, json!({"error": e.to_string()}), false)
        }
        BodyError::Items(items) => {
            let bad: std::collections::HashSet<usize> = items.iter().map(|i| i.index).collect();
            src.reject("invalid", bad.len() as u64);
            src.reply(
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid items; nothing of this request was accepted", "accepted": 0, "items": items}),
                false,
            )
        }
        other => {
            src.reject("invalid", 1);
            src.reply(
                StatusCode::BAD_REQUEST,
                json!({"error": other.to_string(), "accepted": 0}),
                false,
            )
        }
    }
}

/// Items whose events could never be stored: a 400 naming them, as for invalid items.
fn refused_items(src: &HttpSource, refused: &[Refusal]) -> Response {
    src.reject("too_large", refused.len() as u64);
    let items: Vec<push::ItemError> = refused
        .iter()
        .map(|r| push::ItemError {
            index: r.index,
            field: String::new(),
            reason: r.reason.clone(),
        })
        .collect();
    src.reply(
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid items; nothing of this request was accepted", "accepted": 0, "items": items}),
        false,
    )
}

fn ingest_error(src: &HttpSource, e: IngestError, n: u64) -> Response {
    let (status, reason, retry) = match &e {
        IngestError::Refused(refused) => return refused_items(src, refused),
        IngestError::Buffer(BufferError::Full { .. }) => (StatusCode::SERVICE_UNAVAILABLE, "buffer_full", true),
        IngestError::Buffer(BufferError::TooLarge { .. }) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", false),
        IngestError::Buffer(BufferError::Closed) => (StatusCode::SERVICE_UNAVAILABLE, "stopping", true),
        IngestError::Buffer(BufferError::Unavailable(_)) => {
            (StatusCode::SERVICE_UNAVAILABLE, "buffer_unavailable", true)
        }
        IngestError::Buffer(_) => (StatusCode::SERVICE_UNAVAILABLE, "buffer_error", true),
    };
    tracing::warn!(error = %e, items = n, status = status.as_u16(), "push request not stored");
    src.reject(reason, n);
    src.reply(
        status,
        json!({"error": format!("not stored: {e}"), "accepted": 0}),
        retry,
    )
}
