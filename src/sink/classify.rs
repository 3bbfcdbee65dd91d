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

/// Why a request is tried again (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// 429.
    RateLimited,
    /// 408, or no answer in time.
    Timeout,
    /// 5xx other than 501.
    ServerError,
    /// No connection.
    Connect,
    /// 401 or 403 after the token refresh.
    Unauthorized,
    /// A 3xx (never followed).
    Redirect,
    /// A 2xx whose body is not the API's answer.
    Unconfirmed,
}

impl RetryReason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            RetryReason::RateLimited => "rate_limited",
            RetryReason::Timeout => "timeout",
            RetryReason::ServerError => "server_error",
            RetryReason::Connect => "connect",
            RetryReason::Unauthorized => "unauthorized",
            RetryReason::Redirect => "redirect",
            RetryReason::Unconfirmed => "unconfirmed",
        }
    }
}

/// Why a request is refused for good (a metric label and the dead letters' reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// Another 4xx.
    ClientError,
    /// 501.
    NotImplemented,
    /// A status the API does not answer (1xx, or beyond 599).
    UnexpectedStatus,
}

impl RefusalReason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            RefusalReason::ClientError => "client_error",
            RefusalReason::NotImplemented => "not_implemented",
            RefusalReason::UnexpectedStatus => "unexpected_status",
        }
    }
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
        /// Why.
        reason: RetryReason,
    },
    /// Refused for good: dead-letter.
    DeadLetter {
        /// Why.
        reason: RefusalReason,
    },
}

/// Classifies one outcome; `now` reads an HTTP-date `Retry-After`.
pub fn classify(outcome: Outcome<'_>, now: SystemTime) -> Verdict {
    match outcome {
        Outcome::Connect => Verdict::Retry {
            after: None,
            pause_destination: false,
            reason: RetryReason::Connect,
        },
        Outcome::Timeout => Verdict::Retry {
            after: None,
            pause_destination: false,
            reason: RetryReason::Timeout,
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
                    reason: RetryReason::Unconfirmed,
                },
                300..=399 => Verdict::Retry {
                    after,
                    pause_destination: false,
                    reason: RetryReason::Redirect,
                },
                429 => Verdict::Retry {
                    after,
                    pause_destination: true,
                    reason: RetryReason::RateLimited,
                },
                401 | 403 => Verdict::Retry {
                    after,
                    pause_destination: true,
                    reason: RetryReason::Unauthorized,
                },
                408 => Verdict::Retry {
                    after,
                    pause_destination: false,
                    reason: RetryReason::Timeout,
                },
                501 => Verdict::DeadLetter {
                    reason: RefusalReason::NotImplemented,
                },
                500..=599 => Verdict::Retry {
                    after,
                    pause_destination: false,
                    reason: RetryReason::ServerError,
                },
                400..=499 => Verdict::DeadLetter {
                    reason: RefusalReason::ClientError,
                },
                _ => Verdict::DeadLetter {
                    reason: RefusalReason::UnexpectedStatus,
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
        assert!(matches!(
            resp(302),
            Verdict::Retry {
                reason: RetryReason::Redirect,
                ..
            }
        ));
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
                reason: RetryReason::Unconfirmed,
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
            Verdict::Retry {
                reason: RetryReason::Connect,
                ..
            }
        ));
        assert!(matches!(
            classify(Outcome::Timeout, now),
            Verdict::Retry {
                reason: RetryReason::Timeout,
                ..
            }
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
                reason: RetryReason::RateLimited
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
