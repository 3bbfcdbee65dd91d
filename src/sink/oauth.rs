//! OAuth client credentials: one token cache shared by every sink.
//!
//! A token is fetched from `<login base>/oauth/token` with the client's id and secret (HTTP Basic),
//! reused until 80% of its `expires_in` has passed, then replaced; a request answered 401 drops
//! the token it used (once — not a newer one another request already fetched) so the retry gets a
//! fresh one. Only one fetch is ever in flight. No redirect is followed (the secret goes only to
//! the configured login host) and only a JSON token answer counts; the answer is read with a
//! bound. Neither the secret nor any token is ever logged,
//! counted or put in an error: they are held as [`Secret`].

use std::time::{Duration, Instant};

use prometheus::IntCounter;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::config::Secret;

/// Fraction of a token's lifetime after which it is replaced.
pub const REFRESH_AT: f64 = 0.8;

/// The OAuth client's credentials.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The client id (not secret).
    pub client_id: String,
    /// The client secret.
    pub client_secret: Secret,
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The login host refused the credentials (401/400): nothing changes until the config does.
    #[error(
        "Genesys Cloud refused the OAuth client credentials (HTTP {status}: {error}); check organization.client_id and the client secret"
    )]
    Refused {
        /// HTTP status.
        status: u16,
        /// The OAuth `error` code.
        error: String,
    },
    /// The login host failed (5xx, 429): try again later.
    #[error("the login host answered HTTP {status} (correlation id {correlation_id})")]
    Unavailable {
        /// HTTP status.
        status: u16,
        /// `ININ-Correlation-Id`, if any.
        correlation_id: String,
    },
    /// No answer at all.
    #[error("cannot reach the login host: {0}")]
    Transport(String),
    /// An answer that is not a token.
    #[error("the login host's answer is not a token: {0}")]
    BadAnswer(String),
}

impl OAuthError {
    /// The request-status label it is counted under: `oauth` when the login host refused the
    /// client or answered something that is not a token (a configuration to fix), and
    /// `oauth_unavailable` when it failed or did not answer (an outage to wait out).
    pub fn label(&self) -> &'static str {
        match self {
            OAuthError::Refused { .. } | OAuthError::BadAnswer(_) => "oauth",
            OAuthError::Unavailable { .. } | OAuthError::Transport(_) => "oauth_unavailable",
        }
    }

    /// Whether trying again later may succeed without a config change.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, OAuthError::Refused { .. })
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    token_type: String,
    expires_in: u64,
}

struct Cached {
    token: Secret,
    refresh_at: Instant,
}

/// When a token issued now for `expires_in` seconds should be replaced.
pub fn refresh_at(issued: Instant, expires_in: Duration) -> Instant {
    issued + expires_in.mul_f64(REFRESH_AT)
}

/// The shared token cache.
pub struct TokenSource {
    http: reqwest::Client,
    url: String,
    creds: Credentials,
    cached: Mutex<Option<Cached>>,
    refreshes: IntCounter,
}

impl TokenSource {
    /// Tokens from `<login_base>/oauth/token`; `refreshes` counts every fetch.
    pub fn new(http: reqwest::Client, login_base: &str, creds: Credentials, refreshes: IntCounter) -> Self {
        TokenSource {
            http,
            url: format!("{}/oauth/token", login_base.trim_end_matches('/')),
            creds,
            cached: Mutex::new(None),
            refreshes,
        }
    }

    /// A valid token: the cached one, or a fresh one once it is due.
    pub async fn token(&self) -> Result<Secret, OAuthError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// After a 401 for a request sent with `rejected`: forget that token (unless a newer one is
    /// cached already) and return a valid one.
    pub async fn after_unauthorized(&self, rejected: &Secret) -> Result<Secret, OAuthError> {
        {
            let mut cached = self.cached.lock().await;
            if cached.as_ref().is_some_and(|c| c.token.expose() == rejected.expose()) {
                *cached = None;
            }
        }
        self.token().await
    }

    async fn fetch(&self) -> Result<Cached, OAuthError> {
        self.refreshes.inc();
        let issued = Instant::now();
        let resp = self
            .http
            .post(&self.url)
            .basic_auth(&self.creds.client_id, Some(self.creds.client_secret.expose()))
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .map_err(|e| OAuthError::Transport(crate::outbound::describe_error(e)))?;
        let status = resp.status().as_u16();
        let correlation_id = super::correlation_id(resp.headers());
        if (300..400).contains(&status) {
            let note = crate::outbound::redirect_note(status, resp.headers());
            tracing::warn!(status, correlation_id = %correlation_id, "OAuth token request redirected; not followed");
            return Err(OAuthError::BadAnswer(format!("the login host {note}")));
        }
        let headers = resp.headers().clone();
        let body = crate::outbound::read_body(resp, crate::outbound::MAX_OAUTH_BODY)
            .await
            .map_err(|e| OAuthError::Transport(e.to_string()))?;
        if status == 400 || status == 401 || status == 403 {
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let error = crate::outbound::bounded(body["error"].as_str().unwrap_or("unknown"), 100);
            tracing::error!(status, error = %error, correlation_id = %correlation_id, client_id = %self.creds.client_id, "OAuth credentials refused");
            return Err(OAuthError::Refused { status, error });
        }
        if !(200..300).contains(&status) {
            tracing::warn!(status, correlation_id = %correlation_id, "OAuth token request failed");
            return Err(OAuthError::Unavailable { status, correlation_id });
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|_| {
            OAuthError::BadAnswer(format!(
                "HTTP {status} without a token answer ({})",
                crate::outbound::describe_unexpected(&headers, &body)
            ))
        })?;
        if !answer.token_type.is_empty() && !answer.token_type.eq_ignore_ascii_case("bearer") {
            return Err(OAuthError::BadAnswer(format!(
                "token_type `{}` is not bearer",
                answer.token_type
            )));
        }
        if answer.access_token.is_empty() || answer.expires_in == 0 {
            return Err(OAuthError::BadAnswer("empty token or zero lifetime".into()));
        }
        tracing::debug!(expires_in = answer.expires_in, "OAuth token fetched");
        Ok(Cached {
            token: Secret::new(answer.access_token),
            refresh_at: refresh_at(issued, Duration::from_secs(answer.expires_in)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_at_eighty_percent() {
        let t0 = Instant::now();
        assert_eq!(refresh_at(t0, Duration::from_secs(100)), t0 + Duration::from_secs(80));
        assert_eq!(refresh_at(t0, Duration::from_secs(5)), t0 + Duration::from_secs(4));
    }

    #[test]
    fn refused_credentials_are_not_retryable_and_hold_no_secret() {
        let e = OAuthError::Refused {
            status: 401,
            error: "invalid_client".into(),
        };
        assert!(!e.is_retryable());
        assert!(OAuthError::Transport("refused".into()).is_retryable());
    }
}
