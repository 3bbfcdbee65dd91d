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

use bytes::{Bytes, BytesMut};

/// Largest Genesys Cloud API answer read (an events answer echoes at most one request's events).
pub const MAX_API_BODY: usize = 8 * 1024 * 1024;
/// Largest OAuth token answer read.
pub const MAX_OAUTH_BODY: usize = 64 * 1024;
/// Largest ICWS answer read for a call other than the message poll.
pub const MAX_ICWS_BODY: usize = 1024 * 1024;

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
pub async fn read_body(mut resp: reqwest::Response, limit: usize) -> Result<Bytes, ReadError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(ReadError::TooLarge { limit });
    }
    let mut out = BytesMut::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if out.len() + c.len() > limit {
                    return Err(ReadError::TooLarge { limit });
                }
                out.extend_from_slice(&c);
            }
            Ok(None) => return Ok(out.freeze()),
            Err(e) => {
                return Err(ReadError::Transport {
                    timeout: e.is_timeout(),
                    message: crate::app::describe_http_error(e),
                });
            }
        }
    }
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

    #[test]
    fn bounded_cuts_on_a_character_boundary() {
        assert_eq!(bounded("héllo", 2), "h");
        assert_eq!(bounded("abc", 10), "abc");
    }
}
