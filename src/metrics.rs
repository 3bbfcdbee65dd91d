//! Every Prometheus metric of the conduit, named in one place.
//!
//! Names follow `conduit_<subsystem>_<name>_<unit>`, counters end in `_total`, and every label
//! takes a bounded set of values (source names, event types, fixed reason codes) — never an
//! interaction id, a user name or anything else that grows without bound. Each subsystem gets
//! a cheap-to-clone handle struct; nothing here is global, so tests build their own.

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// All metrics, registered in one registry.
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// 1 while ingesting is enabled, 0 while switched off.
    pub enabled: IntGauge,
    /// Sources.
    pub source: SourceMetrics,
    /// The normalizer.
    pub normalize: NormalizeMetrics,
    /// The buffer.
    pub buffer: BufferMetrics,
    /// `conduit_oauth_token_refreshes_total`: OAuth tokens fetched.
    pub oauth_refreshes: IntCounter,
}

/// Source metrics.
#[derive(Clone)]
pub struct SourceMetrics {
    /// `conduit_source_events_received_total{source}`: observations accepted.
    pub received: IntCounterVec,
    /// `conduit_source_events_rejected_total{source,reason}`: observations refused.
    pub rejected: IntCounterVec,
    /// `conduit_source_requests_total{source,status}`: requests by HTTP status.
    pub requests: IntCounterVec,
}

/// Normalizer metrics.
#[derive(Clone)]
pub struct NormalizeMetrics {
    /// `conduit_normalize_events_total{type}`: events produced.
    pub events: IntCounterVec,
    /// `conduit_normalize_warnings_total{field}`: values that could not be parsed or were cut.
    pub warnings: IntCounterVec,
    /// `conduit_normalize_interactions_tracked`: interactions in memory now.
    pub tracked: IntGauge,
    /// `conduit_normalize_interactions_forgotten_total{reason}`: ended, idle or evicted.
    pub forgotten: IntCounterVec,
}

/// Buffer metrics.
#[derive(Clone)]
pub struct BufferMetrics {
    /// `conduit_buffer_records`: records not yet acknowledged.
    pub records: IntGauge,
    /// `conduit_buffer_bytes`: bytes on disk.
    pub bytes: IntGauge,
    /// `conduit_buffer_segments`: segment files on disk.
    pub segments: IntGauge,
    /// `conduit_buffer_fsync_seconds`: duration of each group-commit sync.
    pub fsync_seconds: Histogram,
    /// `conduit_buffer_append_batch_records`: records made durable by one sync.
    pub batch_records: Histogram,
    /// `conduit_buffer_appended_records_total`.
    pub appended: IntCounter,
    /// `conduit_buffer_acked_records_total`.
    pub acked: IntCounter,
    /// `conduit_buffer_corrupt_records_total`: records lost to on-disk corruption.
    pub corrupt: IntCounter,
    /// `conduit_buffer_truncated_bytes_total`: torn tails cut at recovery.
    pub truncated_bytes: IntCounter,
    /// `conduit_buffer_dropped_total`: records dropped at the size cap (`when_full = drop_newest`).
    pub dropped: IntCounter,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

impl Metrics {
    /// A fresh registry with every metric.
    pub fn new() -> Self {
        let r = Registry::new();
        let source = SourceMetrics {
            received: counter_vec(
                &r,
                "conduit_source_events_received_total",
                "Observations accepted by a source.",
                &["source"],
            ),
            rejected: counter_vec(
                &r,
                "conduit_source_events_rejected_total",
                "Observations refused by a source, by reason.",
                &["source", "reason"],
            ),
            requests: counter_vec(
                &r,
                "conduit_source_requests_total",
                "Source requests by HTTP status.",
                &["source", "status"],
            ),
        };
        let normalize = NormalizeMetrics {
            events: counter_vec(
                &r,
                "conduit_normalize_events_total",
                "Interaction events produced, by type.",
                &["type"],
            ),
            warnings: counter_vec(
                &r,
                "conduit_normalize_warnings_total",
                "Attribute values that could not be parsed or were cut, by field.",
                &["field"],
            ),
            tracked: gauge(
                &r,
                "conduit_normalize_interactions_tracked",
                "Interactions whose state is held in memory.",
            ),
            forgotten: counter_vec(
                &r,
                "conduit_normalize_interactions_forgotten_total",
                "Interactions dropped from memory, by reason.",
                &["reason"],
            ),
        };
        let buffer = BufferMetrics {
            records: gauge(
                &r,
                "conduit_buffer_records",
                "Records in the buffer not yet acknowledged.",
            ),
            bytes: gauge(&r, "conduit_buffer_bytes", "Bytes of buffer segments on disk."),
            segments: gauge(&r, "conduit_buffer_segments", "Buffer segment files on disk."),
            fsync_seconds: histogram(
                &r,
                "conduit_buffer_fsync_seconds",
                "Duration of one group-commit sync.",
                vec![
                    0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0,
                ],
            ),
            batch_records: histogram(
                &r,
                "conduit_buffer_append_batch_records",
                "Records made durable together by one write (group commit).",
                vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0],
            ),
            appended: counter(
                &r,
                "conduit_buffer_appended_records_total",
                "Records appended to the buffer.",
            ),
            acked: counter(
                &r,
                "conduit_buffer_acked_records_total",
                "Records acknowledged and released.",
            ),
            corrupt: counter(
                &r,
                "conduit_buffer_corrupt_records_total",
                "Records lost to on-disk corruption.",
            ),
            truncated_bytes: counter(
                &r,
                "conduit_buffer_truncated_bytes_total",
                "Bytes of torn tail cut at recovery.",
            ),
            dropped: counter(
                &r,
                "conduit_buffer_dropped_total",
                "Records dropped because the buffer was full.",
            ),
        };
        let enabled = gauge(
            &r,
            "conduit_enabled",
            "1 while ingesting is enabled, 0 while switched off.",
        );
        let oauth_refreshes = counter(
            &r,
            "conduit_oauth_token_refreshes_total",
            "OAuth tokens fetched from the login host.",
        );
        let build =
            IntCounterVec::new(Opts::new("conduit_build_info", "Build information."), &["version"]).expect("valid");
        r.register(Box::new(build.clone())).expect("unique metric");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).inc();
        Metrics {
            registry: r,
            enabled,
            source,
            normalize,
            buffer,
            oauth_refreshes,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
