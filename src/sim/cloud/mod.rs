//! The Genesys Cloud simulator (`interfaces.md` §2).
//!
//! Serves, so far: the OAuth client-credentials token endpoint (`POST /oauth/token`: Basic
//! auth, expiring opaque tokens, 401 on bad credentials), `GET /api/v2/tokens/me` (who a bearer
//! token belongs to), per-OAuth-client rate limiting with the `inin-ratelimit-*` headers on every
//! API answer and 429 + `Retry-After` beyond the allowance, an `ININ-Correlation-Id` on every
//! answer, Genesys-shaped error bodies, token revocation, and a report of what it saw —
//! including requests that came back before the `Retry-After` they were given had passed.

mod limits;
mod oauth;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::json;

pub use limits::{Limiter, Standing};

/// How the simulated organization behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// OAuth clients: (client id, client secret).
    pub clients: Vec<(String, String)>,
    /// Lifetime of issued tokens (Genesys Cloud: 300 s to 172,800 s, per OAuth client).
    pub token_lifetime: Duration,
    /// API requests allowed per OAuth client per minute.
    pub requests_per_minute: u64,
    /// The organization's name.
    pub org_name: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            clients: vec![("sim-client".into(), "sim-secret".into())],
            token_lifetime: Duration::from_secs(86_400),
            requests_per_minute: 300,
            org_name: "simulated".into(),
        }
    }
}

/// What the simulator saw.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Token requests.
    pub token_requests: u64,
    /// Tokens issued.
    pub tokens_issued: u64,
    /// Token requests refused for bad credentials.
    pub auth_failures: u64,
    /// API requests (any path under `/api/`).
    pub api_requests: u64,
    /// API requests refused for a missing, unknown, expired or revoked token.
    pub unauthorized: u64,
    /// 429 answers sent.
    pub rate_limited: u64,
    /// Requests from a client that came before the `Retry-After` it was last given had passed.
    pub early_retries: u64,
}

struct Token {
    client: String,
    expires_at: Instant,
}

struct Inner {
    tokens: HashMap<String, Token>,
    limiter: Limiter,
    /// Per client: no request expected before this instant (the last `Retry-After`).
    not_before: HashMap<String, Instant>,
    report: Report,
}

/// The simulator's state, shared by its handlers.
pub struct CloudSim {
    cfg: SimConfig,
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    seed: u64,
}

impl CloudSim {
    /// A simulator with `cfg`.
    pub fn new(cfg: SimConfig) -> Arc<Self> {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7);
        Arc::new(CloudSim {
            inner: Mutex::new(Inner {
                tokens: HashMap::new(),
                limiter: Limiter::new(cfg.requests_per_minute),
                not_before: HashMap::new(),
                report: Report::default(),
            }),
            cfg,
            next_id: AtomicU64::new(1),
            seed,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh opaque id (tokens, correlation ids).
    fn new_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}:{n}", self.seed);
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes())
            .simple()
            .to_string()
    }

    /// Everything seen so far.
    pub fn report(&self) -> Report {
        self.lock().report.clone()
    }

    /// Revokes every issued token (as an administrator deleting the OAuth client's grants would).
    pub fn revoke_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// Changes the per-client allowance.
    pub fn set_requests_per_minute(&self, n: u64) {
        self.lock().limiter.set_allowed(n);
    }

    /// The routes.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/oauth/token", post(oauth::token))
            .route("/api/v2/tokens/me", get(tokens_me))
            .fallback(not_found)
            .layer(axum::middleware::map_response_with_state(self.clone(), correlate))
            .with_state(self.clone())
    }

    /// Serves on `listener` until `shutdown` fires.
    pub async fn serve(
        self: &Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: crate::shutdown::Shutdown,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await
    }

    /// Binds `addr` and serves in a background task; returns the bound address.
    pub async fn spawn(
        self: &Arc<Self>,
        addr: SocketAddr,
        shutdown: crate::shutdown::Shutdown,
    ) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let me = self.clone();
        tokio::spawn(async move { me.serve(listener, shutdown).await });
        Ok(bound)
    }

    /// Checks a bearer token and counts the request against its client's allowance.
    /// `Err` is the complete answer to send instead.
    fn admit(&self, headers: &HeaderMap) -> Result<(String, Standing), Box<Response>> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.report.api_requests += 1;
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
        let client = match token.and_then(|t| inner.tokens.get(t)) {
            Some(t) if t.expires_at > now => t.client.clone(),
            _ => {
                inner.report.unauthorized += 1;
                return Err(Box::new(error(
                    StatusCode::UNAUTHORIZED,
                    "authentication.required",
                    "No authentication bearer token specified in authorization header, or the token is expired or revoked.",
                )));
            }
        };
        if inner.not_before.get(&client).is_some_and(|t| now < *t) {
            inner.report.early_retries += 1;
        }
        let standing = inner.limiter.count(&client, now);
        if standing.limited {
            inner.report.rate_limited += 1;
            inner
                .not_before
                .insert(client.clone(), now + Duration::from_secs(standing.reset_secs));
            let mut resp = error(
                StatusCode::TOO_MANY_REQUESTS,
                "too.many.requests",
                &format!(
                    "Rate limit exceeded the maximum. Retry the request in [{}] seconds",
                    standing.reset_secs
                ),
            );
            rate_headers(&mut resp, &standing);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(standing.reset_secs));
            return Err(Box::new(resp));
        }
        Ok((client, standing))
    }
}

/// A Genesys Cloud error body: `{"message","code","status","contextId","details"}`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({
        "message": message,
        "code": code,
        "status": status.as_u16(),
        "contextId": "",
        "details": [],
    });
    (status, axum::Json(body)).into_response()
}

fn rate_headers(resp: &mut Response, s: &Standing) {
    let h = resp.headers_mut();
    h.insert("inin-ratelimit-count", HeaderValue::from(s.count.min(s.allowed)));
    h.insert("inin-ratelimit-allowed", HeaderValue::from(s.allowed));
    h.insert("inin-ratelimit-reset", HeaderValue::from(s.reset_secs));
}

/// Every answer gets an `ININ-Correlation-Id`, and error bodies carry it as `contextId`.
async fn correlate(State(sim): State<Arc<CloudSim>>, resp: Response) -> Response {
    let id = sim.new_id();
    let (mut parts, body) = resp.into_parts();
    let body = if parts.status.is_client_error() || parts.status.is_server_error() {
        let bytes = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(mut v) if v.get("contextId").is_some() => {
                v["contextId"] = json!(id);
                let text = v.to_string();
                parts.headers.remove(header::CONTENT_LENGTH);
                axum::body::Body::from(text)
            }
            _ => axum::body::Body::from(bytes),
        }
    } else {
        body
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        parts.headers.insert("inin-correlation-id", v);
    }
    Response::from_parts(parts, body)
}

async fn not_found(req: Request) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not.found",
        &format!("No resource at {} {}", req.method(), req.uri().path()),
    )
}

async fn tokens_me(State(sim): State<Arc<CloudSim>>, headers: HeaderMap) -> Response {
    let (client, standing) = match sim.admit(&headers) {
        Ok(ok) => ok,
        Err(resp) => return *resp,
    };
    let body = json!({
        "organization": {"id": "00000000-0000-4000-8000-000000000001", "name": sim.cfg.org_name},
        "OAuthClient": {"id": client, "name": client},
    });
    let mut resp = (StatusCode::OK, axum::Json(body)).into_response();
    rate_headers(&mut resp, &standing);
    resp
}
