//! `POST /oauth/token`: the client-credentials grant.
//!
//! `Authorization: Basic base64(client_id:client_secret)`, form body
//! `grant_type=client_credentials` → `{"access_token","token_type":"bearer","expires_in"}`.
//! Bad or missing credentials: 401 `{"error":"invalid_client"}`; another grant type: 400
//! `{"error":"unsupported_grant_type"}` (the OAuth 2.0 error shape, which the login host uses).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;

use super::{CloudSim, Token};

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "description": description, "error_description": description})),
    )
        .into_response()
}

/// The credentials in a Basic `Authorization` header.
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

pub(super) async fn token(State(sim): State<Arc<CloudSim>>, headers: HeaderMap, body: Bytes) -> Response {
    sim.lock().report.token_requests += 1;
    let form_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !form_ok {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded",
        );
    }
    let grant: Option<String> = url_form_value(&body, "grant_type");
    let creds = basic(&headers);
    let known = creds.as_ref().is_some_and(|(id, secret)| {
        sim.cfg
            .clients
            .iter()
            .any(|(cid, csecret)| cid == id && csecret == secret)
    });
    if !known {
        sim.lock().report.auth_failures += 1;
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    if grant.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    let (client, _) = creds.expect("checked above");
    let access_token = sim.new_id();
    let lifetime = sim.cfg.token_lifetime;
    {
        let mut inner = sim.lock();
        inner.tokens.insert(
            access_token.clone(),
            Token {
                client,
                expires_at: Instant::now() + lifetime,
            },
        );
        inner.report.tokens_issued += 1;
    }
    let body = json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": lifetime.as_secs(),
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// One value of an `application/x-www-form-urlencoded` body.
fn url_form_value(body: &[u8], key: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}
