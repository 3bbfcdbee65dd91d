//! The last hour of delivery, for the Integration Health page's charts: the events confirmed and
//! the accept-to-confirm latency, sampled from the metrics once a minute.
//!
//! Promises: bounded (the last hour's samples, [`KEPT`]); read from the same counters
//! `/metrics` shows, so the charts and Prometheus agree; a chart has a point from start-up on (the
//! page adds one for the minute in progress, [`History::points`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::core::{Collector, Metric};

use crate::metrics::{Metrics, bucket_quantile};
use crate::shutdown::Shutdown;

/// How often a sample is taken.
pub const EVERY: Duration = Duration::from_secs(60);

/// Samples kept: an hour's, and the one before it (each point is the change between two).
pub const KEPT: usize = 61;

/// The counters at one moment.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    at_ms: i64,
    delivered: u64,
    /// The accept-to-confirm histogram's cumulative bucket counts, by upper bound.
    buckets: Vec<(f64, f64)>,
    count: f64,
}

/// One interval of the charts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// When the interval ended, ms since the epoch.
    pub at_ms: i64,
    /// Events confirmed per minute over the interval.
    pub per_minute: f64,
    /// Median accept-to-confirm of the events confirmed in it, in seconds.
    pub p50: Option<f64>,
    /// 99th percentile, in seconds.
    pub p99: Option<f64>,
}

/// The samples, oldest first.
pub struct History {
    metrics: Arc<Metrics>,
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    /// A history of `metrics`, its first sample taken now.
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        let h = Arc::new(History {
            metrics,
            samples: Mutex::new(VecDeque::with_capacity(KEPT)),
        });
        h.sample();
        h
    }

    /// Samples every [`EVERY`] until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        while shutdown.sleep(EVERY).await {
            self.sample();
        }
    }

    fn now(&self) -> Sample {
        let delivered = self
            .metrics
            .sink
            .delivered
            .collect()
            .iter()
            .flat_map(|f| f.get_metric())
            .map(|m| m.get_counter().value() as u64)
            .sum();
        let h = self.metrics.sink.accept_to_confirm.metric();
        let h = h.get_histogram();
        let mut buckets: Vec<(f64, f64)> = h
            .get_bucket()
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count() as f64))
            .collect();
        let count = h.get_sample_count() as f64;
        buckets.push((f64::INFINITY, count));
        Sample {
            at_ms: crate::timefmt::now_ms(),
            delivered,
            buckets,
            count,
        }
    }

    fn sample(&self) {
        let s = self.now();
        let mut samples = crate::locks::lock(&self.samples);
        if samples.len() == KEPT {
            samples.pop_front();
        }
        samples.push_back(s);
    }

    /// The chart's points, oldest first: one per interval between samples, and one for the
    /// interval in progress (from the last sample to now).
    pub fn points(&self) -> Vec<Point> {
        let mut all: Vec<Sample> = crate::locks::lock(&self.samples).iter().cloned().collect();
        all.push(self.now());
        all.windows(2).filter_map(|w| point(&w[0], &w[1])).collect()
    }
}

/// The interval from `a` to `b`; none when it is too short to say anything.
fn point(a: &Sample, b: &Sample) -> Option<Point> {
    let ms = b.at_ms - a.at_ms;
    if ms < 1000 {
        return None;
    }
    let delivered = b.delivered.saturating_sub(a.delivered) as f64;
    let buckets: Vec<(f64, f64)> = b
        .buckets
        .iter()
        .zip(&a.buckets)
        .map(|((bound, nb), (_, na))| (*bound, (nb - na).max(0.0)))
        .collect();
    let count = (b.count - a.count).max(0.0);
    Some(Point {
        at_ms: b.at_ms,
        per_minute: delivered * 60_000.0 / ms as f64,
        p50: bucket_quantile(&buckets, count, 0.5),
        p99: bucket_quantile(&buckets, count, 0.99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_rates_and_quantiles_of_each_interval() {
        let m = Arc::new(Metrics::new());
        m.sink.prepare("journey", &[]);
        let h = History::new(m.clone());
        // Back-date the first sample a minute, then confirm 120 events, 100 fast and 20 slow.
        crate::locks::lock(&h.samples)[0].at_ms -= 60_000;
        m.sink.delivered.with_label_values(&["journey"]).inc_by(120);
        for _ in 0..100 {
            m.sink.accept_to_confirm.observe(0.2);
        }
        for _ in 0..20 {
            m.sink.accept_to_confirm.observe(20.0);
        }
        let p = h.points();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!((p[0].per_minute - 120.0).abs() < 3.0, "{p:?}");
        assert!(p[0].p50.unwrap() <= 0.25, "{p:?}");
        assert!(p[0].p99.unwrap() >= 10.0, "{p:?}");
        // Bounded: an hour of samples.
        for _ in 0..100 {
            h.sample();
        }
        assert_eq!(crate::locks::lock(&h.samples).len(), KEPT);
    }
}
