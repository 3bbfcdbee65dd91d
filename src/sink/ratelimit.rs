//! Pacing from Genesys Cloud's rate-limit headers, so a steady backlog drain stays under the
//! limit instead of bouncing off it.
//!
//! Every response carries `inin-ratelimit-count` (requests used in the current window),
//! `inin-ratelimit-allowed` (the window's allowance) and `inin-ratelimit-reset` (seconds until the
//! window resets). [`Pacer`] spreads the remaining allowance (or the configured share of it)
//! evenly over the time left. Requests of other programs using the same OAuth client are in the
//! count, so the pacing leaves them what they use.
//!
//! The reset comes in whole seconds, rounded up, so each response says the window ends at or
//! after the moment it really does (up to a second after). The pacer keeps the earliest end any
//! response of the window implied, which closes in on the true end as responses arrive at
//! different fractions of a second; pacing to the rounded figure of the last response alone left
//! up to a second of each minute unused.

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

/// How far past the window's end a response's reset may point and still describe the same
/// window: the header's rounding to whole seconds.
const RESET_ROUNDING: Duration = Duration::from_secs(1);

/// Spacing between requests to one destination.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// Fraction of the allowance this conduit may use (the rest is headroom).
    share: f64,
    /// The current window's figures: the latest allowance, the highest count seen in it.
    last: Option<RateLimit>,
    /// When the current window ends: the earliest end its responses implied.
    window_end: Option<Instant>,
}

impl Pacer {
    /// A pacer using `share` (0 < share <= 1) of each window's allowance.
    pub fn new(share: f64) -> Self {
        Pacer {
            share: share.clamp(0.01, 1.0),
            last: None,
            window_end: None,
        }
    }

    /// Uses `share` from now on (a reload).
    pub fn set_share(&mut self, share: f64) {
        self.share = share.clamp(0.01, 1.0);
    }

    /// Records the headers of a response received at `at`. Responses of one window may arrive
    /// out of order (several requests in flight): the window keeps its highest count and its
    /// earliest end; a response whose window ends later than the rounding allows starts a new one.
    pub fn observe(&mut self, rl: RateLimit, at: Instant) {
        let end = at + rl.reset;
        match (self.last, self.window_end) {
            (Some(prev), Some(e)) if at < e && end <= e + RESET_ROUNDING => {
                self.window_end = Some(e.min(end));
                self.last = Some(RateLimit {
                    count: rl.count.max(prev.count),
                    ..rl
                });
            }
            _ => {
                self.window_end = Some(end);
                self.last = Some(rl);
            }
        }
    }

    /// The current window's figures (the highest count seen in it).
    pub fn last(&self) -> Option<RateLimit> {
        self.last
    }

    /// How long to wait at `now` before the next request, with `in_flight` requests sent but not
    /// yet answered (the window counted them, the headers seen so far did not): the time left in
    /// the window spread over the requests this conduit may still make in it; the whole rest of
    /// the window when none are left. Zero before any headers were seen, and once the window
    /// the headers described has ended.
    pub fn interval(&self, now: Instant, in_flight: u64) -> Duration {
        let (Some(rl), Some(end)) = (self.last, self.window_end) else {
            return Duration::ZERO;
        };
        let reset = end.saturating_duration_since(now);
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

    #[test]
    fn the_window_end_closes_in_on_the_true_one_from_rounded_resets() {
        // The window truly ends at t0 + 30.3 s; each response rounds the time left up to whole
        // seconds. The pacer ends up within a tenth of a second of the true end.
        let t0 = Instant::now();
        let true_end = t0 + Duration::from_millis(30_300);
        let mut p = Pacer::new(1.0);
        for (i, ms) in (0..30).map(|i| (i, i * 1_000 + 250 + (i % 10) * 100)) {
            let at = t0 + Duration::from_millis(ms);
            let left = true_end.saturating_duration_since(at).as_secs_f64().ceil();
            p.observe(
                RateLimit {
                    count: i + 1,
                    allowed: 300,
                    reset: Duration::from_secs_f64(left),
                },
                at,
            );
        }
        let end = p.window_end.unwrap();
        assert!(end >= true_end, "never before the true end");
        assert!(
            end - true_end <= Duration::from_millis(100),
            "{:?} late",
            end - true_end
        );
        // Budget left at the end: the wait is the time to the estimated end, not a rounded one.
        let at = t0 + Duration::from_millis(29_950);
        assert!(p.interval(at, 300) <= Duration::from_millis(450));
    }

    #[test]
    fn responses_out_of_order_keep_the_highest_count_and_a_new_window_starts_afresh() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1.0);
        let rl = |count, reset| RateLimit {
            count,
            allowed: 300,
            reset: Duration::from_secs(reset),
        };
        p.observe(rl(120, 40), t0);
        // An answer to an earlier request arrives after a later one.
        p.observe(rl(118, 40), t0 + Duration::from_millis(10));
        assert_eq!(p.last().unwrap().count, 120);
        // The next window: a small count and a reset well past this window's end.
        p.observe(rl(2, 60), t0 + Duration::from_secs(40));
        assert_eq!(p.last().unwrap().count, 2);
        assert_eq!(p.window_end, Some(t0 + Duration::from_secs(100)));
        // 298 left over 60 s.
        let i = p.interval(t0 + Duration::from_secs(40), 0);
        assert!(
            i > Duration::from_millis(200) && i < Duration::from_millis(203),
            "{i:?}"
        );
    }

    #[test]
    fn a_lower_limit_mid_window_takes_effect_at_once() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1.0);
        let rl = |count, allowed| RateLimit {
            count,
            allowed,
            reset: Duration::from_secs(30),
        };
        p.observe(rl(100, 300), t0);
        p.observe(rl(101, 100), t0);
        // Over the new allowance: wait for the window to end.
        assert_eq!(p.interval(t0, 0), Duration::from_secs(30));
        p.observe(rl(102, 600), t0);
        let i = p.interval(t0, 0);
        assert!(i > Duration::from_millis(60) && i < Duration::from_millis(61), "{i:?}");
    }
}
