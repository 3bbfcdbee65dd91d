//! Fault injection: the real service's failures, on demand.
//!
//! Set at start (`cic-conduit sim cloud --error-fraction ...`) or at run time through
//! `POST /sim/faults` with any subset of the fields of [`FaultUpdate`]. An outage answers every
//! request — token endpoint included — with 503 until it ends.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The faults in force.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Fraction (0..=1) of API requests answered with a 5xx (500, 502, 503 or 504).
    pub error_fraction: f64,
    /// Delay added before every answer.
    pub latency: Duration,
    /// Until this instant every request gets 503.
    pub outage_until: Option<Instant>,
    /// Fraction (0..=1) of entities returned in `unprocessedEntities`.
    pub reject_fraction: f64,
    /// Of the rejected entities, the fraction marked `isRetryable: true`.
    pub retryable_fraction: f64,
}

/// A change of faults; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FaultUpdate {
    /// See [`Faults::error_fraction`].
    pub error_fraction: Option<f64>,
    /// See [`Faults::latency`], in ms.
    pub latency_ms: Option<u64>,
    /// Start an outage of this many seconds now (0 ends one).
    pub outage_secs: Option<f64>,
    /// See [`Faults::reject_fraction`].
    pub reject_fraction: Option<f64>,
    /// See [`Faults::retryable_fraction`].
    pub retryable_fraction: Option<f64>,
    /// Change the per-client allowance (requests a minute).
    pub requests_per_minute: Option<u64>,
}

impl Faults {
    /// Applies `u` at `now`; fractions are clamped to 0..=1.
    pub fn apply(&mut self, u: &FaultUpdate, now: Instant) {
        let frac = |f: f64| if f.is_finite() { f.clamp(0.0, 1.0) } else { 0.0 };
        if let Some(f) = u.error_fraction {
            self.error_fraction = frac(f);
        }
        if let Some(ms) = u.latency_ms {
            self.latency = Duration::from_millis(ms.min(600_000));
        }
        if let Some(s) = u.outage_secs {
            self.outage_until = (s.is_finite() && s > 0.0).then(|| now + Duration::from_secs_f64(s.min(86_400.0)));
        }
        if let Some(f) = u.reject_fraction {
            self.reject_fraction = frac(f);
        }
        if let Some(f) = u.retryable_fraction {
            self.retryable_fraction = frac(f);
        }
    }

    /// Whether an outage is in force at `now`.
    pub fn in_outage(&self, now: Instant) -> bool {
        self.outage_until.is_some_and(|t| now < t)
    }
}

/// A coin that comes up true with probability `p`.
pub fn chance(p: f64) -> bool {
    p > 0.0 && fastrand::f64() < p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_apply_and_clamp() {
        let now = Instant::now();
        let mut f = Faults::default();
        f.apply(
            &FaultUpdate {
                error_fraction: Some(3.0),
                outage_secs: Some(10.0),
                reject_fraction: Some(f64::NAN),
                ..Default::default()
            },
            now,
        );
        assert_eq!(f.error_fraction, 1.0);
        assert_eq!(f.reject_fraction, 0.0);
        assert!(f.in_outage(now + Duration::from_secs(9)));
        assert!(!f.in_outage(now + Duration::from_secs(10)));
        f.apply(
            &FaultUpdate {
                outage_secs: Some(0.0),
                ..Default::default()
            },
            now,
        );
        assert!(!f.in_outage(now));
        assert!(!chance(0.0));
        assert!(chance(1.0));
    }
}
