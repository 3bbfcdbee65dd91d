//! The OAuth token cache against the Genesys Cloud simulator, over loopback HTTP.

use std::sync::Arc;
use std::time::Duration;

use cic_conduit::config::Secret;
use cic_conduit::shutdown::Shutdown;
use cic_conduit::sim::cloud::{CloudSim, SimConfig};
use cic_conduit::sink::oauth::{Credentials, OAuthError, TokenSource};

async fn sim(cfg: SimConfig) -> (Arc<CloudSim>, String, Shutdown) {
    let sim = CloudSim::new(cfg);
    let sd = Shutdown::new();
    let addr = sim.spawn("127.0.0.1:0".parse().unwrap(), sd.clone()).await.unwrap();
    (sim, format!("http://{addr}"), sd)
}

fn source(base: &str, secret: &str) -> (TokenSource, prometheus::IntCounter) {
    let refreshes = prometheus::IntCounter::new("t", "t").unwrap();
    let creds = Credentials {
        client_id: "sim-client".into(),
        client_secret: Secret::new(secret),
    };
    (
        TokenSource::new(reqwest::Client::new(), base, creds, refreshes.clone()),
        refreshes,
    )
}

async fn me(base: &str, token: &Secret) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{base}/api/v2/tokens/me"))
        .bearer_auth(token.expose())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_token_is_fetched_once_and_shared() {
    let (sim, base, sd) = sim(SimConfig::default()).await;
    let (src, refreshes) = source(&base, "sim-secret");
    let a = src.token().await.unwrap();
    let b = src.token().await.unwrap();
    assert_eq!(a.expose(), b.expose());
    assert_eq!(refreshes.get(), 1);
    let resp = me(&base, &a).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers().contains_key("inin-correlation-id"));
    assert_eq!(resp.headers()["inin-ratelimit-allowed"], "300");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["OAuthClient"]["id"], "sim-client");
    assert_eq!(sim.report().tokens_issued, 1);
    sd.trigger();
}

#[tokio::test]
async fn wrong_secret_is_refused_without_revealing_it() {
    let (sim, base, sd) = sim(SimConfig::default()).await;
    let (src, _) = source(&base, "not-the-secret");
    let err = src.token().await.unwrap_err();
    assert!(matches!(err, OAuthError::Refused { status: 401, .. }), "{err}");
    assert!(!err.is_retryable());
    assert!(!format!("{err} {err:?}").contains("not-the-secret"));
    assert_eq!(sim.report().auth_failures, 1);
    sd.trigger();
}

#[tokio::test]
async fn a_revoked_token_is_replaced_after_a_401() {
    let (sim, base, sd) = sim(SimConfig::default()).await;
    let (src, refreshes) = source(&base, "sim-secret");
    let old = src.token().await.unwrap();
    sim.revoke_tokens();
    let resp = me(&base, &old).await;
    assert_eq!(resp.status().as_u16(), 401);
    let correlation = resp.headers()["inin-correlation-id"].to_str().unwrap().to_string();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], 401);
    assert_eq!(
        body["contextId"],
        correlation.as_str(),
        "error bodies carry the correlation id"
    );
    let new = src.after_unauthorized(&old).await.unwrap();
    assert_ne!(new.expose(), old.expose());
    assert_eq!(me(&base, &new).await.status().as_u16(), 200);
    // A second 401 for the same old token does not throw away the new one.
    let again = src.after_unauthorized(&old).await.unwrap();
    assert_eq!(again.expose(), new.expose());
    assert_eq!(refreshes.get(), 2);
    sd.trigger();
}

#[tokio::test]
async fn an_expired_token_is_refused_by_the_simulator() {
    let cfg = SimConfig {
        token_lifetime: Duration::from_millis(1),
        ..SimConfig::default()
    };
    let (sim, base, sd) = sim(cfg).await;
    // expires_in is whole seconds (0 here), which the cache refuses as no token at all.
    let (src, _) = source(&base, "sim-secret");
    assert!(matches!(src.token().await, Err(OAuthError::BadAnswer(_))));
    assert_eq!(sim.report().tokens_issued, 1);
    sd.trigger();
}

#[tokio::test]
async fn beyond_the_allowance_comes_429_with_retry_after_and_early_retries_are_counted() {
    let cfg = SimConfig {
        requests_per_minute: 3,
        ..SimConfig::default()
    };
    let (sim, base, sd) = sim(cfg).await;
    let (src, _) = source(&base, "sim-secret");
    let t = src.token().await.unwrap();
    for i in 1..=3 {
        let r = me(&base, &t).await;
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.headers()["inin-ratelimit-count"], i.to_string().as_str());
    }
    let r = me(&base, &t).await;
    assert_eq!(r.status().as_u16(), 429);
    let retry_after: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert!(r.headers().contains_key("inin-ratelimit-reset"));
    let verdict = cic_conduit::sink::classify::classify(
        cic_conduit::sink::classify::Outcome::Response {
            status: 429,
            retry_after: r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
            confirmed: false,
        },
        std::time::SystemTime::now(),
    );
    assert!(matches!(
        verdict,
        cic_conduit::sink::classify::Verdict::Retry {
            pause_destination: true,
            after: Some(_),
            ..
        }
    ));
    // Coming back at once, before Retry-After has passed, is what a well-behaved client never does.
    assert_eq!(me(&base, &t).await.status().as_u16(), 429);
    let report = sim.report();
    assert_eq!((report.rate_limited, report.early_retries), (2, 1));
    sd.trigger();
}
