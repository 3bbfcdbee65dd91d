//! The simulator's HTTP handlers: one function per ICWS call (see the [module notes](super)).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::*;

pub(super) fn icws_json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, Box<Response>> {
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

pub(super) async fn login(State(sim): State<Arc<CicSim>>, headers: HeaderMap, body: Bytes) -> Response {
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
                users_sub: None,
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

pub(super) async fn logout(State(sim): State<Arc<CicSim>>, Path(sid): Path<String>, headers: HeaderMap) -> Response {
    let mut inner = sim.lock();
    if let Err(resp) = sim.session(&mut inner, &sid, &headers) {
        return *resp;
    }
    inner.sessions.remove(&sid);
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn switchover_status(
    State(sim): State<Arc<CicSim>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
) -> Response {
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

pub(super) async fn messages(State(sim): State<Arc<CicSim>>, Path(sid): Path<String>, headers: HeaderMap) -> Response {
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
pub(super) fn event_stream(sim: Arc<CicSim>, sid: String, headers: HeaderMap) -> Response {
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

pub(super) async fn unsubscribe(
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
pub(super) fn directory(n: usize) -> Vec<Value> {
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

pub(super) async fn subscribe_statuses(
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

pub(super) async fn unsubscribe_statuses(
    State(sim): State<Arc<CicSim>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
) -> Response {
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
pub(super) fn item_range(headers: &HeaderMap) -> Option<(usize, usize)> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    let (a, b) = v.trim().strip_prefix("items=")?.split_once('-')?;
    let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

pub(super) async fn report(State(sim): State<Arc<CicSim>>) -> Response {
    axum::Json(sim.report()).into_response()
}
