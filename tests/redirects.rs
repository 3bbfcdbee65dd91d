//! Only Genesys Cloud confirms, and secrets go only where they were configured: against real
//! HTTP servers on loopback that answer with redirects to another server (which counts what
//! reaches it) or with a 200 that is not the API's answer.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use cic_conduit::app;
use cic_conduit::config;
use common::*;
use serde_json::json;

/// A server counting every request that reaches it: where a redirect points.
async fn elsewhere() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().fallback(any(move || {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            ([(header::CONTENT_TYPE, "text/html")], "<html>ok</html>").into_response()
        }
    }));
    (serve(app).await, hits)
}

async fn serve(app: Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    format!("http://{addr}")
}

fn redirect(status: u16, to: &str) -> Response {
    let mut h = HeaderMap::new();
    h.insert(header::LOCATION, to.parse().unwrap());
    (StatusCode::from_u16(status).unwrap(), h, "").into_response()
}

fn token() -> Response {
    axum::Json(json!({"access_token": "tok", "token_type": "bearer", "expires_in": 3600})).into_response()
}

/// A conduit whose organization is at `api` (API calls) and `login` (OAuth), with one event
/// pushed; returns it once it has tried to deliver a few times.
async fn conduit(dir: &std::path::Path, api: &str, login: &str) -> app::Running {
    let text = config_text(dir, "", "").replace(
        "api_base_url = \"http://127.0.0.1:9\"\nlogin_base_url = \"http://127.0.0.1:9\"\n",
        &format!(
            "api_base_url = \"{api}\"\nlogin_base_url = \"{login}\"\nclient_id = \"c\"\nclient_secret = \"very-secret-value\"\n"
        ),
    ) + "\n[sinks.journey]\nconfiguration_id = \"cfg\"\nexternal_source_id = \"x\"\nmax_age_ms = 10\nretry_initial_ms = 20\nretry_max_ms = 50\n";
    let r = app::start(config::load_str(&text, Vec::new()).unwrap()).await.unwrap();
    push_items(&r.addr.to_string(), &[item("1000000001", "C")]).await;
    r
}

async fn health(r: &app::Running) -> serde_json::Value {
    serde_json::from_str(&get_text(&format!("http://{}/health", r.addr)).await).unwrap()
}

#[tokio::test]
async fn a_redirected_or_unconfirmed_answer_confirms_nothing() {
    let (other, hits) = elsewhere().await;
    for (mode, reason) in [
        ("302", "redirect"),
        ("307", "redirect"),
        ("html", "unconfirmed"),
        ("empty", "unconfirmed"),
    ] {
        let to = format!("{other}/collect");
        let m = mode.to_string();
        let api = serve(Router::new().route(
            "/api/v2/journey/externalevents/configurations/cfg/events",
            post(move || {
                let (m, to) = (m.clone(), to.clone());
                async move {
                    match m.as_str() {
                        "302" => redirect(302, &to),
                        "307" => redirect(307, &to),
                        "html" => ([(header::CONTENT_TYPE, "text/html")], "<html>thanks</html>").into_response(),
                        _ => StatusCode::OK.into_response(),
                    }
                }
            }),
        ))
        .await;
        let login = serve(Router::new().route("/oauth/token", post(|| async { token() }))).await;
        let dir = tempfile::tempdir().unwrap();
        let r = conduit(dir.path(), &api, &login).await;
        let label = format!("conduit_sink_retries_total{{reason=\"{reason}\",sink=\"journey\"}}");
        wait_for(Duration::from_secs(20), &label, || {
            metric(&r.metrics.render(), &label) >= 3.0
        })
        .await;
        let text = r.metrics.render();
        assert_eq!(
            metric(&text, "conduit_sink_events_delivered_total{sink=\"journey\"}"),
            0.0,
            "{mode}"
        );
        assert_eq!(r.buffer.stats().backlog_records, 2, "{mode}: nothing left the buffer");
        let h = health(&r).await;
        assert_eq!(h["destinations"][0]["state"], "retrying", "{mode}: {h}");
        let msg = h["destinations"][0]["last_error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        if reason == "redirect" {
            assert!(msg.contains(&other), "{mode}: the location is named: {msg}");
        } else {
            assert!(msg.contains("not a confirmation"), "{mode}: {msg}");
        }
        r.stop().await.unwrap();
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "nothing (no event, no token) reached the other host"
    );
}

#[tokio::test]
async fn the_client_secret_is_not_sent_where_the_login_host_redirects() {
    let (other, hits) = elsewhere().await;
    let to = format!("{other}/oauth/token");
    let login = serve(Router::new().route(
        "/oauth/token",
        post(move || {
            let to = to.clone();
            async move { redirect(307, &to) }
        }),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let r = conduit(dir.path(), "http://127.0.0.1:9", &login).await;
    let label = "conduit_sink_requests_total{sink=\"journey\",status=\"oauth\"}";
    wait_for(Duration::from_secs(20), label, || {
        metric(&r.metrics.render(), label) >= 2.0
    })
    .await;
    let h = health(&r).await;
    let msg = h["destinations"][0]["last_error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("redirect") && msg.contains(&other), "{msg}");
    assert!(!h.to_string().contains("very-secret-value"));
    r.stop().await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the secret went nowhere else");
}

#[tokio::test]
async fn the_icws_password_is_not_sent_where_a_login_redirects() {
    let (other, hits) = elsewhere().await;
    let to = format!("{other}/icws/connection");
    let cic = serve(
        Router::new()
            .route(
                "/icws/connection",
                post(move || {
                    let to = to.clone();
                    async move { redirect(307, &to) }
                }),
            )
            .fallback(any(|| async { StatusCode::INTERNAL_SERVER_ERROR })),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), "", "")
        + &format!(
            "[sources.icws]\nenabled = true\nhosts = [\"{cic}\"]\npassword = \"cic-password\"\nworkgroups = [\"Support\"]\nreconnect_max_ms = 1000\n"
        );
    let r = app::start(config::load_str(&text, Vec::new()).unwrap()).await.unwrap();
    let last = Arc::new(std::sync::Mutex::new(String::new()));
    wait_until(Duration::from_secs(20), "the login error in /health", || {
        let (addr, last) = (r.addr, last.clone());
        async move {
            let h: serde_json::Value = serde_json::from_str(&get_text(&format!("http://{addr}/health")).await).unwrap();
            let e = h["cic"]["last_error"].as_str().unwrap_or("").to_string();
            let found = e.contains("redirect");
            *last.lock().unwrap() = e;
            found
        }
    })
    .await;
    let last = last.lock().unwrap().clone();
    assert!(last.contains(&other), "the location is named: {last}");
    r.stop().await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the password went nowhere else");
}

#[test]
fn plain_http_to_another_machine_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let base = config_text(dir.path(), "", "");
    let icws = |host: &str, extra: &str| {
        format!(
            "{base}[sources.icws]\nenabled = true\nhosts = [\"{host}\"]\npassword = \"p\"\nworkgroups = [\"Support\"]\n{extra}"
        )
    };
    let err = config::load_str(&icws("http://cic01:8018", ""), Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("sources.icws.hosts") && err.contains("in clear"), "{err}");
    assert!(config::load_str(&icws("http://cic01:8018", "allow_plain_http = true"), Vec::new()).is_ok());
    assert!(config::load_str(&icws("http://127.0.0.1:8018", ""), Vec::new()).is_ok());
    assert!(config::load_str(&icws("https://cic01:8019", ""), Vec::new()).is_ok());
}
