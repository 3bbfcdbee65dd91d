//! The HTTP listener: the push source, the Integration Health page (`GET /`, [`page`]),
//! `GET /health`, the probes `GET /livez` and `GET /readyz`, and `GET /metrics`.
//!
//! Connections are capped and timed out ([`listener`]), so idle or slow clients cannot take the
//! process's file descriptors. Stops on the shared [`crate::shutdown::Shutdown`]: no new connections or requests,
//! requests in flight finish (their appends complete and are answered), then [`serve`] returns.

pub mod fdlimit;
pub mod listener;
pub mod page;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus::core::Collector;
use tokio::net::TcpListener;

use crate::buffer::Buffer;
use crate::config::PersistPolicy;
use crate::dispatch::gate::Gate;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::source::http::{HttpSource, push_handler};

/// What `/health` and `/metrics` read.
pub struct Status {
    /// The switch.
    pub enabled: crate::switch::Switch,
    /// What this process does.
    pub role: crate::config::Role,
    /// The CIC server's name.
    pub cic_server: String,
    /// Process start.
    pub started: Instant,
    /// Persist policy, for the health page.
    pub persist: PersistPolicy,
    /// The buffer.
    pub buffer: Arc<dyn Buffer>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Each destination's name and the gate of its OAuth client.
    pub destinations: Vec<(&'static str, Arc<Gate>)>,
    /// The ICWS source's connection, when it runs.
    pub icws: Option<Arc<crate::source::icws::IcwsStatus>>,
    /// The supervisor of the process's tasks (its failure makes the status `failing`).
    pub supervisor: crate::supervisor::Supervisor,
    /// User sync's statuses, when it runs.
    pub users: Option<Arc<crate::users::status::Statuses>>,
    /// The last hour of delivery, for the page's charts.
    pub history: Arc<crate::history::History>,
    /// The data directory, for the commands the page suggests.
    pub data_dir: String,
}

/// The Integration Health page.
async fn page(State(s): State<Arc<Status>>, Query(filter): Query<page::UserFilter>) -> Response {
    let h = current(&s);
    let dead_letters = s
        .metrics
        .sink
        .dead_lettered
        .collect()
        .iter()
        .flat_map(|f| f.get_metric())
        .filter(|m| m.get_counter().value() > 0.0)
        .map(|m| {
            let label = |name: &str| {
                m.get_label()
                    .iter()
                    .find(|l| l.name() == name)
                    .map(|l| l.value().to_string())
                    .unwrap_or_default()
            };
            (label("sink"), label("reason"), m.get_counter().value() as u64)
        })
        .collect();
    let users = s.users.as_ref().map(|u| {
        let (shown, matching) = u.select(|id, st| filter.passes(id, st), page::USERS_SHOWN);
        page::Users {
            filter: filter.clone(),
            shown,
            matching,
        }
    });
    let extras = page::Extras {
        points: s.history.points(),
        dead_letters,
        users,
        data_dir: s.data_dir.clone(),
    };
    let code = if h.is_up() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page::render(&h, &extras),
    )
        .into_response()
}

async fn health(State(s): State<Arc<Status>>) -> Response {
    let h = current(&s);
    let code = if h.is_up() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(h)).into_response()
}

/// The health document now.
fn current(s: &Status) -> Health {
    Health::build(crate::health::Inputs {
        enabled: s.enabled.is_on(),
        role: s.role,
        cic_server: &s.cic_server,
        started: s.started,
        persist: s.persist,
        buffer: s.buffer.stats(),
        destinations: s.destinations.iter().map(|(name, g)| g.health(name)).collect(),
        cic: s.icws.as_ref().map(|i| i.health()),
        failure: s.supervisor.failure(),
        users: s.users.as_ref().map(|u| u.summary()),
    })
}

/// Liveness (`/livez`): 200 while the process works, 503 once it is stopping after a failure
/// (its service manager restarts it).
async fn livez(State(s): State<Arc<Status>>) -> Response {
    let h = current(&s);
    if h.is_up() {
        (StatusCode::OK, "live\n").into_response()
    } else {
        let why = h.failure.unwrap_or_else(|| "failing".into());
        (StatusCode::SERVICE_UNAVAILABLE, format!("not live: {why}\n")).into_response()
    }
}

/// Readiness (`/readyz`): 200 while the conduit takes work, 503 with why while it does not (its
/// buffer full or failing writes, or the process stopping).
async fn readyz(State(s): State<Arc<Status>>) -> Response {
    match current(&s).readiness() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")).into_response(),
    }
}

async fn metrics(State(s): State<Arc<Status>>) -> Response {
    let st = s.buffer.stats();
    s.metrics.buffer.records.set(st.backlog_records as i64);
    s.metrics.buffer.bytes.set(st.bytes as i64);
    s.metrics.buffer.capacity.set(st.max_bytes as i64);
    s.metrics.buffer.oldest_age.set(st.oldest_age_secs());
    for (name, gate) in &s.destinations {
        let state = serde_json::to_value(gate.health(name).state).ok();
        if let Some(state) = state.as_ref().and_then(|v| v.as_str()) {
            s.metrics.sink.show_state(name, state);
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

/// The routes.
pub fn router(status: Arc<Status>, push: Option<Arc<HttpSource>>) -> Router {
    let mut r = Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(status);
    if let Some(push) = push {
        r = r.merge(
            Router::new()
                .route("/v1/interactions", post(push_handler))
                .with_state(push),
        );
    }
    r
}

/// Binds the listener (port 0 picks one) and reports the address bound.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind(addr).await?;
    let a = l.local_addr()?;
    Ok((l, a))
}

pub use listener::{Limits, serve};
