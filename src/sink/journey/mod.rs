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

use bytes::Bytes;
use serde::Deserialize;

use super::oauth::TokenSource;
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
        let (mut answer, bytes, headers) = super::exchange(&self.http, &self.url, token, body).await?;
        if (200..300).contains(&answer.status) && answer.message.is_empty() {
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
                                message: super::bounded_message(u.error_message.unwrap_or_default()),
                                reason: None,
                            })
                        })
                        .collect();
                }
                None => answer.message = super::not_an_answer(answer.status, &headers, &bytes),
            }
        }
        Ok(answer)
    }
}

impl Sink for JourneySink {
    fn name(&self) -> &'static str {
        NAME
    }

    fn refusal_reasons(&self) -> &'static [&'static str] {
        &["undecodable"]
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
        super::joined(ENVELOPE.0, parts, ENVELOPE.1)
    }

    fn send(&self, body: Bytes) -> BoxFuture<'_, Result<Answer, SendError>> {
        Box::pin(self.post_events(body))
    }
}
