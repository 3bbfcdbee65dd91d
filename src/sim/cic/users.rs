//! The user directory (`interfaces.md` §1): `GET .../configuration/users` with `select=` and
//! `Range` paging, the users configuration subscription
//! (`PUT`/`DELETE .../messaging/subscriptions/configuration/users/{subscriptionId}`), and users
//! added, edited and removed over time ([`CicSim::set_user`], [`CicSim::remove_user`], or a
//! scenario's `user` and `userRemoved` steps).
//!
//! A user is a configuration object: `configurationId` (`id`, the user name; `displayName`) and
//! `personalInformationProperties` (`emailAddress`, `phoneNumberOfBusiness1`,
//! `phoneNumberOfBusiness2`, `phoneNumberOfMobile`, `phoneNumberOfHome1`, `phoneNumberOfFax`,
//! each `{"number","extension"}`). A read or a subscription returns only the properties it
//! selects (`configurationId` always). After a subscription starts, its first message lists every
//! user (`isDelta:false`, all in `added`); later ones each change: `added`, `changed` (the whole
//! selected user) and `removed` (its `configurationId`). interfaces.md names the subscription but
//! not its message: the shape here, `urn:inin.com:configuration.people:usersMessage` with
//! `added`/`changed`/`removed`, is ICWS's as documented for its configuration messages
//! (unverified against a live server).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::handlers::{icws_json_body, item_range};
use super::{CicSim, MAX_PENDING_MESSAGES, icws_error};

/// The message type of a users subscription.
pub const USERS_MESSAGE: &str = "urn:inin.com:configuration.people:usersMessage";
/// The properties a user has.
pub const PROPERTIES: [&str; 2] = ["configurationId", "personalInformationProperties"];

/// The user `id` of a configuration object.
fn id_of(user: &Value) -> &str {
    user["configurationId"]["id"].as_str().unwrap_or("")
}

/// `user` with only the `selected` properties (`configurationId` always).
fn selected(user: &Value, selected: &[String]) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(obj) = user.as_object() {
        for (k, v) in obj {
            if k == "configurationId" || selected.iter().any(|s| s.eq_ignore_ascii_case(k)) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// `select=a,b` → the names; none: every property.
fn parse_select(select: Option<&str>) -> Result<Vec<String>, String> {
    let Some(s) = select else {
        return Ok(PROPERTIES.iter().map(|p| p.to_string()).collect());
    };
    let names: Vec<String> = s
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    match names
        .iter()
        .find(|n| !PROPERTIES.iter().any(|p| p.eq_ignore_ascii_case(n)))
    {
        Some(bad) => Err(format!("select: `{bad}` is not a property of a user ({PROPERTIES:?})")),
        None => Ok(names),
    }
}

/// Query of `configuration/users`.
#[derive(Debug, Deserialize)]
pub(super) struct UsersQuery {
    select: Option<String>,
}

pub(super) async fn list(
    State(sim): State<Arc<CicSim>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Query(q): Query<UsersQuery>,
) -> Response {
    let select = match parse_select(q.select.as_deref()) {
        Ok(s) => s,
        Err(why) => return icws_error(StatusCode::BAD_REQUEST, "error.request.invalidRepresentation", &why),
    };
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
    let page: Vec<Value> = inner
        .directory
        .iter()
        .skip(a)
        .take((b + 1).saturating_sub(a))
        .map(|u| selected(u, &select))
        .collect();
    inner.report.directory_reads += 1;
    drop(inner);
    let last = a + page.len().saturating_sub(1);
    let mut resp = axum::Json(json!({"items": page})).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("items {a}-{last}/{total}")) {
        resp.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    resp
}

pub(super) async fn subscribe(
    State(sim): State<Arc<CicSim>>,
    Path((sid, sub_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = match icws_json_body(&headers, &body) {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    let names: Option<Vec<String>> = req["properties"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_string)).collect());
    let select = match parse_select(names.map(|n| n.join(",")).as_deref()) {
        Ok(s) => s,
        Err(why) => return icws_error(StatusCode::BAD_REQUEST, "error.request.invalidRepresentation", &why),
    };
    let mut inner = sim.lock();
    let all: Vec<Value> = inner.directory.iter().map(|u| selected(u, &select)).collect();
    let s = match sim.session(&mut inner, &sid, &headers) {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    s.users_sub = Some((sub_id.clone(), select));
    s.pending.push_back(json!({
        "__type": USERS_MESSAGE,
        "isDelta": false,
        "subscriptionId": sub_id,
        "added": all,
        "changed": [],
        "removed": [],
    }));
    inner.report.users_subscriptions += 1;
    drop(inner);
    sim.queued.notify_waiters();
    StatusCode::OK.into_response()
}

pub(super) async fn unsubscribe(
    State(sim): State<Arc<CicSim>>,
    Path((sid, sub_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut inner = sim.lock();
    match sim.session(&mut inner, &sid, &headers) {
        Ok(s) => {
            if s.users_sub.as_ref().is_some_and(|(id, _)| *id == sub_id) {
                s.users_sub = None;
            }
            StatusCode::NO_CONTENT.into_response()
        }
        Err(resp) => *resp,
    }
}

impl CicSim {
    /// Adds `user` (a configuration object) to the directory, or replaces the user with its id,
    /// and tells the subscribed sessions.
    pub fn set_user(&self, user: Value) {
        let id = id_of(&user).to_string();
        let mut inner = self.lock();
        let added = match inner.directory.iter().position(|u| id_of(u) == id) {
            Some(i) => {
                inner.directory[i] = user.clone();
                false
            }
            None => {
                inner.directory.push(user.clone());
                true
            }
        };
        inner.report.user_changes += 1;
        let (key, gone) = (if added { "added" } else { "changed" }, Value::Null);
        self.tell_users(&mut inner, key, &user, gone);
    }

    /// Removes the user `id` from the directory, if there, and tells the subscribed sessions.
    pub fn remove_user(&self, id: &str) {
        let mut inner = self.lock();
        let Some(i) = inner.directory.iter().position(|u| id_of(u) == id) else {
            return;
        };
        let user = inner.directory.remove(i);
        inner.report.user_changes += 1;
        let removed = json!({"configurationId": user["configurationId"].clone()});
        self.tell_users(&mut inner, "removed", &Value::Null, removed);
    }

    /// The directory as it is now.
    pub fn directory(&self) -> Vec<Value> {
        self.lock().directory.clone()
    }

    fn tell_users(&self, inner: &mut super::Inner, key: &str, user: &Value, removed: Value) {
        let super::Inner { sessions, report, .. } = inner;
        for s in sessions.values_mut() {
            let Some((sub, select)) = &s.users_sub else { continue };
            let mut msg = json!({
                "__type": USERS_MESSAGE,
                "isDelta": true,
                "subscriptionId": sub,
                "added": [],
                "changed": [],
                "removed": [],
            });
            msg[key] = if key == "removed" {
                json!([removed.clone()])
            } else {
                json!([selected(user, select)])
            };
            s.pending.push_back(msg);
            if s.pending.len() > MAX_PENDING_MESSAGES {
                s.pending.pop_front();
                report.messages_dropped += 1;
            }
        }
        self.queued.notify_waiters();
    }
}

/// The statuses generated people go through.
const STATUSES: [&str; 8] = [
    "Available",
    "Do Not Disturb",
    "At Lunch",
    "Away from desk",
    "In a Meeting",
    "Available",
    "Follow Up",
    "Gone Home",
];

impl CicSim {
    /// Runs generated people activity until `shutdown`: about `statuses_per_sec` status changes a
    /// second among the directory's users, and now and then a user edited (a new mobile number,
    /// a display name added), added or removed.
    pub async fn run_people(self: Arc<Self>, statuses_per_sec: f64, shutdown: crate::shutdown::Shutdown) {
        let mut rng = fastrand::Rng::with_seed(self.seed ^ 0x5eed_0f9e_091e);
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
        let mut owed = 0.0;
        let mut added = 0usize;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait() => return,
            }
            let ids: Vec<String> = self.directory().iter().map(|u| id_of(u).to_string()).collect();
            if ids.is_empty() {
                continue;
            }
            owed += statuses_per_sec / 10.0;
            while owed >= 1.0 {
                owed -= 1.0;
                let user = &ids[rng.usize(..ids.len())];
                let status = STATUSES[rng.usize(..STATUSES.len())];
                self.set_status(user, status, status != "Gone Home", false);
            }
            // About one directory change every 5 s.
            if rng.usize(..50) == 0 {
                match rng.usize(..4) {
                    0 => {
                        added += 1;
                        let id = format!("newhire{added:03}");
                        self.set_user(json!({
                            "configurationId": {"id": id, "displayName": format!("New Hire {added}")},
                            "personalInformationProperties": {"emailAddress": format!("{id}@example.com")},
                        }));
                    }
                    1 if ids.len() > 10 => self.remove_user(&ids[rng.usize(..ids.len())]),
                    _ => {
                        let id = &ids[rng.usize(..ids.len())];
                        if let Some(mut u) = self.directory().into_iter().find(|u| id_of(u) == id) {
                            u["personalInformationProperties"]["phoneNumberOfMobile"] =
                                json!({"number": format!("+1317777{:04}", rng.u32(..10_000)), "extension": ""});
                            if u["configurationId"]["displayName"].as_str().is_some_and(str::is_empty) {
                                u["configurationId"]["displayName"] = json!(format!("Agent {id}"));
                            }
                            self.set_user(u);
                        }
                    }
                }
            }
        }
    }
}
