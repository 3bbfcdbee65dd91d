//! SCIM 2.0 users (`interfaces.md` §2): `/api/v2/scim/v2/users` — list with `filter`
//! (`userName eq "x"`, `externalId eq "x"`), `startIndex` and `count`; create; get; PATCH; delete.
//!
//! As strict as the real service: bodies are checked against the SDK models
//! ([`super::models`]: `ScimV2CreateUser`, `ScimV2PatchRequest`) and answers are built to theirs
//! (`ScimV2User`, `ScimUserListResponse`, `ScimError`), as `application/scim+json`. `userName`
//! must be an email address and is unique in the organization without regard to case (a second
//! one is a 409 `uniqueness`); `externalId` is matched case exact; phone types are the SDK's.
//! `meta.version` is the ETag (also sent as `ETag`): a PATCH whose `If-Match` names another
//! version is refused 400 `invalidVers`. A PATCH takes `add`, `replace` and `remove` on
//! `displayName`, `userName`, `active`, `externalId`, `title`, `phoneNumbers` (whole, or
//! `phoneNumbers[type eq "work"]` and its `.value`) and `emails`; any other path is 400
//! `invalidPath`. A list page holds at most [`MAX_PAGE`] users: a larger `count` is cut to it and
//! counted in the report (`scim_oversized_pages`), so a test can hold a client to the limit.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{CloudSim, models, rated};
use patch::apply;
pub(super) use user::Users;
use user::{Stored, etag, invalid, shown, user_name_of};

mod patch;
mod user;
use crate::timefmt;

/// The most users a list page holds.
pub const MAX_PAGE: usize = 25;
/// Largest request body accepted (bytes).
const MAX_BODY: usize = 256 * 1024;
/// `schemas` of a PATCH request.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// An answer of `model` as `application/scim+json` (a 500 if the simulator breaks the model).
fn scim_answer(status: StatusCode, model: &str, body: Value, version: Option<u64>) -> Response {
    let faults = models::check(model, &body, "");
    if !faults.is_empty() {
        return super::error_with_details(
            StatusCode::INTERNAL_SERVER_ERROR,
            "simulator.model",
            &format!("the simulator's answer breaks the {model} model"),
            &faults,
        );
    }
    let mut resp = (status, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/scim+json"));
    if let Some(v) = version
        && let Ok(tag) = HeaderValue::from_str(&etag(v))
    {
        h.insert(header::ETAG, tag);
    }
    resp
}

/// A SCIM error (`ScimError`).
fn scim_error(status: StatusCode, scim_type: Option<&str>, detail: &str) -> Response {
    let mut body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": status.as_u16().to_string(),
        "detail": detail,
    });
    if let Some(t) = scim_type {
        body["scimType"] = json!(t);
    }
    scim_answer(status, "ScimError", body, None)
}

/// The JSON body of a SCIM request, or why not.
fn scim_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, Box<Response>> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(ct.starts_with("application/scim+json") || ct.starts_with("application/json")) {
        return Err(Box::new(scim_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            "Content-Type must be application/scim+json",
        )));
    }
    if body.len() > MAX_BODY {
        return Err(Box::new(scim_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            &format!("The request body exceeds {MAX_BODY} bytes"),
        )));
    }
    serde_json::from_slice(body).map_err(|e| {
        Box::new(scim_error(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            &format!("not JSON: {e}"),
        ))
    })
}

/// List query.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListQuery {
    filter: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
}

/// `attribute eq "value"`, for `userName` and `externalId`.
fn parse_filter(f: &str) -> Option<(String, String)> {
    let (attr, rest) = f.trim().split_once(char::is_whitespace)?;
    let (op, value) = rest.trim().split_once(char::is_whitespace)?;
    let value = value.trim().strip_prefix('"')?.strip_suffix('"')?;
    let attr = attr.to_ascii_lowercase();
    (op.eq_ignore_ascii_case("eq") && (attr == "username" || attr == "externalid"))
        .then(|| (attr, value.replace("\\\"", "\"")))
}

pub(super) async fn list(State(sim): State<Arc<CloudSim>>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    let standing = admitted!(sim, headers);
    let filter = match q.filter.as_deref().map(parse_filter) {
        None => None,
        Some(Some(f)) => Some(f),
        Some(None) => {
            sim.lock().report.scim_invalid_requests += 1;
            let resp = scim_error(
                StatusCode::BAD_REQUEST,
                Some("invalidFilter"),
                "filter must be `userName eq \"...\"` or `externalId eq \"...\"`",
            );
            return rated(resp, &standing);
        }
    };
    let mut inner = sim.lock();
    inner.report.scim_list_requests += 1;
    let asked = q.count.unwrap_or(MAX_PAGE as i64).max(0) as usize;
    if asked > MAX_PAGE {
        inner.report.scim_oversized_pages += 1;
    }
    let count = asked.min(MAX_PAGE);
    let start = q.start_index.unwrap_or(1).max(1) as usize;
    let matches = |u: &&Stored| match &filter {
        None => true,
        Some((attr, value)) if attr == "username" => user_name_of(&u.attrs).eq_ignore_ascii_case(value),
        Some((_, value)) => u.attrs.get("externalId").and_then(Value::as_str) == Some(value.as_str()),
    };
    let total = inner.users.by_id.values().filter(matches).count();
    // Only the page is rendered: a large organization is listed page by page.
    let page: Vec<Value> = inner
        .users
        .by_id
        .iter()
        .filter(|(_, u)| matches(u))
        .skip(start - 1)
        .take(count)
        .map(|(id, u)| shown(id, u))
        .collect();
    drop(inner);
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": page.len(),
        "Resources": page,
    });
    rated(
        scim_answer(StatusCode::OK, "ScimUserListResponse", body, None),
        &standing,
    )
}

pub(super) async fn create(State(sim): State<Arc<CloudSim>>, headers: HeaderMap, body: Bytes) -> Response {
    let standing = admitted!(sim, headers);
    let resp = create_user(&sim, &headers, &body);
    rated(resp, &standing)
}

/// A request refused as invalid: counted, and answered with a SCIM error.
fn refused(sim: &CloudSim, status: StatusCode, scim_type: Option<&str>, detail: &str) -> Response {
    sim.lock().report.scim_invalid_requests += 1;
    scim_error(status, scim_type, detail)
}

fn create_user(sim: &CloudSim, headers: &HeaderMap, body: &Bytes) -> Response {
    let v = match scim_body(headers, body) {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    let faults = models::check("ScimV2CreateUser", &v, "");
    if let Some(f) = faults.first() {
        return refused(sim, StatusCode::BAD_REQUEST, Some("invalidValue"), f);
    }
    let mut attrs = v.as_object().cloned().unwrap_or_default();
    attrs.remove("schemas");
    attrs.remove("password");
    attrs.entry("active").or_insert(json!(true));
    if let Some(why) = invalid(&attrs) {
        return refused(sim, StatusCode::BAD_REQUEST, Some("invalidValue"), &why);
    }
    let mut inner = sim.lock();
    if inner.users.taken(user_name_of(&attrs), None) {
        inner.report.scim_conflicts += 1;
        let detail = format!("userName {} is already in use", user_name_of(&attrs));
        return scim_error(StatusCode::CONFLICT, Some("uniqueness"), &detail);
    }
    let id = sim.new_object_id();
    let stored = Stored {
        attrs,
        version: 1,
        modified_ms: timefmt::now_ms(),
    };
    let body = shown(&id, &stored);
    inner.users.by_id.insert(id, stored);
    inner.report.scim_users_created += 1;
    drop(inner);
    scim_answer(StatusCode::CREATED, "ScimV2User", body, Some(1))
}

pub(super) async fn get_one(State(sim): State<Arc<CloudSim>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let standing = admitted!(sim, headers);
    let found = sim.lock().users.by_id.get(&id).cloned();
    let resp = match found {
        Some(u) => scim_answer(StatusCode::OK, "ScimV2User", shown(&id, &u), Some(u.version)),
        None => scim_error(StatusCode::NOT_FOUND, None, &format!("user {id} not found")),
    };
    rated(resp, &standing)
}

pub(super) async fn delete(State(sim): State<Arc<CloudSim>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let standing = admitted!(sim, headers);
    let mut inner = sim.lock();
    let resp = if inner.users.by_id.remove(&id).is_some() {
        inner.report.scim_users_deleted += 1;
        StatusCode::NO_CONTENT.into_response()
    } else {
        scim_error(StatusCode::NOT_FOUND, None, &format!("user {id} not found"))
    };
    drop(inner);
    rated(resp, &standing)
}

pub(super) async fn patch(
    State(sim): State<Arc<CloudSim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let standing = admitted!(sim, headers);
    let resp = patch_user(&sim, &headers, &id, &body);
    rated(resp, &standing)
}

fn patch_user(sim: &CloudSim, headers: &HeaderMap, id: &str, body: &Bytes) -> Response {
    let v = match scim_body(headers, body) {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    if let Some(f) = models::check("ScimV2PatchRequest", &v, "").first() {
        return refused(sim, StatusCode::BAD_REQUEST, Some("invalidSyntax"), f);
    }
    if !v["schemas"].as_array().is_some_and(|s| s.iter().any(|x| x == PATCH_OP)) {
        return refused(
            sim,
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            &format!("schemas must name {PATCH_OP}"),
        );
    }
    let ops = v["Operations"].as_array().cloned().unwrap_or_default();
    let if_match = headers.get(header::IF_MATCH).and_then(|h| h.to_str().ok());
    let mut inner = sim.lock();
    let Some(current) = inner.users.by_id.get(id).cloned() else {
        return scim_error(StatusCode::NOT_FOUND, None, &format!("user {id} not found"));
    };
    if let Some(tag) = if_match
        && tag != "*"
        && tag != etag(current.version)
    {
        inner.report.scim_stale_versions += 1;
        return scim_error(
            StatusCode::BAD_REQUEST,
            Some("invalidVers"),
            &format!("If-Match {tag} is not the user's version {}", etag(current.version)),
        );
    }
    let mut attrs = current.attrs.clone();
    for (i, op) in ops.iter().enumerate() {
        if let Err(why) = apply(&mut attrs, op) {
            inner.report.scim_invalid_requests += 1;
            return scim_error(
                StatusCode::BAD_REQUEST,
                Some(why.0),
                &format!("Operations[{i}]: {}", why.1),
            );
        }
    }
    if let Some(why) = invalid(&attrs) {
        inner.report.scim_invalid_requests += 1;
        return scim_error(StatusCode::BAD_REQUEST, Some("invalidValue"), &why);
    }
    if inner.users.taken(user_name_of(&attrs), Some(id)) {
        inner.report.scim_conflicts += 1;
        let detail = format!("userName {} is already in use", user_name_of(&attrs));
        return scim_error(StatusCode::CONFLICT, Some("uniqueness"), &detail);
    }
    let stored = Stored {
        attrs,
        version: current.version + 1,
        modified_ms: timefmt::now_ms(),
    };
    let body = shown(id, &stored);
    let version = stored.version;
    inner.users.by_id.insert(id.to_string(), stored);
    inner.report.scim_users_patched += 1;
    inner.report.scim_patch_operations += ops.len() as u64;
    drop(inner);
    scim_answer(StatusCode::OK, "ScimV2User", body, Some(version))
}

impl CloudSim {
    /// The organization's users, as `GET .../users/{id}` shows each.
    pub fn scim_users(&self) -> Vec<Value> {
        let inner = self.lock();
        inner.users.by_id.iter().map(|(id, u)| shown(id, u)).collect()
    }

    /// The SCIM user whose `externalId` is `external_id`, as the API shows it.
    pub fn scim_user(&self, external_id: &str) -> Option<Value> {
        let inner = self.lock();
        inner
            .users
            .by_id
            .iter()
            .find(|(_, u)| u.attrs.get("externalId").and_then(Value::as_str) == Some(external_id))
            .map(|(id, u)| shown(id, u))
    }
}
