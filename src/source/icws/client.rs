//! The ICWS calls the source makes: login, queue, users and status subscriptions, the user
//! directory, message poll, logout.
//!
//! A [`Session`] carries what every call after login needs: the session id in the path, the
//! `ININ-ICWS-CSRF-Token` header and the cookie (name and value kept opaque). The password is
//! held as a [`Secret`] and appears in no error or log; it goes only over HTTPS, or plain HTTP to
//! a loopback host unless plain HTTP is explicitly allowed ([`may_send_password`]). No redirect
//! is followed (a 3xx is an error naming where it pointed) and every answer is read with a bound.

use serde_json::{Value, json};

use crate::config::Secret;
pub use crate::outbound::may_send_password;

/// The content type ICWS expects.
pub const CONTENT_TYPE: &str = "application/vnd.inin.icws+JSON;charset=utf-8";

/// Time allowed for one call (the event stream has its own idle limit instead).
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Why an ICWS call failed.
#[derive(Debug, thiserror::Error)]
pub enum IcwsError {
    /// 401: the session is gone; log in again.
    #[error("the ICWS session is no longer valid (401)")]
    Unauthorized,
    /// 503 to a login: this server is the backup; try the hosts of the pair.
    #[error("{host} is not the primary of its switchover pair (503); alternates: {alternates:?}")]
    NotPrimary {
        /// The host asked.
        host: String,
        /// `alternateHostList`.
        alternates: Vec<String>,
    },
    /// Another refusal, with ICWS's `errorId` and message.
    #[error("ICWS answered HTTP {status}: {error_id}: {message}")]
    Refused {
        /// Status.
        status: u16,
        /// `errorId`.
        error_id: String,
        /// `message`.
        message: String,
    },
    /// No answer.
    #[error("cannot reach ICWS at {host}: {message}")]
    Transport {
        /// The host.
        host: String,
        /// What failed.
        message: String,
    },
    /// An answer that is not what ICWS sends.
    #[error("unexpected ICWS answer: {0}")]
    BadAnswer(String),
}

impl IcwsError {
    /// Short reason for `conduit_icws_reconnects_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            IcwsError::Unauthorized => "unauthorized",
            IcwsError::NotPrimary { .. } => "not_primary",
            IcwsError::Refused { .. } => "refused",
            IcwsError::Transport { .. } => "transport",
            IcwsError::BadAnswer(_) => "bad_answer",
        }
    }
}

/// A logged-in session.
#[derive(Debug, Clone)]
pub struct Session {
    /// `scheme://host:port` of the server.
    pub base: String,
    /// `sessionId`.
    pub id: String,
    csrf: Secret,
    cookie: Secret,
    /// The hosts of the switchover pair, from the login answer.
    pub alternates: Vec<String>,
    /// The server's name.
    pub ic_server: String,
    /// The `messaging` feature's version (2 or more: server-sent events are available).
    pub messaging_version: u64,
}

/// `base` with its host replaced by `host` (same scheme and port), for `alternateHostList`.
pub fn with_host(base: &str, host: &str) -> String {
    let (scheme, rest) = base.split_once("://").unwrap_or(("https", base));
    let port = rest
        .rsplit_once(':')
        .map(|(_, p)| p.trim_end_matches('/'))
        .filter(|p| p.chars().all(|c| c.is_ascii_digit()));
    match port {
        Some(p) if !host.contains(':') => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    }
}

fn host_of(base: &str) -> String {
    base.split_once("://").map_or(base, |(_, r)| r).to_string()
}

/// Largest message poll answer read (a full snapshot of busy queues is a few MiB).
pub const MAX_POLL_BYTES: usize = 16 * 1024 * 1024;

/// An ICWS error answer: its `errorId` and `message`, or else what the body was.
async fn refusal(base: &str, resp: reqwest::Response) -> IcwsError {
    let status = resp.status().as_u16();
    if (300..400).contains(&status) {
        return IcwsError::BadAnswer(format!(
            "{} {}",
            host_of(base),
            crate::outbound::redirect_note(status, resp.headers())
        ));
    }
    let headers = resp.headers().clone();
    let body = crate::outbound::read_body(resp, 64 * 1024).await.unwrap_or_default();
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    let field = |k: &str| crate::outbound::bounded(v[k].as_str().unwrap_or(""), 500);
    let (error_id, message) = (field("errorId"), field("message"));
    let message = if error_id.is_empty() && message.is_empty() {
        if body.is_empty() {
            "no explanation in the answer".to_string()
        } else {
            format!(
                "no ICWS error in the answer ({})",
                crate::outbound::describe_unexpected(&headers, &body)
            )
        }
    } else {
        message
    };
    IcwsError::Refused {
        status,
        error_id,
        message,
    }
}

/// Reads an ICWS answer's JSON with a bound.
async fn json_body(base: &str, resp: reqwest::Response, limit: usize) -> Result<Value, IcwsError> {
    let bytes = crate::outbound::read_body(resp, limit).await.map_err(|e| match e {
        crate::outbound::ReadError::TooLarge { .. } => IcwsError::BadAnswer(e.to_string()),
        crate::outbound::ReadError::Transport { message, .. } => IcwsError::Transport {
            host: host_of(base),
            message,
        },
    })?;
    serde_json::from_slice(&bytes).map_err(|e| IcwsError::BadAnswer(format!("not JSON: {e}")))
}

fn transport(base: &str, e: reqwest::Error) -> IcwsError {
    IcwsError::Transport {
        host: host_of(base),
        message: crate::outbound::describe_error(e),
    }
}

/// Logs in at `base` as `user`.
pub async fn login(
    http: &reqwest::Client,
    base: &str,
    application: &str,
    user: &str,
    password: &Secret,
) -> Result<Session, IcwsError> {
    let body = json!({
        "__type": "urn:inin.com:connection:icAuthConnectionRequestSettings",
        "applicationName": application,
        "userID": user,
        "password": password.expose(),
    });
    let resp = http
        .post(format!("{base}/icws/connection?include=features,version"))
        .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
        .header(reqwest::header::ACCEPT_LANGUAGE, "en-us")
        .timeout(CALL_TIMEOUT)
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| transport(base, e))?;
    let status = resp.status().as_u16();
    if status == 503 {
        let v: Value = json_body(base, resp, crate::outbound::MAX_ICWS_BODY)
            .await
            .unwrap_or_default();
        let alternates = v["alternateHostList"]
            .as_array()
            .map(|a| a.iter().filter_map(|h| h.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        return Err(IcwsError::NotPrimary {
            host: host_of(base),
            alternates,
        });
    }
    if status != 201 && status != 200 {
        return Err(refusal(base, resp).await);
    }
    let cookie = resp
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
        .collect::<Vec<_>>()
        .join("; ");
    let v: Value = json_body(base, resp, crate::outbound::MAX_ICWS_BODY).await?;
    let field = |k: &str| v[k].as_str().map(str::to_string);
    let (Some(id), Some(csrf)) = (field("sessionId"), field("csrfToken")) else {
        return Err(IcwsError::BadAnswer(
            "the login answer lacks sessionId or csrfToken".into(),
        ));
    };
    let messaging_version = v["features"]
        .as_array()
        .and_then(|f| f.iter().find(|x| x["featureId"] == "messaging"))
        .and_then(|x| x["version"].as_u64())
        .unwrap_or(1);
    Ok(Session {
        base: base.to_string(),
        id,
        csrf: Secret::new(csrf),
        cookie: Secret::new(cookie),
        alternates: v["alternateHostList"]
            .as_array()
            .map(|a| a.iter().filter_map(|h| h.as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
        ic_server: field("icServer").unwrap_or_default(),
        messaging_version,
    })
}

impl Session {
    fn req(&self, http: &reqwest::Client, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        http.request(method, format!("{}/icws/{}{path}", self.base, self.id))
            .header("ININ-ICWS-CSRF-Token", self.csrf.expose())
            .header(reqwest::header::COOKIE, self.cookie.expose())
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(reqwest::header::ACCEPT_LANGUAGE, "en-us")
    }

    async fn check(&self, resp: Result<reqwest::Response, reqwest::Error>) -> Result<reqwest::Response, IcwsError> {
        let resp = resp.map_err(|e| transport(&self.base, e))?;
        match resp.status().as_u16() {
            200..=299 => Ok(resp),
            401 => Err(IcwsError::Unauthorized),
            _ => Err(refusal(&self.base, resp).await),
        }
    }

    /// Subscribes to queues `(queueType, queueName)` with `attributes`.
    pub async fn subscribe_queues(
        &self,
        http: &reqwest::Client,
        subscription: &str,
        queues: &[(u8, String)],
        attributes: &[&str],
    ) -> Result<(), IcwsError> {
        let body = json!({
            "queueIds": queues.iter().map(|(t, n)| json!({"queueType": t, "queueName": n})).collect::<Vec<_>>(),
            "attributeNames": attributes,
        });
        let path = format!("/messaging/subscriptions/queues/{subscription}");
        let resp = self
            .req(http, reqwest::Method::PUT, &path)
            .timeout(CALL_TIMEOUT)
            .body(body.to_string())
            .send()
            .await;
        self.check(resp).await.map(|_| ())
    }

    /// Users `from` to `to` (0-based, inclusive) of the directory, with the `select`ed
    /// properties, and the directory's size when the answer's `Content-Range` gives it.
    pub async fn read_users(
        &self,
        http: &reqwest::Client,
        select: &[&str],
        from: usize,
        to: usize,
    ) -> Result<(Vec<Value>, Option<usize>), IcwsError> {
        let path = format!("/configuration/users?select={}", select.join(","));
        let resp = self
            .req(http, reqwest::Method::GET, &path)
            .header(reqwest::header::RANGE, format!("items={from}-{to}"))
            .timeout(CALL_TIMEOUT)
            .send()
            .await;
        let resp = self.check(resp).await?;
        // `Content-Range: items 0-99/2500`.
        let total = resp
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit_once('/'))
            .and_then(|(_, n)| n.trim().parse::<usize>().ok());
        // The list is the answer itself or its `items`.
        let users = match json_body(&self.base, resp, MAX_POLL_BYTES).await? {
            Value::Array(a) => a,
            Value::Object(mut o) => match o.remove("items") {
                Some(Value::Array(a)) => a,
                _ => return Err(IcwsError::BadAnswer("the users answer has no items list".into())),
            },
            _ => return Err(IcwsError::BadAnswer("the users answer is not a list".into())),
        };
        Ok((users, total))
    }

    /// Subscribes to changes of the users' `properties`.
    pub async fn subscribe_users(
        &self,
        http: &reqwest::Client,
        subscription: &str,
        properties: &[&str],
    ) -> Result<(), IcwsError> {
        let body = json!({"properties": properties});
        let path = format!("/messaging/subscriptions/configuration/users/{subscription}");
        let resp = self
            .req(http, reqwest::Method::PUT, &path)
            .timeout(CALL_TIMEOUT)
            .body(body.to_string())
            .send()
            .await;
        self.check(resp).await.map(|_| ())
    }

    /// Subscribes to the statuses of `users` (replacing the list subscribed before).
    pub async fn subscribe_statuses(&self, http: &reqwest::Client, users: &[String]) -> Result<(), IcwsError> {
        let body = json!({"userIds": users});
        let resp = self
            .req(
                http,
                reqwest::Method::PUT,
                "/messaging/subscriptions/status/user-statuses",
            )
            .timeout(CALL_TIMEOUT)
            .body(body.to_string())
            .send()
            .await;
        self.check(resp).await.map(|_| ())
    }

    /// Opens the server-sent-events stream of messages (messaging feature version 2 or more).
    pub async fn open_stream(&self, http: &reqwest::Client) -> Result<reqwest::Response, IcwsError> {
        let resp = self
            .req(http, reqwest::Method::GET, "/messaging/messages")
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await;
        self.check(resp).await
    }

    /// The pending messages (removed from the server's queue).
    pub async fn poll(&self, http: &reqwest::Client) -> Result<Vec<Value>, IcwsError> {
        let resp = self
            .req(http, reqwest::Method::GET, "/messaging/messages")
            .timeout(CALL_TIMEOUT)
            .send()
            .await;
        let resp = self.check(resp).await?;
        match json_body(&self.base, resp, MAX_POLL_BYTES).await? {
            Value::Array(a) => Ok(a),
            _ => Err(IcwsError::BadAnswer("the messages answer is not an array".into())),
        }
    }

    /// `GET .../connection/switchover-status`: the pair as the server sees it.
    pub async fn switchover_status(&self, http: &reqwest::Client) -> Result<Value, IcwsError> {
        let resp = self
            .req(http, reqwest::Method::GET, "/connection/switchover-status")
            .timeout(CALL_TIMEOUT)
            .send()
            .await;
        let resp = self.check(resp).await?;
        json_body(&self.base, resp, crate::outbound::MAX_ICWS_BODY).await
    }

    /// Logs out (best effort).
    pub async fn logout(&self, http: &reqwest::Client) {
        let _ = self.req(http, reqwest::Method::DELETE, "/connection").send().await;
    }
}

/// The ICWS client: TLS verified (with `ca_file`'s certificates trusted too), through `proxy`
/// (or the environment's), connect timeout; per-call timeouts are set on each call, since the
/// event stream stays open.
pub fn http_client(
    ca_file: Option<&std::path::Path>,
    proxy: Option<&crate::config::ProxyConfig>,
) -> Result<reqwest::Client, crate::config::ConfigError> {
    use crate::config::ConfigError;
    let b = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .redirect(crate::outbound::no_redirects())
        .user_agent(concat!("cic-conduit/", env!("CARGO_PKG_VERSION")));
    let b = crate::outbound::with_roots(b, ca_file, "sources.icws.ca_file")?;
    let b = crate::outbound::with_proxy(b, proxy, "sources.icws.proxy")?;
    b.build()
        .map_err(|e| ConfigError::invalid("sources.icws", format!("cannot build its HTTP client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_goes_over_plain_http_only_to_loopback_or_when_allowed() {
        for ok in [
            "https://cic01:8019",
            "http://127.0.0.1:8018",
            "http://localhost:8018",
            "http://[::1]:8018",
            "http://127.0.0.2",
        ] {
            assert!(may_send_password(ok, false), "{ok}");
        }
        for refused in [
            "http://cic01:8018",
            "http://10.0.0.5:8018",
            "http://localhost.evil:80",
            "ftp://x",
        ] {
            assert!(!may_send_password(refused, false), "{refused}");
        }
        assert!(may_send_password("http://cic01:8018", true));
        assert!(!may_send_password("ftp://x", true));
    }

    #[test]
    fn alternate_hosts_keep_scheme_and_port() {
        assert_eq!(with_host("https://cic01:8019", "cic02"), "https://cic02:8019");
        assert_eq!(with_host("http://127.0.0.1:8018", "127.0.0.2"), "http://127.0.0.2:8018");
        assert_eq!(with_host("https://cic01", "cic02"), "https://cic02");
        assert_eq!(with_host("http://a:1", "b:2"), "http://b:2");
    }
}
