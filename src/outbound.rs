//! Outbound HTTP: what every call to Genesys Cloud, its login host and ICWS shares.
//!
//! Promises:
//! - **No redirect is followed.** The clients are built with [`no_redirects`]: a 3xx comes back
//!   as it is, and callers treat it as an error that names where it pointed ([`redirect_note`]).
//!   Events, customer phone numbers, a bearer token or the ICWS password never go to a host the
//!   configuration did not name, and an answer from anywhere else confirms nothing.
//! - **Every body is read with a bound** ([`read_body`]): the read stops as soon as more than the
//!   limit has arrived (a `Content-Length` over it is refused before reading), so a huge or
//!   endless answer costs at most the limit in memory.
//! - **A password goes only where it is safe** ([`may_send_password`]): over HTTPS, or plain HTTP
//!   to a loopback host unless plain HTTP is explicitly allowed.
//! - **Proxies as the company runs them** ([`with_proxy`], [`with_roots`]): a destination's
//!   configured proxy (with basic authentication, its password a secret, and hosts reached
//!   directly), else the environment's `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`/`NO_PROXY`; extra
//!   CA certificates for a proxy that inspects TLS. Certificates are always verified; a proxy
//!   that refuses the tunnel is an outage (retried), said as such ([`describe_error`]).

use bytes::{Bytes, BytesMut};

use crate::config::{ConfigError, ProxyConfig};

/// Routes `b`'s calls through `proxy` (the config at `key`, e.g. `organization.proxy`); with
/// none, through the environment's proxy variables, as reqwest reads them.
pub fn with_proxy(
    b: reqwest::ClientBuilder,
    proxy: Option<&ProxyConfig>,
    key: &str,
) -> Result<reqwest::ClientBuilder, ConfigError> {
    let Some(p) = proxy else { return Ok(b) };
    if p.url == "none" {
        return Ok(b.no_proxy());
    }
    let url = reqwest::Url::parse(&p.url)
        .map_err(|e| ConfigError::invalid(&format!("{key}.url"), format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::invalid(
            &format!("{key}.url"),
            "must be http://host:port or https://host:port (or \"none\")",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::invalid(
            &format!("{key}.url"),
            "holds credentials: put the user in username and the password in password (a secret)",
        ));
    }
    let mut px =
        reqwest::Proxy::all(url.as_str()).map_err(|e| ConfigError::invalid(&format!("{key}.url"), e.to_string()))?;
    match (&p.username, &p.password) {
        (Some(user), password) => {
            let password = password
                .as_ref()
                .map(|s| s.resolve(&format!("{key}.password")))
                .transpose()?;
            px = px.basic_auth(user, password.as_ref().map_or("", |s| s.expose()));
        }
        (None, Some(_)) => {
            return Err(ConfigError::invalid(
                &format!("{key}.password"),
                "given without username",
            ));
        }
        (None, None) => {}
    }
    if !p.no_proxy.is_empty() {
        px = px.no_proxy(reqwest::NoProxy::from_string(&p.no_proxy.join(",")));
    }
    Ok(b.proxy(px))
}

/// Trusts the PEM certificates in `ca_file` (the config at `key`) besides the platform's roots.
pub fn with_roots(
    mut b: reqwest::ClientBuilder,
    ca_file: Option<&std::path::Path>,
    key: &str,
) -> Result<reqwest::ClientBuilder, ConfigError> {
    let Some(path) = ca_file else { return Ok(b) };
    let pem =
        std::fs::read(path).map_err(|e| ConfigError::invalid(key, format!("cannot read {}: {e}", path.display())))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| ConfigError::invalid(key, format!("{} is not PEM certificates: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ConfigError::invalid(
            key,
            format!("{} holds no certificate", path.display()),
        ));
    }
    for c in certs {
        b = b.add_root_certificate(c);
    }
    Ok(b)
}

/// Where calls to `destination` (an `https://` or `http://` URL) go, for `check-config`: the
/// proxy and where it was set, or `direct`. Never shows credentials.
pub fn describe_proxy(proxy: Option<&ProxyConfig>, key: &str, destination: &str) -> String {
    let host = reqwest::Url::parse(destination)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let bypassed = |list: &str| {
        list.split(',').map(str::trim).filter(|e| !e.is_empty()).any(|e| {
            e == "*" || host == e.trim_start_matches('.') || host.ends_with(&format!(".{}", e.trim_start_matches('.')))
        })
    };
    match proxy {
        Some(p) if p.url == "none" => format!("direct ({key}.url = \"none\")"),
        Some(p) if bypassed(&p.no_proxy.join(",")) => format!("direct ({host} is in {key}.no_proxy)"),
        Some(p) => format!(
            "{}{} ({key})",
            p.url,
            p.username.as_deref().map(|u| format!(" as {u}")).unwrap_or_default()
        ),
        None => {
            let env = |names: &[&'static str]| -> Option<(&'static str, String)> {
                names
                    .iter()
                    .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()).map(|v| (*n, v)))
            };
            let https = destination.starts_with("https:");
            let vars: &[&str] = if https {
                &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
            } else {
                &["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
            };
            match (env(vars), env(&["NO_PROXY", "no_proxy"])) {
                (Some((n, _)), Some((np, list))) if bypassed(&list) => {
                    format!("direct ({host} is in {np}; {n} is set)")
                }
                (Some((n, v)), _) => {
                    let shown = reqwest::Url::parse(&v)
                        .map(|mut u| {
                            let _ = u.set_username("");
                            let _ = u.set_password(None);
                            u.to_string().trim_end_matches('/').to_string()
                        })
                        .unwrap_or_else(|_| "(not a URL)".into());
                    format!("{shown} (from {n})")
                }
                (None, _) => "direct".into(),
            }
        }
    }
}

/// Largest Genesys Cloud API answer read (an events answer echoes at most one request's events).
pub const MAX_API_BODY: usize = 8 * 1024 * 1024;
/// Largest OAuth token answer read.
pub const MAX_OAUTH_BODY: usize = 64 * 1024;
/// Largest ICWS answer read for a call other than the message poll.
pub const MAX_ICWS_BODY: usize = 1024 * 1024;

/// An HTTP error for logs, `/health` and error messages: reqwest's message without the URL (it
/// may carry query parameters), followed by its causes — where the reason lives, such as
/// "invalid peer certificate: UnknownIssuer".
pub fn describe_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    // What the client says when a proxy answers CONNECT with anything but 200.
    if out.contains("tunnel error") {
        out = format!(
            "the proxy refused to open a tunnel to the destination (CONNECT not allowed, or the proxy's credentials refused): {out}"
        );
    }
    out
}

/// The redirect policy of every outbound client: none.
pub fn no_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::none()
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// More than the limit.
    #[error("the answer is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The connection failed or timed out while reading.
    #[error("the answer could not be read: {message}")]
    Transport {
        /// What failed (no URL).
        message: String,
        /// Whether it timed out.
        timeout: bool,
    },
}

/// Reads `resp`'s body, refusing more than `limit` bytes while reading.
///
/// Chunks are kept as they come (each in an allocation of its own size) and joined once at the
/// end: growing one buffer by doubling would leave each outgrown buffer resident until the
/// allocator returns it, several times the limit for a large answer.
pub async fn read_body(mut resp: reqwest::Response, limit: usize) -> Result<Bytes, ReadError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(ReadError::TooLarge { limit });
    }
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0;
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                total += c.len();
                if total > limit {
                    return Err(ReadError::TooLarge { limit });
                }
                // A copy: the chunk may share a larger read buffer it would keep alive.
                chunks.push(Bytes::copy_from_slice(&c));
            }
            Ok(None) => break,
            Err(e) => {
                return Err(ReadError::Transport {
                    timeout: e.is_timeout(),
                    message: describe_error(e),
                });
            }
        }
    }
    if chunks.len() == 1 {
        return Ok(chunks.pop().unwrap_or_default());
    }
    let mut out = BytesMut::with_capacity(total);
    for c in chunks {
        out.extend_from_slice(&c);
    }
    Ok(out.freeze())
}

/// For a 3xx answer: what to say about it, naming where it pointed.
pub fn redirect_note(status: u16, headers: &reqwest::header::HeaderMap) -> String {
    let location = headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|l| bounded(l, 200))
        .unwrap_or_else(|| "nowhere (no Location header)".into());
    format!("answered HTTP {status}, a redirect to {location}; redirects are not followed")
}

/// The first `max` bytes of `s` (on a character boundary).
pub fn bounded(s: &str, max: usize) -> String {
    let mut cut = s.len().min(max);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s[..cut].to_string()
}

/// A short description of a body that is not the expected JSON: its content type and start.
pub fn describe_unexpected(headers: &reqwest::header::HeaderMap, body: &[u8]) -> String {
    let ct = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("no content type");
    let start = String::from_utf8_lossy(&body[..body.len().min(80)]).replace(['\n', '\r'], " ");
    format!("{} bytes of {ct}: {start:?}", body.len())
}

/// Whether `base` may carry a password or other credential: HTTPS, or plain HTTP to a loopback host, or plain
/// HTTP explicitly allowed.
pub fn may_send_password(base: &str, allow_plain_http: bool) -> bool {
    let Some(rest) = base.strip_prefix("http://") else {
        return base.starts_with("https://");
    };
    allow_plain_http || is_loopback(rest)
}

/// Whether the host of `host[:port][/...]` is a loopback address or `localhost`.
fn is_loopback(rest: &str) -> bool {
    let hostport = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        hostport.rsplit_once(':').map_or(hostport, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_notes_name_the_location() {
        let mut h = reqwest::header::HeaderMap::new();
        assert!(redirect_note(302, &h).contains("no Location"));
        h.insert(
            reqwest::header::LOCATION,
            "https://elsewhere.example/x".parse().unwrap(),
        );
        let n = redirect_note(307, &h);
        assert!(n.contains("307") && n.contains("https://elsewhere.example/x"), "{n}");
    }

    /// A real server on loopback answering `GET /<n>` with `n` bytes, streamed in 1 KiB chunks
    /// without a length (`/len/<n>` with a `Content-Length`).
    async fn server() -> String {
        use axum::extract::Path;
        use axum::routing::get;
        let app = axum::Router::new()
            .route(
                "/{n}",
                get(|Path(n): Path<usize>| async move {
                    let chunks = (0..n.div_ceil(1024))
                        .map(move |i| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; (n - i * 1024).min(1024)])));
                    axum::body::Body::from_stream(futures_util::stream::iter(chunks))
                }),
            )
            .route("/len/{n}", get(|Path(n): Path<usize>| async move { vec![b'y'; n] }));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn bodies_are_read_up_to_the_limit_and_no_further() {
        let base = server().await;
        let http = reqwest::Client::new();
        let get = |path: String| {
            let http = http.clone();
            async move { http.get(path).send().await.unwrap() }
        };
        let body = read_body(get(format!("{base}/5000")).await, 5000).await.unwrap();
        assert_eq!(body.len(), 5000);
        assert!(matches!(
            read_body(get(format!("{base}/5001")).await, 5000).await,
            Err(ReadError::TooLarge { limit: 5000 })
        ));
        // An announced length over the limit is refused before reading.
        assert!(matches!(
            read_body(get(format!("{base}/len/5001")).await, 5000).await,
            Err(ReadError::TooLarge { .. })
        ));
        assert_eq!(
            read_body(get(format!("{base}/len/10")).await, 5000)
                .await
                .unwrap()
                .len(),
            10
        );
    }

    #[test]
    fn bounded_cuts_on_a_character_boundary() {
        assert_eq!(bounded("héllo", 2), "h");
        assert_eq!(bounded("abc", 10), "abc");
    }
}
