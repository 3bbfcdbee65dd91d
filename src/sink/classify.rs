//! What to do with a Genesys Cloud response: a pure function of the response, apart from any
//! backoff policy, so that it is tested without a network.
//!
//! - 2xx with the API's answer as its body: delivered. A 2xx without it (an HTML page from a
//!   proxy or captive portal, an empty body) confirms nothing: retried as an outage.
//! - 3xx: never followed; retried as an outage (the cloud does not redirect API calls, so a
//!   redirect means something between the conduit and the cloud is answering).
//! - 429, 408, and 5xx other than 501: retry — honouring `Retry-After` when the cloud sends it.
//!   A 429 pauses the whole destination, not only that request.
//! - 401 and 403 (after the sink's one token refresh): retry, pausing the destination. A refused
//!   token or a missing permission is the organization's configuration, not the events' fault;
//!   dead-lettering would empty the buffer into files until someone fixes a grant.
//! - Connection failures and timeouts: retry.
//! - Every other status (other 4xx, 501, unexpected 1xx/3xx): dead-letter, with the status and
//!   the body's message.

use std::time::{Duration, SystemTime};

/// How a request ended, as far as classification cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// An HTTP response.
    Response {
        /// Its status code.
        status: u16,
        /// Its `Retry-After` header, if any.
        retry_after: Option<&'a str>,
        /// For a 2xx: whether its body is the API's answer for the call.
        confirmed: bool,
    },
    /// No connection could be made (refused, reset, DNS, TLS).
    Connect,
    /// The request or response timed out.
    Timeout,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Confirmed: acknowledge.
    Delivered,
    /// Try again later.
    Retry {
        /// Wait at least this long (from `Retry-After`); otherwise the backoff decides.
        after: Option<Duration>,
        /// The whole destination should pause (rate limited), not only this request.
        pause_destination: bool,
        /// Bounded reason for metrics: `rate_limited`, `timeout`, `server_error`, `connect`,
        /// `unauthorized`, `redirect`, `unconfirmed`.
        reason: &'static str,
    },
    /// Refused for good: dead-letter.
    DeadLetter {
        /// Bounded reason for metrics: `client_error` or `not_implemented` or `unexpected_status`.
        reason: &'static str,
    },
}

/// Classifies one outcome; `now` reads an HTTP-date `Retry-After`.
pub fn classify(outcome: Outcome<'_>, now: SystemTime) -> Verdict {
    match outcome {
        Outcome::Connect => Verdict::Retry {
            after: None,
            pause_destination: false,
            reason: "connect",
        },
        Outcome::Timeout => Verdict::Retry {
            after: None,
            pause_destination: false,
            reason: "timeout",
        },
        Outcome::Response {
            status,
            retry_after,
            confirmed,
        } => {
            let after = retry_after.and_then(|v| parse_retry_after(v, now));
            match status {
                200..=299 if confirmed => Verdict::Delivered,
                200..=299 => Verdict::Retry {
                    after,
                    pause_destination: false,
                    reason: "unconfirmed",
                },
                300..=399 => Verdict::Retry {
                    after,
                    pause_destination: false,
                    reason: "redirect",
                },
                429 => Verdict::Retry {
                    after,
                    pause_destination: true,
                    reason: "rate_limited",
                },
                401 | 403 => Verdict::Retry {
                    after,
                    pause_destination: true,
                    reason: "unauthorized",
                },
                408 => Verdict::Retry {
                    after,
                    pause_destination: false,
                    reason: "timeout",
                },
                501 => Verdict::DeadLetter {
                    reason: "not_implemented",
                },
                500..=599 => Verdict::Retry {
                    after,
                    pause_destination: false,
                    reason: "server_error",
                },
                400..=499 => Verdict::DeadLetter { reason: "client_error" },
                _ => Verdict::DeadLetter {
                    reason: "unexpected_status",
                },
            }
        }
    }
}

/// Longest `Retry-After` honoured as given; beyond it the value is capped (a broken header must
/// not stall delivery for days).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Parses `Retry-After`: delay-seconds (what Genesys Cloud sends) or an HTTP-date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    if let Ok(secs) = v.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs).min(MAX_RETRY_AFTER));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16) -> Verdict {
        classify(
            Outcome::Response {
                status,
                retry_after: None,
                confirmed: true,
            },
            SystemTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn statuses() {
        for s in [200, 201, 202, 204] {
            assert_eq!(resp(s), Verdict::Delivered, "{s}");
        }
        for s in [401, 403, 408, 429, 500, 502, 503, 504, 599, 301, 302, 307, 308] {
            assert!(matches!(resp(s), Verdict::Retry { .. }), "{s}");
        }
        assert!(matches!(resp(302), Verdict::Retry { reason: "redirect", .. }));
        let unconfirmed = classify(
            Outcome::Response {
                status: 200,
                retry_after: None,
                confirmed: false,
            },
            SystemTime::UNIX_EPOCH,
        );
        assert!(matches!(
            unconfirmed,
            Verdict::Retry {
                reason: "unconfirmed",
                ..
            }
        ));
        for s in [400, 404, 409, 413, 422, 501, 100] {
            assert!(matches!(resp(s), Verdict::DeadLetter { .. }), "{s}");
        }
        assert!(matches!(
            resp(429),
            Verdict::Retry {
                pause_destination: true,
                ..
            }
        ));
        assert!(matches!(
            resp(503),
            Verdict::Retry {
                pause_destination: false,
                ..
            }
        ));
        let now = SystemTime::UNIX_EPOCH;
        assert!(matches!(
            classify(Outcome::Connect, now),
            Verdict::Retry { reason: "connect", .. }
        ));
        assert!(matches!(
            classify(Outcome::Timeout, now),
            Verdict::Retry { reason: "timeout", .. }
        ));
    }

    #[test]
    fn retry_after_is_honoured() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let v = classify(
            Outcome::Response {
                status: 429,
                retry_after: Some("7"),
                confirmed: false,
            },
            now,
        );
        assert_eq!(
            v,
            Verdict::Retry {
                after: Some(Duration::from_secs(7)),
                pause_destination: true,
                reason: "rate_limited"
            }
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("1.5", now), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after("999999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
    }
}
