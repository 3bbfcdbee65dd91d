//! The SCIM calls user sync makes (`/api/v2/scim/v2/users`), paced and authorised like every
//! other request of the organization's OAuth client.
//!
//! Each call waits for a turn at the client's [`Gate`] (the pacer fed by the rate-limit headers
//! of every answer; a 429 pauses the whole client for its `Retry-After`), carries the shared
//! token (a 401 fetches a new one and the call is made once more), follows no redirect and reads
//! the answer with a bound. A 429, 408, 5xx or no answer is tried again with capped, jittered
//! backoff up to [`ATTEMPTS`] times; any other refusal is returned as [`ScimError::Refused`] with
//! SCIM's `scimType` and `detail` and the `ININ-Correlation-Id`, for the user's sync status.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::Method;
use serde_json::Value;

use crate::dispatch::gate::{DestState, Gate};
use crate::metrics::UsersMetrics;
use crate::retry::Backoff;
use crate::shutdown::Shutdown;
use crate::sink::classify::{Outcome, Verdict, classify};
use crate::sink::oauth::TokenSource;
use crate::sink::ratelimit::RateLimit;

/// SCIM's media type.
pub const SCIM_JSON: &str = "application/scim+json";

/// The most users a list page asks for: larger pages may be answered 429.
pub const MAX_PAGE: usize = 25;

/// Tries of one call whose answer says "later" (429, 5xx, no answer) before it fails.
pub const ATTEMPTS: u32 = 8;

/// Why a SCIM call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScimError {
    /// The organization refused it for good.
    #[error("SCIM answered HTTP {status}{}: {detail} (correlation id {correlation_id})", scim_type.as_deref().map(|t| format!(" {t}")).unwrap_or_default())]
    Refused {
        /// HTTP status.
        status: u16,
        /// SCIM's `scimType` (`uniqueness`, `invalidVers`, ...).
        scim_type: Option<String>,
        /// SCIM's `detail`, or the error body's `message` (bounded).
        detail: String,
        /// `ININ-Correlation-Id`.
        correlation_id: String,
    },
    /// No usable answer after [`ATTEMPTS`] tries.
    #[error("Genesys Cloud did not answer usably: {0}")]
    Unavailable(String),
    /// Shutdown came first.
    #[error("stopped")]
    Stopped,
}

impl ScimError {
    /// Whether it is SCIM's `scimType` `t`.
    pub fn is(&self, t: &str) -> bool {
        matches!(self, ScimError::Refused { scim_type: Some(s), .. } if s == t)
    }

    /// The HTTP status, when refused.
    pub fn status(&self) -> Option<u16> {
        match self {
            ScimError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// One page of users.
#[derive(Debug, Clone)]
pub struct Page {
    /// `totalResults`.
    pub total: usize,
    /// `Resources`.
    pub users: Vec<Value>,
}

/// A successful answer.
struct Reply {
    body: Value,
}

/// The SCIM users endpoint of one organization.
pub struct Scim {
    http: reqwest::Client,
    users_url: String,
    tokens: Arc<TokenSource>,
    gate: Arc<Gate>,
    shutdown: Shutdown,
    metrics: UsersMetrics,
}

/// `value` as a SCIM filter string literal.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Scim {
    /// The endpoint at `<api_base>/api/v2/scim/v2/users`, through `gate` with `tokens`.
    pub fn new(
        http: reqwest::Client,
        api_base: &str,
        tokens: Arc<TokenSource>,
        gate: Arc<Gate>,
        shutdown: Shutdown,
        metrics: UsersMetrics,
    ) -> Self {
        Scim {
            http,
            users_url: format!("{}/api/v2/scim/v2/users", api_base.trim_end_matches('/')),
            tokens,
            gate,
            shutdown,
            metrics,
        }
    }

    /// Users `start` (1-based) to `start + count - 1` (`count` at most [`MAX_PAGE`]).
    pub async fn page(&self, start: usize, count: usize) -> Result<Page, ScimError> {
        let url = format!("{}?startIndex={start}&count={}", self.users_url, count.min(MAX_PAGE));
        let r = self.call(Method::GET, url, None, None).await?;
        let users = r.body["Resources"].as_array().cloned().unwrap_or_default();
        let total = r.body["totalResults"].as_u64().map_or(users.len(), |n| n as usize);
        Ok(Page { total, users })
    }

    /// The user whose `attribute` (`externalId`, `userName`) equals `value`, if any.
    pub async fn find(&self, attribute: &str, value: &str) -> Result<Option<Value>, ScimError> {
        let filter = format!("{attribute} eq {}", quoted(value));
        let mut url = reqwest::Url::parse(&self.users_url).map_err(|e| ScimError::Unavailable(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("filter", &filter)
            .append_pair("count", "2");
        let r = self.call(Method::GET, url.to_string(), None, None).await?;
        let users = r.body["Resources"].as_array().cloned().unwrap_or_default();
        // `externalId` is compared exactly; the filter may match without regard to case.
        Ok(users.into_iter().find(|u| match attribute {
            "externalId" => u["externalId"].as_str() == Some(value),
            _ => u[attribute].as_str().is_some_and(|v| v.eq_ignore_ascii_case(value)),
        }))
    }

    /// The user `id`; `None` when it does not exist.
    pub async fn get(&self, id: &str) -> Result<Option<Value>, ScimError> {
        match self.call(Method::GET, self.user_url(id), None, None).await {
            Ok(r) => Ok(Some(r.body)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a user; the answer is the new user.
    pub async fn create(&self, body: Value) -> Result<Value, ScimError> {
        let r = self
            .call(Method::POST, self.users_url.clone(), Some(body), None)
            .await?;
        self.metrics.writes.with_label_values(&["create"]).inc();
        Ok(r.body)
    }

    /// PATCHes user `id` at `version` (its ETag, `If-Match`); `kind` labels the write.
    pub async fn patch(&self, id: &str, version: Option<&str>, body: Value, kind: &str) -> Result<Value, ScimError> {
        let r = self.call(Method::PATCH, self.user_url(id), Some(body), version).await?;
        self.metrics.writes.with_label_values(&[kind]).inc();
        Ok(r.body)
    }

    /// Deletes user `id` (already gone counts as done).
    pub async fn delete(&self, id: &str) -> Result<(), ScimError> {
        match self.call(Method::DELETE, self.user_url(id), None, None).await {
            Ok(_) => {
                self.metrics.writes.with_label_values(&["delete"]).inc();
                Ok(())
            }
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn user_url(&self, id: &str) -> String {
        let mut url = self.users_url.clone();
        url.push('/');
        url.extend(form_urlencoded::byte_serialize(id.as_bytes()));
        url
    }

    /// Makes one call until it has a final answer.
    async fn call(
        &self,
        method: Method,
        url: String,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, ScimError> {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut refreshed = false;
        let mut last = String::new();
        let mut rejected: Option<crate::config::Secret> = None;
        for _ in 0..ATTEMPTS {
            let token = match rejected.take() {
                Some(old) => self.tokens.after_unauthorized(&old).await,
                None => self.tokens.token().await,
            };
            let token = match token {
                Ok(t) => t,
                Err(e) => {
                    self.metrics.requests.with_label_values(&["oauth"]).inc();
                    last = format!("no OAuth token: {e}");
                    let state = if e.is_retryable() {
                        DestState::Retrying
                    } else {
                        DestState::AuthFailing
                    };
                    self.gate.failed(state, None, last.clone(), None);
                    if !self.shutdown.sleep(backoff.next_delay()).await {
                        return Err(ScimError::Stopped);
                    }
                    continue;
                }
            };
            let sent = {
                let Some(_turn) = self.gate.turn(&self.shutdown).await else {
                    return Err(ScimError::Stopped);
                };
                tokio::select! {
                    r = self.send(&token, &method, &url, body.as_ref(), if_match) => r,
                    _ = self.shutdown.wait() => return Err(ScimError::Stopped),
                }
            };
            let (status, headers, bytes) = match sent {
                Ok(answer) => answer,
                Err((label, message)) => {
                    self.metrics.requests.with_label_values(&[label]).inc();
                    self.gate.failed(DestState::Retrying, None, message.clone(), None);
                    last = message;
                    if !self.shutdown.sleep(backoff.next_delay()).await {
                        return Err(ScimError::Stopped);
                    }
                    continue;
                }
            };
            self.metrics.requests.with_label_values(&[&status.to_string()]).inc();
            if let Some(rl) = RateLimit::from_headers(|n| headers.get(n).and_then(|v| v.to_str().ok())) {
                self.gate.observe(rl);
            }
            let correlation_id = crate::sink::correlation_id(&headers);
            if status == 401 && !refreshed {
                refreshed = true;
                rejected = Some(token);
                continue;
            }
            let retry_after = headers.get("retry-after").and_then(|v| v.to_str().ok());
            let outcome = Outcome::Response {
                status,
                retry_after,
                confirmed: (200..300).contains(&status),
            };
            match classify(outcome, SystemTime::now()) {
                Verdict::Delivered => {
                    self.gate.succeeded();
                    let body = if bytes.is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_slice(&bytes).map_err(|_| {
                            ScimError::Unavailable(format!(
                                "HTTP {status} without SCIM's answer ({})",
                                crate::outbound::describe_unexpected(&headers, &bytes)
                            ))
                        })?
                    };
                    return Ok(Reply { body });
                }
                Verdict::Retry {
                    after,
                    pause_destination,
                    ..
                } if status != 401 => {
                    let delay = after.unwrap_or_else(|| backoff.next_delay());
                    if pause_destination {
                        self.gate.pause(delay);
                    }
                    last = format!("HTTP {status} (correlation id {correlation_id})");
                    self.gate
                        .failed(DestState::Retrying, Some(status), last.clone(), Some(correlation_id));
                    if !self.shutdown.sleep(delay).await {
                        return Err(ScimError::Stopped);
                    }
                }
                _ => return Err(refusal(status, &headers, &bytes, correlation_id)),
            }
        }
        Err(ScimError::Unavailable(last))
    }

    /// One request; `Err((metric label, message))` when there was no answer.
    async fn send(
        &self,
        token: &crate::config::Secret,
        method: &Method,
        url: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<(u16, reqwest::header::HeaderMap, bytes::Bytes), (&'static str, String)> {
        let mut req = self
            .http
            .request(method.clone(), url)
            .bearer_auth(token.expose())
            .header(reqwest::header::ACCEPT, SCIM_JSON);
        if let Some(b) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, SCIM_JSON).body(b.to_string());
        }
        if let Some(v) = if_match {
            req = req.header(reqwest::header::IF_MATCH, v);
        }
        let resp = req.send().await.map_err(|e| {
            let label = if e.is_timeout() { "timeout" } else { "connect" };
            (label, crate::outbound::describe_error(e))
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if (300..400).contains(&status) {
            return Ok((status, headers, bytes::Bytes::new()));
        }
        let bytes = crate::outbound::read_body(resp, crate::outbound::MAX_API_BODY)
            .await
            .map_err(|e| ("connect", e.to_string()))?;
        Ok((status, headers, bytes))
    }
}

/// A final refusal, read from SCIM's error (`detail`, `scimType`) or the API's (`message`).
fn refusal(status: u16, headers: &reqwest::header::HeaderMap, bytes: &[u8], correlation_id: String) -> ScimError {
    let v: Value = serde_json::from_slice(bytes).unwrap_or_default();
    let detail = v["detail"]
        .as_str()
        .or_else(|| v["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| {
            if (300..400).contains(&status) {
                crate::outbound::redirect_note(status, headers)
            } else {
                crate::outbound::describe_unexpected(headers, bytes)
            }
        });
    ScimError::Refused {
        status,
        scim_type: v["scimType"].as_str().map(str::to_string),
        detail: crate::outbound::bounded(&detail, 512),
        correlation_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_are_quoted_and_escaped() {
        assert_eq!(quoted("jdoe"), "\"jdoe\"");
        assert_eq!(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
