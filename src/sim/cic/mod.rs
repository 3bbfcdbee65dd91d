//! The CIC (ICWS) simulator (`interfaces.md` §1), so far: login, sessions, queue subscriptions
//! and short-polled messages.
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
//! - `GET .../configuration/users` with `Range: items=A-B`: a page of the user directory
//!   (`configurationId`, `personalInformationProperties`), `Content-Range: items A-B/N`.
//! - `GET .../connection/switchover-status`, `DELETE .../connection`.
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
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Serialize;
use serde_json::{Value, json};

use crate::shutdown::Shutdown;
use crate::sim::traffic::{Change, Traffic};

pub mod scenario;

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
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
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

    /// Applies interaction changes, and queues the resulting deltas for every subscription that
    /// sees them. An interaction that ends (state `I` or `E`) stays in its queues for `linger`,
    /// then leaves them (at a later [`CicSim::apply`] or [`CicSim::sweep`]).
    pub fn apply(&self, changes: &[Change]) {
        let now = std::time::Instant::now();
        let linger = self.cfg.linger;
        let mut inner = self.lock();
        inner.report.changes += changes.len() as u64;
        // Per session and subscription: added, changed, removed.
        type Delta = (Vec<Value>, Vec<Value>, Vec<String>);
        let mut out: HashMap<(String, String), Delta> = HashMap::new();
        let Inner {
            sessions,
            interactions,
            report,
            ..
        } = &mut *inner;
        // Interactions whose linger is over leave their queues.
        let expired: Vec<String> = interactions
            .iter()
            .filter(|(_, i)| i.ended_at.is_some_and(|t| now.duration_since(t) >= linger))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            let Some(gone) = interactions.remove(&id) else { continue };
            for (sid, s) in sessions.iter() {
                for (sub_id, sub) in &s.subs {
                    if sub.queues.iter().any(|q| gone.in_queue(q)) {
                        out.entry((sid.clone(), sub_id.clone()))
                            .or_insert_with(|| (Vec::new(), Vec::new(), Vec::new()))
                            .2
                            .push(id.clone());
                    }
                }
            }
        }
        for c in changes {
            let before = interactions.get(&c.interaction_id).cloned();
            let mut after = before.clone().unwrap_or_default();
            let mut changed: Vec<String> = Vec::new();
            for (k, v) in &c.attributes {
                let lower = k.to_ascii_lowercase();
                if after.get(&lower) != Some(v.as_str()) {
                    changed.push(lower.clone());
                    after.attrs.insert(lower, (k.to_string(), v.clone()));
                }
            }
            let ended = matches!(after.get("eic_state"), Some("I" | "E"));
            if ended && after.ended_at.is_none() {
                after.ended_at = Some(now);
            }
            // Removed with this very change only when nothing lingers.
            let leaves = ended && linger.is_zero();
            for (sid, s) in sessions.iter() {
                for (sub_id, sub) in &s.subs {
                    let was = before
                        .as_ref()
                        .is_some_and(|b| sub.queues.iter().any(|q| b.in_queue(q)));
                    let is = sub.queues.iter().any(|q| after.in_queue(q));
                    let entry = || (Vec::new(), Vec::new(), Vec::new());
                    let key = (sid.clone(), sub_id.clone());
                    if is && !was {
                        out.entry(key).or_insert_with(entry).0.push(json!({
                            "interactionId": c.interaction_id,
                            "attributes": attrs_json(&after, &sub.attrs, None),
                        }));
                    } else if is || (was && leaves) {
                        let a = attrs_json(&after, &sub.attrs, Some(&changed));
                        if a.as_object().is_some_and(|m| !m.is_empty()) {
                            out.entry(key.clone()).or_insert_with(entry).1.push(json!({
                                "interactionId": c.interaction_id,
                                "attributes": a,
                            }));
                        }
                        if leaves || !is {
                            out.entry(key).or_insert_with(entry).2.push(c.interaction_id.clone());
                        }
                    } else if was {
                        out.entry(key).or_insert_with(entry).2.push(c.interaction_id.clone());
                    }
                }
            }
            if leaves {
                interactions.remove(&c.interaction_id);
            } else {
                interactions.insert(c.interaction_id.clone(), after);
            }
        }
        for ((sid, sub_id), (added, changed, removed)) in out {
            let Some(s) = sessions.get_mut(&sid) else { continue };
            let msg = json!({
                "__type": "urn:inin.com:queues:queueContentsMessage",
                "isDelta": true,
                "subscriptionId": sub_id,
                "interactionsAdded": added,
                "interactionsChanged": changed,
                "interactionsRemoved": removed,
            });
            s.pending.push_back(msg);
            if s.pending.len() > MAX_PENDING_MESSAGES {
                s.pending.pop_front();
                report.messages_dropped += 1;
            }
        }
        drop(inner);
        self.queued.notify_waiters();
    }

    /// Sets a user's status and tells the sessions subscribed to that user.
    pub fn set_status(&self, user: &str, status_id: &str, logged_in: bool, on_phone: bool) {
        let status = UserStatus {
            user_id: user.to_string(),
            status_id: status_id.to_string(),
            status_changed: crate::timefmt::format_timestamp_ms(crate::timefmt::now_ms())
                .replace(['-', ':'], "")
                .split('.')
                .next()
                .unwrap_or_default()
                .to_string()
                + "Z",
            logged_in,
            on_phone,
            stations: if logged_in {
                vec![format!("{user}-station")]
            } else {
                vec![]
            },
        };
        let mut inner = self.lock();
        inner.statuses.insert(user.to_string(), status.clone());
        let msg = json!({
            "__type": "urn:inin.com:status:userStatusMessage",
            "isDelta": true,
            "userStatusList": [status],
        });
        for s in inner.sessions.values_mut() {
            if s.status_users.iter().any(|u| u == user) {
                s.pending.push_back(msg.clone());
            }
        }
        drop(inner);
        self.queued.notify_waiters();
    }

    /// Removes the disconnected interactions whose linger is over.
    pub fn sweep(&self) {
        self.apply(&[]);
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
            .route("/icws/{sid}/configuration/users", get(users))
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

fn icws_json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, Box<Response>> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !(ct.starts_with("application/vnd.inin.icws+json") || ct.starts_with("application/json")) {
        return Err(Box::new(icws_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "error.request.invalidContentType",
            "Content-Type must be application/vnd.inin.icws+JSON",
        )));
    }
    serde_json::from_slice(body).map_err(|e| {
        Box::new(icws_error(
            StatusCode::BAD_REQUEST,
            "error.request.invalidRepresentation",
            &format!("The body is not valid JSON: {e}"),
        ))
    })
}

async fn login(State(sim): State<Arc<CicSim>>, headers: HeaderMap, body: Bytes) -> Response {
    if sim.lock().backup {
        sim.lock().report.logins_refused += 1;
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"alternateHostList": sim.cfg.pair})),
        )
            .into_response();
    }
    let req = match icws_json_body(&headers, &body) {
        Ok(v) => v,
        Err(resp) => {
            sim.lock().report.logins_refused += 1;
            return *resp;
        }
    };
    let refuse = |id: &str, msg: &str| {
        sim.lock().report.logins_refused += 1;
        icws_error(StatusCode::BAD_REQUEST, id, msg)
    };
    if req["__type"] != "urn:inin.com:connection:icAuthConnectionRequestSettings" {
        return refuse(
            "error.request.invalidRepresentation",
            "__type must be urn:inin.com:connection:icAuthConnectionRequestSettings",
        );
    }
    for key in ["applicationName", "userID", "password"] {
        if req[key].as_str().is_none_or(str::is_empty) {
            return refuse("error.request.invalidRepresentation", &format!("{key} is required"));
        }
    }
    let user = req["userID"].as_str().unwrap_or_default();
    let known = sim
        .cfg
        .users
        .iter()
        .any(|(u, p)| u.eq_ignore_ascii_case(user) && req["password"].as_str() == Some(p.as_str()));
    if !known {
        return refuse(
            "error.request.connection.authenticationFailure",
            "The authentication process failed.",
        );
    }
    let (sid, csrf, cookie_value) = (sim.new_id(), sim.new_id(), sim.new_id());
    let cookie_name = format!("icws_{}", &sid[..8]);
    let cookie = format!("{cookie_name}={cookie_value}");
    {
        let mut inner = sim.lock();
        inner.report.logins += 1;
        inner.sessions.insert(
            sid.clone(),
            Session {
                csrf: csrf.clone(),
                cookie: cookie.clone(),
                subs: HashMap::new(),
                status_users: Vec::new(),
                pending: VecDeque::new(),
            },
        );
    }
    let body = json!({
        "csrfToken": csrf,
        "sessionId": sid,
        "alternateHostList": sim.cfg.pair,
        "userID": user,
        "userDisplayName": user,
        "icServer": sim.cfg.server,
        "features": [{"featureId": "messaging", "version": 2}],
    });
    let mut resp = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{cookie}; Path=/icws; HttpOnly")) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn logout(State(sim): State<Arc<CicSim>>, Path(sid): Path<String>, headers: HeaderMap) -> Response {
    let mut inner = sim.lock();
    if let Err(resp) = sim.session(&mut inner, &sid, &headers) {
        return *resp;
    }
    inner.sessions.remove(&sid);
    StatusCode::NO_CONTENT.into_response()
}

async fn switchover_status(State(sim): State<Arc<CicSim>>, Path(sid): Path<String>, headers: HeaderMap) -> Response {
    let mut inner = sim.lock();
    if let Err(resp) = sim.session(&mut inner, &sid, &headers) {
        return *resp;
    }
    let primary = sim.cfg.pair.first().cloned().unwrap_or_default();
    let backup = sim.cfg.pair.get(1).cloned();
    axum::Json(json!({
        "isSwitchoverActive": sim.cfg.pair.len() > 1,
        "primaryHost": primary,
        "backupHost": backup,
    }))
    .into_response()
}

async fn messages(State(sim): State<Arc<CicSim>>, Path(sid): Path<String>, headers: HeaderMap) -> Response {
    let sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    if sse {
        return event_stream(sim, sid, headers);
    }
    let mut inner = sim.lock();
    let pending: Vec<Value> = match sim.session(&mut inner, &sid, &headers) {
        Ok(s) => s.pending.drain(..).collect(),
        Err(resp) => return *resp,
    };
    inner.report.polls += 1;
    inner.report.messages += pending.len() as u64;
    axum::Json(pending).into_response()
}

/// The session's messages as server-sent events, until the session is gone.
fn event_stream(sim: Arc<CicSim>, sid: String, headers: HeaderMap) -> Response {
    if let Err(resp) = sim.session(&mut sim.lock(), &sid, &headers) {
        return *resp;
    }
    // Each step yields the text of what is pending (events, or a ping after a quiet while), or
    // ends the stream once the session is gone.
    let stream = futures_util::stream::unfold((sim, sid), |(sim, sid)| async move {
        loop {
            // None: the session is gone; Some(None): woken, look again; Some(Some(text)): send.
            let step: Option<Option<Bytes>> = {
                let notified = sim.queued.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let pending: Option<Vec<Value>> = {
                    let mut inner = sim.lock();
                    let drained = inner
                        .sessions
                        .get_mut(&sid)
                        .map(|s| s.pending.drain(..).collect::<Vec<_>>());
                    if let Some(d) = &drained {
                        inner.report.messages += d.len() as u64;
                    }
                    drained
                };
                match pending {
                    None => None,
                    Some(p) if !p.is_empty() => {
                        let mut text = String::new();
                        for m in p {
                            text.push_str("data: ");
                            text.push_str(&m.to_string());
                            text.push_str("\n\n");
                        }
                        Some(Some(Bytes::from(text)))
                    }
                    Some(_) => tokio::select! {
                        _ = notified => Some(None),
                        _ = tokio::time::sleep(SSE_PING) => Some(Some(Bytes::from_static(b":ping\n\n"))),
                    },
                }
            };
            match step {
                None => return None,
                Some(Some(text)) => return Some((Ok::<_, std::io::Error>(text), (sim, sid))),
                Some(None) => continue,
            }
        }
    });
    let mut resp = Response::new(axum::body::Body::from_stream(stream));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

async fn subscribe(
    State(sim): State<Arc<CicSim>>,
    Path((sid, sub_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = match icws_json_body(&headers, &body) {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    let bad = |m: &str| icws_error(StatusCode::BAD_REQUEST, "error.request.invalidRepresentation", m);
    let Some(ids) = req["queueIds"].as_array().filter(|a| !a.is_empty()) else {
        return bad("queueIds is required and must not be empty");
    };
    let mut queues = Vec::new();
    for q in ids {
        let (Some(t), Some(n)) = (q["queueType"].as_u64(), q["queueName"].as_str()) else {
            return bad("each queueId needs queueType and queueName");
        };
        if t > 3 {
            return bad("queueType must be 0 (system), 1 (user), 2 (workgroup) or 3 (station)");
        }
        queues.push((t as u8, n.to_string()));
    }
    let Some(names) = req["attributeNames"].as_array().filter(|a| !a.is_empty()) else {
        return bad("attributeNames is required and must not be empty");
    };
    let mut attrs = Vec::new();
    for n in names {
        let Some(n) = n.as_str().filter(|n| !n.is_empty()) else {
            return bad("attributeNames must be non-empty strings");
        };
        attrs.push((n.to_string(), n.to_ascii_lowercase()));
    }
    let mut inner = sim.lock();
    let snapshot: Vec<Value> = inner
        .interactions
        .iter()
        .filter(|(_, i)| queues.iter().any(|q| i.in_queue(q)))
        .map(|(id, i)| json!({"interactionId": id, "attributes": attrs_json(i, &attrs, None)}))
        .collect();
    let s = match sim.session(&mut inner, &sid, &headers) {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    s.subs.insert(sub_id.clone(), QueueSub { queues, attrs });
    s.pending.push_back(json!({
        "__type": "urn:inin.com:queues:queueContentsMessage",
        "isDelta": false,
        "subscriptionId": sub_id,
        "interactionsAdded": snapshot,
        "interactionsChanged": [],
        "interactionsRemoved": [],
    }));
    inner.report.queue_subscriptions += 1;
    StatusCode::OK.into_response()
}

async fn unsubscribe(
    State(sim): State<Arc<CicSim>>,
    Path((sid, sub_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut inner = sim.lock();
    match sim.session(&mut inner, &sid, &headers) {
        Ok(s) => {
            s.subs.remove(&sub_id);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(resp) => *resp,
    }
}

/// A generated directory of `n` users, as `configuration/users` returns them.
fn directory(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let id = format!("agent{i:03}");
            let mut personal = json!({
                "emailAddress": format!("{id}@example.com"),
                "phoneNumberOfBusiness1": {"number": format!("+1317555{:04}", 1000 + i), "extension": format!("{}", 2000 + i)},
                "phoneNumberOfMobile": {"number": format!("+1317666{:04}", i), "extension": ""},
            });
            if i % 10 == 9 {
                // Some users lack a business email: they are not synced.
                personal.as_object_mut().expect("object").remove("emailAddress");
            }
            json!({
                "configurationId": {"id": id, "displayName": if i % 7 == 6 { String::new() } else { format!("Agent {i:03}") }},
                "personalInformationProperties": personal,
            })
        })
        .collect()
}

async fn subscribe_statuses(
    State(sim): State<Arc<CicSim>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = match icws_json_body(&headers, &body) {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    let Some(users) = req["userIds"].as_array().filter(|a| !a.is_empty()) else {
        return icws_error(
            StatusCode::BAD_REQUEST,
            "error.request.invalidRepresentation",
            "userIds is required and must not be empty",
        );
    };
    let users: Vec<String> = users.iter().filter_map(|u| u.as_str().map(str::to_string)).collect();
    let mut inner = sim.lock();
    let list: Vec<UserStatus> = users.iter().filter_map(|u| inner.statuses.get(u).cloned()).collect();
    let s = match sim.session(&mut inner, &sid, &headers) {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    s.status_users = users;
    s.pending.push_back(json!({
        "__type": "urn:inin.com:status:userStatusMessage",
        "isDelta": false,
        "userStatusList": list,
    }));
    drop(inner);
    sim.queued.notify_waiters();
    StatusCode::OK.into_response()
}

async fn unsubscribe_statuses(State(sim): State<Arc<CicSim>>, Path(sid): Path<String>, headers: HeaderMap) -> Response {
    let mut inner = sim.lock();
    match sim.session(&mut inner, &sid, &headers) {
        Ok(s) => {
            s.status_users.clear();
            StatusCode::NO_CONTENT.into_response()
        }
        Err(resp) => *resp,
    }
}

/// `Range: items=A-B` → (A, B).
fn item_range(headers: &HeaderMap) -> Option<(usize, usize)> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    let (a, b) = v.trim().strip_prefix("items=")?.split_once('-')?;
    let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

async fn users(State(sim): State<Arc<CicSim>>, Path(sid): Path<String>, headers: HeaderMap) -> Response {
    let mut inner = sim.lock();
    if let Err(resp) = sim.session(&mut inner, &sid, &headers) {
        return *resp;
    }
    let total = inner.directory.len();
    let (a, b) = match headers.get(header::RANGE) {
        None => (0, total.saturating_sub(1)),
        Some(_) => match item_range(&headers) {
            Some(r) => r,
            None => {
                return icws_error(
                    StatusCode::BAD_REQUEST,
                    "error.request.invalidRange",
                    "Range must be items=A-B",
                );
            }
        },
    };
    let page: Vec<Value> = inner.directory.iter().skip(a).take(b + 1 - a).cloned().collect();
    let last = a + page.len().saturating_sub(1);
    let mut resp = axum::Json(json!({"items": page})).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("items {a}-{last}/{total}")) {
        resp.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    resp
}

async fn report(State(sim): State<Arc<CicSim>>) -> Response {
    axum::Json(sim.report()).into_response()
}
