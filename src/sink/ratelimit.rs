//! Pacing from Genesys Cloud's rate-limit headers, so a steady backlog drain stays under the
//! limit instead of bouncing off it.
//!
//! Every response carries `inin-ratelimit-count` (requests used in the current window),
//! `inin-ratelimit-allowed` (the window's allowance) and `inin-ratelimit-reset` (seconds until the
//! window resets). [`Pacer`] spreads the remaining allowance evenly over the time left, keeping a
//! small reserve for other clients of the same OAuth client and for clock skew.

use std::time::{Duration, Instant};

/// One response's rate-limit headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests used in the current window.
    pub count: u64,
    /// Requests allowed in the window.
    pub allowed: u64,
    /// Time until the window resets.
    pub reset: Duration,
}

impl RateLimit {
    /// Reads the three headers through `get` (a header lookup); `None` unless all three parse.
    pub fn from_headers<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<RateLimit> {
        let num = |name: &str| get(name).and_then(|v| v.trim().parse::<u64>().ok());
        let reset = get("inin-ratelimit-reset").and_then(|v| v.trim().parse::<f64>().ok())?;
        if !reset.is_finite() || reset < 0.0 {
            return None;
        }
        Some(RateLimit {
            count: num("inin-ratelimit-count")?,
            allowed: num("inin-ratelimit-allowed")?,
            reset: Duration::from_secs_f64(reset.min(3600.0)),
        })
    }

    /// Requests left in this window.
    pub fn remaining(&self) -> u64 {
        self.allowed.saturating_sub(self.count)
    }
}

/// Spacing between requests to one destination.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// Fraction of the allowance this conduit may use (the rest is headroom).
    share: f64,
    last: Option<(RateLimit, Instant)>,
}

impl Pacer {
    /// A pacer using `share` (0 < share <= 1) of each window's allowance.
    pub fn new(share: f64) -> Self {
        Pacer {
            share: share.clamp(0.01, 1.0),
            last: None,
        }
    }

    /// Uses `share` from now on (a reload).
    pub fn set_share(&mut self, share: f64) {
        self.share = share.clamp(0.01, 1.0);
    }

    /// Records the headers of a response received at `at`.
    pub fn observe(&mut self, rl: RateLimit, at: Instant) {
        self.last = Some((rl, at));
    }

    /// The most recent headers.
    pub fn last(&self) -> Option<RateLimit> {
        self.last.map(|(rl, _)| rl)
    }

    /// How long to wait at `now` before the next request, with `in_flight` requests sent but not
    /// yet answered (the window counted them, the headers seen so far did not): the time left in
    /// the window spread over the requests this conduit may still make in it; the whole rest of
    /// the window when none are left. Zero before any headers were seen, and once the window
    /// the headers described has ended.
    pub fn interval(&self, now: Instant, in_flight: u64) -> Duration {
        let Some((rl, at)) = self.last else {
            return Duration::ZERO;
        };
        let reset = rl.reset.saturating_sub(now.saturating_duration_since(at));
        if reset.is_zero() {
            return Duration::ZERO;
        }
        let budget = (rl.allowed as f64 * self.share).floor() as u64;
        let left = budget.saturating_sub(rl.count + in_flight);
        if left == 0 {
            return reset;
        }
        reset / left.min(u64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(count: &str, allowed: &str, reset: &str) -> Option<RateLimit> {
        RateLimit::from_headers(|name| match name {
            "inin-ratelimit-count" => Some(count),
            "inin-ratelimit-allowed" => Some(allowed),
            "inin-ratelimit-reset" => Some(reset),
            _ => None,
        })
    }

    #[test]
    fn parses_and_refuses_garbage() {
        let rl = headers("30", "300", "45").unwrap();
        assert_eq!(
            rl,
            RateLimit {
                count: 30,
                allowed: 300,
                reset: Duration::from_secs(45)
            }
        );
        assert_eq!(rl.remaining(), 270);
        assert_eq!(headers("x", "300", "45"), None);
        assert_eq!(headers("1", "300", "-4"), None);
        assert_eq!(RateLimit::from_headers(|_| None), None);
    }

    #[test]
    fn spreads_the_remaining_allowance_over_the_window() {
        let t0 = Instant::now();
        let mut p = Pacer::new(0.95);
        assert_eq!(p.interval(t0, 0), Duration::ZERO);
        // 300 a minute, fresh window: 285 usable over 60 s.
        p.observe(
            RateLimit {
                count: 0,
                allowed: 300,
                reset: Duration::from_secs(60),
            },
            t0,
        );
        let i = p.interval(t0, 0);
        assert!(
            i > Duration::from_millis(200) && i < Duration::from_millis(215),
            "{i:?}"
        );
        // Requests in flight use up budget the headers do not show yet.
        assert!(p.interval(t0, 85) > Duration::from_millis(290));
        // Budget used up: wait for the reset, counted from when the headers came.
        p.observe(
            RateLimit {
                count: 290,
                allowed: 300,
                reset: Duration::from_secs(12),
            },
            t0,
        );
        assert_eq!(p.interval(t0, 0), Duration::from_secs(12));
        assert_eq!(p.interval(t0 + Duration::from_secs(5), 0), Duration::from_secs(7));
        assert_eq!(p.interval(t0 + Duration::from_secs(13), 0), Duration::ZERO);
        // A steady drain at the paced rate never exceeds the budget within a window.
        let mut count = 0u64;
        let mut t = Duration::ZERO;
        let window = Duration::from_secs(60);
        while t < window {
            p.observe(
                RateLimit {
                    count,
                    allowed: 300,
                    reset: window - t,
                },
                t0,
            );
            let step = p.interval(t0, 0);
            if step >= window - t {
                break;
            }
            t += step.max(Duration::from_millis(1));
            count += 1;
        }
        assert!(count <= 285, "{count} requests in one window");
        assert!(count >= 270, "pacing wastes the allowance: {count}");
    }
}
