//! Retrying: the one backoff every retry loop uses — delivery, ICWS logins, `setup` — so they
//! all back off alike.

use std::time::Duration;

use backon::BackoffBuilder;

/// A capped exponential backoff with full jitter (a uniformly random delay up to the capped
/// exponential one), never below 10 ms.
pub struct Backoff {
    inner: backon::ExponentialBackoff,
    max: Duration,
}

impl Backoff {
    /// Starting at `initial`, doubling, capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            inner: backon::ExponentialBuilder::default()
                .with_min_delay(initial)
                .with_max_delay(max)
                .with_factor(2.0)
                .without_max_times()
                .build(),
            max,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let cap = self.inner.next().unwrap_or(self.max);
        cap.mul_f64(fastrand::f64()).max(Duration::from_millis(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_and_capped() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<Duration> = (0..40).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(2)));
        assert!(delays.iter().all(|d| *d >= Duration::from_millis(10)));
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 30, "full jitter spreads the delays");
        // After the cap is reached, delays spread over the whole 0..cap range.
        assert!(delays[10..].iter().any(|d| *d > Duration::from_secs(1)));
    }
}
