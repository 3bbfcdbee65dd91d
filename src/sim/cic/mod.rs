//! The CIC (ICWS) simulator (`interfaces.md` §1): login, sessions, queue and user-status
//! subscriptions, messages polled or streamed, the user directory.
//!
//! - `POST /icws/connection`: an `icAuthConnectionRequestSettings` body with a known user and
//!   password → 201 with `csrfToken`, `sessionId`, `alternateHostList`, `features` (messaging
//!   version 2) and a `Set-Cookie`; bad credentials or a malformed body → 400 with
//!   `{"errorId","message"}`. While this server is the backup of a switchover pair, every login
//!   gets 503 with the pair's `alternateHostList`.
//! - Every session call (`/icws/{sessionId}/...`) must carry the `ININ-ICWS-CSRF-Token` header
//!   and the cookie of its session; otherwise 401, as for an unknown or dropped session.
//! - Disconnected interactions linger in their queues (`linger`) before they are removed, as in
//!   CIC, so a client reconnecting soon after sees how they ended.
//! - `PUT`/`DELETE /icws/{sessionId}/messaging/subscriptions/queues/{subscriptionId}`: the first
//!   message after a subscription starts holds the full contents of the subscribed queues with
//!   `isDelta:false`; later ones only what changed (`interactionsAdded`, `interactionsChanged`
//!   with only the changed attributes, `interactionsRemoved`). Only subscribed attributes are
//!   sent, under the names the subscriber used; names match case-insensitively.
//! - `GET /icws/{sessionId}/messaging/messages`: the pending messages, removed from the queue;
//!   with `Accept: text/event-stream`, a server-sent-events stream instead: each event's `data:`
//!   one message, `:ping` comment lines while idle, and the end of the stream when the session
//!   is dropped.
//! - `PUT`/`DELETE .../messaging/subscriptions/status/user-statuses` (`{"userIds":[..]}`): a
//!   `userStatusMessage` with the subscribed users' statuses (`isDelta:false`), then each change.
//! - `GET .../configuration/users` with `select=` and `Range: items=A-B`: a page of the user
//!   directory (`configurationId`, `personalInformationProperties`), `Content-Range: items
//!   A-B/N`; `PUT`/`DELETE .../messaging/subscriptions/configuration/users/{subscriptionId}`: the
//!   directory, then each user added, changed or removed ([`users`]).
//! - `GET .../connection/switchover-status`, `DELETE .../connection`.
//!
//! The state and [`CicSim`]'s own methods are here; one handler per call is in `handlers`.
//!
//! Interactions change through [`CicSim::apply`] — a scenario file ([`scenario`], played by
//! [`CicSim::play`]), a test, or the built-in traffic generator ([`crate::sim::traffic`]) run by
//! [`CicSim::run_traffic`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Serialize;
use serde_json::{Value, json};

use crate::shutdown::Shutdown;
use crate::sim::traffic::{Change, Traffic};

mod changes;
mod handlers;
pub mod scenario;
pub mod users;

use handlers::*;

/// Most messages held for one session; beyond it the oldest are dropped (a client that stopped
/// polling).
pub const MAX_PENDING_MESSAGES: usize = 10_000;

/// How the simulated CIC server behaves.
#[derive(Debug, Clone)]
pub struct CicSimConfig {
    /// This server's name (`icServer`).
    pub server: String,
    /// Users that may log in: (user id, password).
    pub users: Vec<(String, String)>,
    /// The hosts of the switchover pair (`alternateHostList`).
    pub pair: Vec<String>,
    /// Whether this server is the backup of its pair (logins get 503).
    pub backup: bool,
    /// How long a disconnected interaction stays in its queues before it is removed (as CIC
    /// keeps it until it is cleared); zero: removed with the change that ends it.
    pub linger: Duration,
    /// Users in the generated directory (`configuration/users`).
    pub directory_users: usize,
}

impl Default for CicSimConfig {
    fn default() -> Self {
        CicSimConfig {
            server: "cic-sim".into(),
            users: vec![("PureCloudAdmin".into(), "sim-password".into())],
            pair: vec!["cic-sim".into()],
            backup: false,
            linger: Duration::from_secs(10),
            directory_users: 50,
        }
    }
}

/// What the simulator saw and did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CicReport {
    /// Successful logins.
    pub logins: u64,
    /// Logins refused (credentials, body, backup).
    pub logins_refused: u64,
    /// Queue subscriptions started (each answered with its snapshot).
    pub queue_subscriptions: u64,
    /// Session calls refused with 401.
    pub unauthorized: u64,
    /// Message polls answered.
    pub polls: u64,
    /// Messages delivered.
    pub messages: u64,
    /// Interaction changes applied.
    pub changes: u64,
    /// Messages dropped because a session stopped polling.
    pub messages_dropped: u64,
    /// Messages waiting in the sessions' queues now.
    pub messages_pending: u64,
    /// Pages of the user directory read.
    pub directory_reads: u64,
    /// Users configuration subscriptions started.
    pub users_subscriptions: u64,
    /// Users added, edited or removed.
    pub user_changes: u64,
}

struct QueueSub {
    /// (queueType, queueName).
    queues: Vec<(u8, String)>,
    /// Subscribed attribute names as the subscriber spelled them, and lower-cased.
    attrs: Vec<(String, String)>,
}

struct Session {
    csrf: String,
    cookie: String,
    subs: HashMap<String, QueueSub>,
    /// Users whose statuses this session subscribed to.
    status_users: Vec<String>,
    /// The users configuration subscription: its id and the properties it selected.
    users_sub: Option<(String, Vec<String>)>,
    pending: VecDeque<Value>,
}

/// A CIC user's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserStatus {
    /// The user.
    pub user_id: String,
    /// The status, e.g. `Available`, `Away from desk`.
    pub status_id: String,
    /// When it changed, compact ISO-8601 as ICWS writes it.
    pub status_changed: String,
    /// Logged in to the client.
    pub logged_in: bool,
    /// On a call.
    pub on_phone: bool,
    /// Stations.
    pub stations: Vec<String>,
}

/// One interaction: attributes by lower-cased name → (name, value).
#[derive(Default, Clone)]
struct Interaction {
    attrs: BTreeMap<String, (String, String)>,
    /// When it was disconnected (it lingers in its queues until removed).
    ended_at: Option<std::time::Instant>,
}

impl Interaction {
    fn get(&self, lower: &str) -> Option<&str> {
        self.attrs.get(lower).map(|(_, v)| v.as_str())
    }

    /// Whether it is in queue `(queue_type, name)`: a workgroup queue holds the interactions of
    /// that workgroup, a user queue those of that agent.
    fn in_queue(&self, q: &(u8, String)) -> bool {
        match q.0 {
            2 => self.get("eic_workgroupname") == Some(q.1.as_str()),
            1 => self.get("eic_username") == Some(q.1.as_str()),
            _ => false,
        }
    }
}

/// How often an idle event stream sends a `:ping` comment.
pub const SSE_PING: Duration = Duration::from_secs(5);

struct Inner {
    sessions: HashMap<String, Session>,
    interactions: BTreeMap<String, Interaction>,
    statuses: BTreeMap<String, UserStatus>,
    directory: Vec<Value>,
    report: CicReport,
    backup: bool,
}

/// The simulator's state.
pub struct CicSim {
    cfg: CicSimConfig,
    inner: Mutex<Inner>,
    /// Woken whenever messages are queued or sessions dropped (for event streams).
    queued: tokio::sync::Notify,
    next_id: AtomicU64,
    seed: u64,
}

fn icws_error(status: StatusCode, error_id: &str, message: &str) -> Response {
    (status, axum::Json(json!({"errorId": error_id, "message": message}))).into_response()
}

fn attrs_json(i: &Interaction, subscribed: &[(String, String)], only: Option<&[String]>) -> Value {
    let mut m = serde_json::Map::new();
    for (name, lower) in subscribed {
        if only.is_some_and(|o| !o.iter().any(|c| c == lower)) {
            continue;
        }
        if let Some(v) = i.get(lower) {
            m.insert(name.clone(), Value::String(v.to_string()));
        }
    }
    Value::Object(m)
}

impl CicSim {
    /// A simulator with `cfg`.
    pub fn new(cfg: CicSimConfig) -> Arc<Self> {
        let seed = super::seed();
        Arc::new(CicSim {
            inner: Mutex::new(Inner {
                sessions: HashMap::new(),
                interactions: BTreeMap::new(),
                statuses: BTreeMap::new(),
                directory: directory(cfg.directory_users),
                report: CicReport::default(),
                backup: cfg.backup,
            }),
            cfg,
            queued: tokio::sync::Notify::new(),
            next_id: AtomicU64::new(1),
            seed,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        crate::locks::lock(&self.inner)
    }

    fn new_id(&self) -> String {
        super::opaque_id("cic", self.seed, self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// What happened so far.
    pub fn report(&self) -> CicReport {
        let inner = self.lock();
        CicReport {
            messages_pending: inner.sessions.values().map(|s| s.pending.len() as u64).sum(),
            ..inner.report.clone()
        }
    }

    /// Drops every session (as a CIC restart or a switchover does): their next call gets 401.
    pub fn drop_sessions(&self) {
        self.lock().sessions.clear();
        self.queued.notify_waiters();
    }

    /// Makes this server the backup (logins get 503) or the primary of its pair.
    pub fn set_backup(&self, backup: bool) {
        self.lock().backup = backup;
    }

    /// Interactions currently known (not removed).
    pub fn interactions(&self) -> usize {
        self.lock().interactions.len()
    }

    /// Runs the built-in traffic generator at `changes_per_sec` until `shutdown`.
    pub async fn run_traffic(self: Arc<Self>, changes_per_sec: f64, time_scale: f64, shutdown: Shutdown) {
        let start = crate::timefmt::now_ms();
        let mut traffic = Traffic::new(
            self.seed,
            changes_per_sec / Traffic::CHANGES_PER_INTERACTION,
            time_scale,
            start,
        );
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut changes = Vec::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait() => return,
            }
            changes.clear();
            traffic.advance(crate::timefmt::now_ms(), &mut changes);
            self.apply(&changes);
        }
    }

    /// The routes.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/icws/connection", post(login))
            .route("/icws/{sid}/connection", axum::routing::delete(logout))
            .route("/icws/{sid}/connection/switchover-status", get(switchover_status))
            .route("/icws/{sid}/messaging/messages", get(messages))
            .route(
                "/icws/{sid}/messaging/subscriptions/queues/{sub}",
                put(subscribe).delete(unsubscribe),
            )
            .route(
                "/icws/{sid}/messaging/subscriptions/status/user-statuses",
                put(subscribe_statuses).delete(unsubscribe_statuses),
            )
            .route("/icws/{sid}/configuration/users", get(users::list))
            .route(
                "/icws/{sid}/messaging/subscriptions/configuration/users/{sub}",
                put(users::subscribe).delete(users::unsubscribe),
            )
            .route("/sim/report", get(report))
            .with_state(self.clone())
    }

    /// Binds `addr` and serves in a background task until `shutdown`; returns the bound address.
    pub async fn spawn(self: &Arc<Self>, addr: SocketAddr, shutdown: Shutdown) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        self.serve(listener, shutdown);
        Ok(bound)
    }

    fn serve<L>(self: &Arc<Self>, listener: L, shutdown: Shutdown)
    where
        L: axum::serve::Listener,
        L::Addr: std::fmt::Debug,
    {
        let router = self.router();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.wait().await })
                .await
        });
    }

    /// Serves the API over HTTPS (as ICWS on port 8019) on `addr` until `shutdown`.
    pub async fn spawn_tls(
        self: &Arc<Self>,
        addr: SocketAddr,
        tls: Arc<tokio_rustls::rustls::ServerConfig>,
        shutdown: Shutdown,
    ) -> std::io::Result<SocketAddr> {
        let tcp = tokio::net::TcpListener::bind(addr).await?;
        let bound = tcp.local_addr()?;
        self.serve(crate::sim::tls::TlsListener::new(tcp, tls), shutdown);
        Ok(bound)
    }

    /// Checks a session call's id, CSRF header and cookie.
    fn session<'a>(
        &self,
        inner: &'a mut Inner,
        sid: &str,
        headers: &HeaderMap,
    ) -> Result<&'a mut Session, Box<Response>> {
        let csrf = headers.get("ININ-ICWS-CSRF-Token").and_then(|v| v.to_str().ok());
        let cookies = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("; ");
        let ok = inner
            .sessions
            .get(sid)
            .is_some_and(|s| csrf == Some(s.csrf.as_str()) && cookies.split(';').any(|c| c.trim() == s.cookie));
        if !ok {
            inner.report.unauthorized += 1;
            return Err(Box::new(icws_error(
                StatusCode::UNAUTHORIZED,
                "error.request.connection.authenticationFailure",
                "The session is not valid: log in again.",
            )));
        }
        Ok(inner.sessions.get_mut(sid).expect("checked above"))
    }
}
