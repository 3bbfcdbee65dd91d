//! The journey external-events sink: `POST /api/v2/journey/externalevents/configurations/{id}/events`.
//!
//! It owns one request: the body for a batch of entities ([`mapping`]), the bearer token from
//! the shared [`TokenSource`] (a 401 fetches a new token and the request is sent once more), and
//! reading the answer — status, `Retry-After`, `ININ-Correlation-Id`, the `inin-ratelimit-*`
//! headers, and either the `unprocessedEntities` of a success or the message of an error. No
//! redirect is followed and a 2xx confirms only with the API's JSON answer as its body (see
//! [`crate::outbound`]); the body is read with a bound. What
//! to do with the answer (retry, pause, dead-letter) is the dispatcher's decision, through
//! [`crate::sink::classify`].

pub mod mapping;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde::Deserialize;

use super::oauth::TokenSource;
use super::ratelimit::RateLimit;
use super::{Answer, Prepared, SendError, Sink, Unprocessed, Unsendable};
use crate::buffer::{BoxFuture, Kind, Record};
use crate::event::EventCodec;

pub use mapping::{Entity, Mapper};

/// The sink's name in metrics and health.
pub const NAME: &str = "journey";

/// `ExternalEventsResponse`: an object whose `unprocessedEntities`, when present, is a list.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SuccessBody {
    #[serde(default)]
    unprocessed_entities: Vec<UnprocessedWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UnprocessedWire {
    original_request_index: Option<usize>,
    #[serde(default)]
    is_retryable: bool,
    error_message: Option<String>,
    status_code: Option<u16>,
}

/// Longest error message kept from a response body.
const MAX_MESSAGE: usize = 1024;

/// The request body's bytes around its entities: `{"entities":[` and `]}`.
const ENVELOPE: (&[u8], &[u8]) = (b"{\"entities\":[", b"]}");

/// Sends batches of interaction events, as entities, to one configuration.
pub struct JourneySink {
    http: reqwest::Client,
    url: String,
    tokens: Arc<TokenSource>,
    mapper: Mapper,
    codec: EventCodec,
}

impl JourneySink {
    /// A sink posting to `<api_base>/api/v2/journey/externalevents/configurations/<id>/events`
    /// with the token source of its OAuth client, mapping events with `mapper`.
    pub fn new(
        http: reqwest::Client,
        api_base: &str,
        configuration_id: &str,
        tokens: Arc<TokenSource>,
        mapper: Mapper,
    ) -> Self {
        JourneySink {
            http,
            url: format!(
                "{}/api/v2/journey/externalevents/configurations/{}/events",
                api_base.trim_end_matches('/'),
                configuration_id
            ),
            tokens,
            mapper,
            codec: EventCodec::new(),
        }
    }

    /// Posts `body`; on a 401, fetches a new token and posts once more.
    pub async fn post_events(&self, body: Bytes) -> Result<Answer, SendError> {
        let token = self.tokens.token().await?;
        let first = self.post(&token, body.clone()).await?;
        if first.status != 401 {
            return Ok(first);
        }
        tracing::info!(correlation_id = %first.correlation_id, "token refused (401): fetching a new one");
        let token = self.tokens.after_unauthorized(&token).await?;
        self.post(&token, body).await
    }

    async fn post(&self, token: &crate::config::Secret, body: Bytes) -> Result<Answer, SendError> {
        let started = Instant::now();
        let resp = self
            .http
            .post(&self.url)
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
        let h = resp.headers();
        let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let retry_after = header("retry-after");
        let correlation_id = super::correlation_id(h);
        let rate = RateLimit::from_headers(|n| h.get(n).and_then(|v| v.to_str().ok()));
        let redirect = (300..400)
            .contains(&status)
            .then(|| crate::outbound::redirect_note(status, h));
        let unexpected_headers = h.clone();
        let bytes = crate::outbound::read_body(resp, crate::outbound::MAX_API_BODY)
            .await
            .map_err(|e| match e {
                crate::outbound::ReadError::Transport { timeout: true, .. } => SendError::Timeout,
                other => SendError::Connect(other.to_string()),
            })?;
        let mut answer = Answer {
            status,
            retry_after,
            correlation_id,
            rate,
            confirmed: false,
            unprocessed: Vec::new(),
            message: String::new(),
            elapsed: started.elapsed(),
        };
        if let Some(note) = redirect {
            answer.message = note;
        } else if (200..300).contains(&status) {
            // Only the API's own answer confirms: an `ExternalEventsResponse` object.
            let parsed = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .filter(serde_json::Value::is_object)
                .and_then(|v| serde_json::from_value::<SuccessBody>(v).ok());
            match parsed {
                Some(b) => {
                    answer.confirmed = true;
                    answer.unprocessed = b
                        .unprocessed_entities
                        .into_iter()
                        .filter_map(|u| {
                            Some(Unprocessed {
                                index: u.original_request_index?,
                                retryable: u.is_retryable,
                                status: u.status_code,
                                message: bounded(u.error_message.unwrap_or_default()),
                            })
                        })
                        .collect();
                }
                None => {
                    answer.message = format!(
                        "HTTP {status} without the API's answer ({}); not a confirmation",
                        crate::outbound::describe_unexpected(&unexpected_headers, &bytes)
                    );
                }
            }
        } else {
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
            answer.message = bounded(msg);
        }
        Ok(answer)
    }
}

impl Sink for JourneySink {
    fn name(&self) -> &'static str {
        NAME
    }

    fn takes(&self, kind: Kind) -> bool {
        kind == Kind::Interaction
    }

    /// The event as its entity; its lane is its interaction's.
    fn prepare(&self, record: &Record) -> Result<Prepared, Unsendable> {
        let ev = self.codec.decode(&record.payload).map_err(|e| Unsendable {
            reason: "undecodable",
            message: e.to_string(),
        })?;
        let part = Bytes::from(serde_json::to_vec(&self.mapper.entity(&ev)).expect("entities serialize"));
        Ok(Prepared {
            lane_key: Bytes::from(ev.interaction.call_id_key),
            part,
        })
    }

    fn envelope_bytes(&self) -> usize {
        ENVELOPE.0.len() + ENVELOPE.1.len()
    }

    /// `{"entities":[` the entities, comma-separated `]}`.
    fn body(&self, parts: &[&[u8]]) -> Bytes {
        let len = self.envelope_bytes() + parts.iter().map(|p| p.len() + 1).sum::<usize>();
        let mut body = Vec::with_capacity(len);
        body.extend_from_slice(ENVELOPE.0);
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(p);
        }
        body.extend_from_slice(ENVELOPE.1);
        Bytes::from(body)
    }

    fn send(&self, body: Bytes) -> BoxFuture<'_, Result<Answer, SendError>> {
        Box::pin(self.post_events(body))
    }
}

fn bounded(mut s: String) -> String {
    if s.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}
