//! Per-OAuth-client rate limiting, as Genesys Cloud applies it: a fixed window, the
//! `inin-ratelimit-*` headers on every answer, and 429 with `Retry-After` beyond the allowance.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The window every allowance is counted over.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Where a request stands against its client's allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// Requests counted in this window, this one included.
    pub count: u64,
    /// The allowance.
    pub allowed: u64,
    /// Whole seconds until the window resets (at least 1).
    pub reset_secs: u64,
    /// Over the allowance: answer 429.
    pub limited: bool,
}

/// Fixed windows per client id.
#[derive(Debug)]
pub struct Limiter {
    allowed: u64,
    windows: HashMap<String, (Instant, u64)>,
}

impl Limiter {
    /// `allowed` requests per client per minute.
    pub fn new(allowed: u64) -> Self {
        Limiter {
            allowed,
            windows: HashMap::new(),
        }
    }

    /// Changes the allowance (takes effect at once).
    pub fn set_allowed(&mut self, allowed: u64) {
        self.allowed = allowed;
    }

    /// Counts one request of `client` at `now`.
    pub fn count(&mut self, client: &str, now: Instant) -> Standing {
        let w = self.windows.entry(client.to_string()).or_insert((now, 0));
        if now.duration_since(w.0) >= WINDOW {
            *w = (now, 0);
        }
        w.1 += 1;
        let left = WINDOW.saturating_sub(now.duration_since(w.0));
        Standing {
            count: w.1,
            allowed: self.allowed,
            reset_secs: left.as_secs_f64().ceil().max(1.0) as u64,
            limited: w.1 > self.allowed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_client_and_window() {
        let mut l = Limiter::new(3);
        let t0 = Instant::now();
        for i in 1..=3 {
            let s = l.count("a", t0);
            assert_eq!((s.count, s.limited), (i, false));
        }
        let s = l.count("a", t0 + Duration::from_secs(20));
        assert!(s.limited);
        assert_eq!(s.reset_secs, 40);
        assert!(!l.count("b", t0).limited, "clients are counted apart");
        let s = l.count("a", t0 + WINDOW);
        assert_eq!((s.count, s.limited), (1, false), "a new window starts afresh");
    }
}
