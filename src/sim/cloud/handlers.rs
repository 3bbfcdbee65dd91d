//! The answers every route shares (Genesys Cloud's error body, a body checked against its
//! model) and the routes outside the journey and OAuth: the home division, the token check, and
//! the simulator's own `/sim` endpoints and middleware.

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::*;

/// A Genesys Cloud error body: `{"message","code","status","contextId","details"}`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    error_with_details(status, code, message, &[])
}

/// An error body (`ErrorBody`) listing each fault found: in `errors`, one `ErrorBody` with its
/// message each, and in `details`, one `Detail` naming its field.
pub fn error_with_details(status: StatusCode, code: &str, message: &str, details: &[String]) -> Response {
    let errors: Vec<serde_json::Value> = details
        .iter()
        .map(|d| json!({"message": d, "code": code, "status": status.as_u16()}))
        .collect();
    let details: Vec<serde_json::Value> = details
        .iter()
        .map(|d| json!({"errorCode": code, "fieldName": d.split(' ').next().unwrap_or("")}))
        .collect();
    let body = json!({
        "message": message,
        "code": code,
        "status": status.as_u16(),
        "contextId": "",
        "details": details,
        "errors": errors,
    });
    (status, axum::Json(body)).into_response()
}

/// A 2xx answer whose body is checked against its model first: an answer that breaks the
/// model is the simulator's own bug, answered 500 with the faults so that no test passes on it.
pub fn answer(status: StatusCode, model: &str, body: serde_json::Value) -> Response {
    let faults = models::check(model, &body, "");
    if faults.is_empty() {
        (status, axum::Json(body)).into_response()
    } else {
        error_with_details(
            StatusCode::INTERNAL_SERVER_ERROR,
            "simulator.model",
            &format!("the simulator's answer breaks the {model} model"),
            &faults,
        )
    }
}

/// A JSON request body of at most `max` bytes, or the answer refusing it (415 for another
/// content type, 413 when too large, 400 when not JSON).
pub fn json_body(headers: &HeaderMap, body: &[u8], max: usize) -> Result<serde_json::Value, Box<Response>> {
    let json_ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !json_ct {
        return Err(Box::new(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported.media.type",
            "Content-Type must be application/json",
        )));
    }
    if body.len() > max {
        return Err(Box::new(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request.too.large",
            &format!("The request body exceeds {max} bytes"),
        )));
    }
    serde_json::from_slice(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            "bad.request",
            &format!("The request body is not valid JSON: {e}"),
        ))
    })
}

/// A 400 naming each way `body` breaks `model`, if it does.
pub fn refuse_unless(model: &str, body: &serde_json::Value) -> Result<(), Box<Response>> {
    let faults = models::check(model, body, "");
    if faults.is_empty() {
        return Ok(());
    }
    Err(Box::new(error_with_details(
        StatusCode::BAD_REQUEST,
        "invalid.property",
        &format!("The request body is not a valid {model}"),
        &faults,
    )))
}

/// `resp` with the rate-limit headers of `standing`.
pub fn rated(mut resp: Response, standing: &Standing) -> Response {
    rate_headers(&mut resp, standing);
    resp
}

/// The id of the organization's home division.
pub const HOME_DIVISION: &str = "2a5b4ae0-7f8c-4e51-9d3a-6c1f0e8b7d21";

pub(super) async fn home_division(State(sim): State<Arc<CloudSim>>, headers: HeaderMap) -> Response {
    let (_, standing) = match sim.admit(&headers) {
        Ok(ok) => ok,
        Err(resp) => return *resp,
    };
    let mut resp = answer(
        StatusCode::OK,
        "AuthzDivision",
        json!({
            "id": HOME_DIVISION,
            "name": "Home",
            "description": "",
            "homeDivision": true,
            "selfUri": format!("/api/v2/authorization/divisions/{HOME_DIVISION}"),
        }),
    );
    rate_headers(&mut resp, &standing);
    resp
}

/// Outages and added latency, before anything else answers.
pub(super) async fn apply_faults(
    State(sim): State<Arc<CloudSim>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let (outage, latency) = {
        let mut inner = sim.lock();
        let outage = inner.faults.in_outage(Instant::now());
        if outage {
            inner.report.outage_refusals += 1;
        }
        (outage, inner.faults.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if outage {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service.unavailable",
            "The service is temporarily unavailable",
        );
    }
    next.run(req).await
}

pub(super) async fn sim_report(State(sim): State<Arc<CloudSim>>) -> Response {
    axum::Json(sim.report()).into_response()
}

#[derive(Deserialize)]
pub(super) struct Offset {
    offset: Option<usize>,
}

pub(super) async fn sim_events(State(sim): State<Arc<CloudSim>>, Query(o): Query<Offset>) -> Response {
    axum::Json(sim.received(o.offset.unwrap_or(0))).into_response()
}

pub(super) async fn sim_faults(State(sim): State<Arc<CloudSim>>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<FaultUpdate>(&body) {
        Ok(u) => {
            sim.set_faults(&u);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            "bad.request",
            &format!("bad fault update: {e}"),
        ),
    }
}

pub(super) async fn sim_revoke(State(sim): State<Arc<CloudSim>>) -> Response {
    sim.revoke_tokens();
    StatusCode::NO_CONTENT.into_response()
}

pub(super) fn rate_headers(resp: &mut Response, s: &Standing) {
    let h = resp.headers_mut();
    h.insert("inin-ratelimit-count", HeaderValue::from(s.count.min(s.allowed)));
    h.insert("inin-ratelimit-allowed", HeaderValue::from(s.allowed));
    h.insert("inin-ratelimit-reset", HeaderValue::from(s.reset_secs));
}

/// Every answer gets an `ININ-Correlation-Id`, and error bodies carry it as `contextId`.
pub(super) async fn correlate(State(sim): State<Arc<CloudSim>>, resp: Response) -> Response {
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

pub(super) async fn not_found(req: Request) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not.found",
        &format!("No resource at {} {}", req.method(), req.uri().path()),
    )
}

pub(super) async fn tokens_me(State(sim): State<Arc<CloudSim>>, headers: HeaderMap) -> Response {
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
