//! The Genesys Cloud simulator (`interfaces.md` §2).
//!
//! Serves the OAuth client-credentials token endpoint (`POST /oauth/token`: Basic auth,
//! expiring opaque tokens, 401 on bad credentials), `GET /api/v2/tokens/me` (who a bearer token
//! belongs to), the organization's home division (`GET /api/v2/authorization/divisions/home`),
//! the journey external-event schemas, configurations and events (`journey`), SCIM users
//! ([`scim`]), presence sources, definitions and events ([`presence`]) — every body received and every answer given checked against the official SDK's
//! models ([`models`]) —,
//! per-OAuth-client rate limiting with the `inin-ratelimit-*` headers on every API answer and
//! 429 + `Retry-After` beyond the allowance, an `ININ-Correlation-Id` on every answer,
//! Genesys-shaped error bodies, and injected faults ([`faults`]).
//!
//! Under `/sim/` (no authentication; bind the simulator to loopback) it adds what a test or an
//! operator needs: `GET /sim/report` (what it saw — including requests that came back before the
//! `Retry-After` they were given had passed), `GET /sim/events?offset=N` (accepted entities in
//! arrival order, the last million; duplicates are recognised among the last four million ids),
//! `POST /sim/faults` and `POST /sim/revoke-tokens`. `GET /sim/report` also counts ids that came
//! again with other content than at their first arrival (`conflicting_duplicates`).
//!
//! Files: the state and [`CloudSim`] here; what `/sim/report` counts in `report`; the answers
//! every route shares and the routes outside the journey, SCIM and OAuth in `handlers`;
//! `journey`, [`scim`], [`presence`], `oauth`, [`models`], [`jsonschema`], `limits`, [`faults`].

/// Admits a request (a valid token, allowance left) and yields its standing under the rate
/// limit; otherwise returns, from the handler, the answer refusing it.
macro_rules! admitted {
    ($sim:expr, $headers:expr) => {
        match $sim.admit(&$headers) {
            Ok((_, standing)) => standing,
            Err(resp) => return *resp,
        }
    };
}

pub mod faults;
mod handlers;
mod journey;
pub mod jsonschema;
mod limits;
pub mod models;
mod oauth;
pub mod presence;
mod report;
pub mod scim;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post, put};

pub use faults::{FaultUpdate, Faults};
use handlers::*;
pub use handlers::{HOME_DIVISION, answer, error, error_with_details};
pub use limits::{Limiter, Standing};
pub use report::{Received, Report};

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
    /// Faults in force from the start.
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            clients: vec![("sim-client".into(), "sim-secret".into())],
            token_lifetime: Duration::from_secs(86_400),
            requests_per_minute: 300,
            org_name: "simulated".into(),
            faults: Faults::default(),
        }
    }
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
    faults: Faults,
    schemas: Vec<serde_json::Value>,
    configurations: Vec<serde_json::Value>,
    /// SCIM users.
    users: scim::Users,
    /// Presence sources, definitions and events.
    presence: presence::Presence,
    /// Hashes of the accepted ids, oldest first in `seen_order` (bounded by [`MAX_IDS`]).
    /// Accepted id hash → the content digest it first arrived with.
    seen: HashMap<u64, u64>,
    seen_order: VecDeque<u64>,
    /// Accepted entities, the last [`MAX_RECEIVED`]; `received_base` were let go before them.
    received: VecDeque<Received>,
    received_base: usize,
}

/// Ids remembered for duplicate detection (a 64-bit hash each).
pub const MAX_IDS: usize = 4_000_000;
/// Accepted entities kept for `GET /sim/events`.
pub const MAX_RECEIVED: usize = 1_000_000;

impl Inner {
    /// Records an accepted entity; true when its id is new.
    fn accept(&mut self, r: Received) -> bool {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        r.id.hash(&mut h);
        let key = h.finish();
        let content = u64::from_str_radix(&r.content, 16).unwrap_or_default();
        let new = match self.seen.get(&key) {
            None => {
                self.seen.insert(key, content);
                true
            }
            Some(first) => {
                if *first != content {
                    self.report.conflicting_duplicates += 1;
                }
                false
            }
        };
        if new {
            self.seen_order.push_back(key);
            if self.seen_order.len() > MAX_IDS
                && let Some(old) = self.seen_order.pop_front()
            {
                self.seen.remove(&old);
            }
        }
        self.received.push_back(r);
        if self.received.len() > MAX_RECEIVED {
            self.received.pop_front();
            self.received_base += 1;
        }
        new
    }
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
        let seed = super::seed();
        let mut definition_ids = 0u64;
        Arc::new(CloudSim {
            inner: Mutex::new(Inner {
                tokens: HashMap::new(),
                limiter: Limiter::new(cfg.requests_per_minute),
                not_before: HashMap::new(),
                report: Report::default(),
                faults: cfg.faults.clone(),
                schemas: Vec::new(),
                configurations: Vec::new(),
                users: scim::Users::default(),
                presence: presence::Presence::with_definitions(|| {
                    let n = definition_ids;
                    definition_ids += 1;
                    super::object_id("presence", seed, n)
                }),
                seen: HashMap::new(),
                seen_order: VecDeque::new(),
                received: VecDeque::new(),
                received_base: 0,
            }),
            cfg,
            next_id: AtomicU64::new(1),
            seed,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        crate::locks::lock(&self.inner)
    }

    /// A fresh opaque id (tokens, correlation ids).
    fn new_id(&self) -> String {
        super::opaque_id("cloud", self.seed, self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// A fresh id of an object the API returns (the same counter, hyphenated).
    fn new_object_id(&self) -> String {
        super::object_id("cloud", self.seed, self.next_id.fetch_add(1, Ordering::Relaxed))
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

    /// Changes the faults in force.
    pub fn set_faults(&self, u: &FaultUpdate) {
        let mut inner = self.lock();
        inner.faults.apply(u, Instant::now());
        if let Some(n) = u.requests_per_minute {
            inner.limiter.set_allowed(n);
        }
    }

    /// Accepted entities from `offset` on, in arrival order.
    pub fn received(&self, offset: usize) -> Vec<Received> {
        let inner = self.lock();
        let skip = offset.saturating_sub(inner.received_base);
        inner.received.iter().skip(skip).cloned().collect()
    }

    /// The routes.
    pub fn router(self: &Arc<Self>) -> Router {
        const CONFIGS: &str = "/api/v2/journey/externalevents/configurations";
        const SCIM_USERS: &str = "/api/v2/scim/v2/users";
        let service = Router::new()
            .route("/oauth/token", post(oauth::token))
            .route("/api/v2/tokens/me", get(tokens_me))
            .route("/api/v2/authorization/divisions/home", get(home_division))
            .route(
                "/api/v2/journey/externalevents/schemas",
                get(journey::list_schemas).post(journey::create_schema),
            )
            .route(
                "/api/v2/journey/externalevents/schemas/{id}",
                put(journey::update_schema),
            )
            .route(
                CONFIGS,
                get(journey::list_configurations).post(journey::create_configuration),
            )
            .route(&format!("{CONFIGS}/{{id}}/events"), post(journey::post_events))
            .route(SCIM_USERS, get(scim::list).post(scim::create))
            .route(
                &format!("{SCIM_USERS}/{{id}}"),
                get(scim::get_one).patch(scim::patch).delete(scim::delete),
            )
            .route(
                "/api/v2/presence/sources",
                get(presence::list_sources).post(presence::create_source),
            )
            .route("/api/v2/presence/sources/{id}", get(presence::get_source))
            .route("/api/v2/presence/definitions", get(presence::list_definitions))
            .route("/api/v2/events/users/presence", post(presence::post_events))
            .fallback(not_found)
            .layer(axum::extract::DefaultBodyLimit::max(journey::MAX_BODY + 1))
            .layer(axum::middleware::from_fn_with_state(self.clone(), apply_faults));
        Router::new()
            .route("/sim/report", get(sim_report))
            .route("/sim/events", get(sim_events))
            .route("/sim/faults", post(sim_faults))
            .route("/sim/revoke-tokens", post(sim_revoke))
            .merge(service)
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
        if !standing.limited && faults::chance(inner.faults.error_fraction) {
            inner.report.server_errors += 1;
            let status = [500, 502, 503, 504][fastrand::usize(..4)];
            let status = StatusCode::from_u16(status).expect("valid status");
            let mut resp = error(
                status,
                "internal.server.error",
                "The service failed to process the request",
            );
            rate_headers(&mut resp, &standing);
            return Err(Box::new(resp));
        }
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
