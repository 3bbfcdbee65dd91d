//! Every Prometheus metric of the conduit, named in one place.
//!
//! Names follow `conduit_<subsystem>_<name>_<unit>`, counters end in `_total`, and every label
//! takes a bounded set of values (source names, event types, fixed reason codes) — never an
//! interaction id, a user name or anything else that grows without bound. Each subsystem gets
//! a cheap-to-clone handle struct; nothing here is global, so tests build their own.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

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
    /// `conduit_task_failures_total{task}`: long-running tasks that panicked or stopped on their
    /// own (each stops the process; see [`crate::supervisor`]).
    pub task_failures: IntCounterVec,
    /// Sinks and the dispatcher.
    pub sink: SinkMetrics,
    /// The ICWS source.
    pub icws: IcwsMetrics,
    /// The HTTP listener.
    pub server: ServerMetrics,
    /// User sync.
    pub users: UsersMetrics,
}

/// User-sync metrics.
#[derive(Clone)]
pub struct UsersMetrics {
    /// `conduit_users{state}`: CIC users by sync state (`synced`, `error`, `not_synced`).
    pub users: IntGaugeVec,
    /// `conduit_users_writes_total{kind}`: SCIM writes (`create`, `patch`, `deactivate`,
    /// `delete`).
    pub writes: IntCounterVec,
    /// `conduit_users_requests_total{status}`: SCIM requests by HTTP status (or `connect`,
    /// `timeout`, `oauth`).
    pub requests: IntCounterVec,
    /// `conduit_users_reconciles_total{result}`: full reconciles (`done`, `failed`).
    pub reconciles: IntCounterVec,
    /// `conduit_users_reconcile_duration_seconds`: one full reconcile.
    pub reconcile_seconds: Histogram,
    /// `conduit_users_statuses_total{result}`: CIC status changes read (`stored`, `unchanged`,
    /// `unmapped`, `malformed`).
    pub statuses: IntCounterVec,
}

/// HTTP listener metrics.
#[derive(Clone)]
pub struct ServerMetrics {
    /// `conduit_server_connections`: connections open now.
    pub connections: IntGauge,
    /// `conduit_server_connections_closed_total{reason}`: connections the conduit closed itself:
    /// `idle` (no request in time), `evicted` (the oldest idle one, to make room at the cap),
    /// `refused` (at the cap with every connection busy).
    pub closed: IntCounterVec,
    /// `conduit_server_accept_errors_total`: failed accepts (file descriptors exhausted, ...).
    pub accept_errors: IntCounter,
}

/// ICWS source metrics.
#[derive(Clone)]
pub struct IcwsMetrics {
    /// `conduit_icws_connected`: 1 while a session is up.
    pub connected: IntGauge,
    /// `conduit_icws_reconnects_total{reason}`.
    pub reconnects: IntCounterVec,
    /// `conduit_icws_messages_total{type}`: `queue_contents`, `connection_state`, `other`, `malformed`.
    pub messages: IntCounterVec,
    /// `conduit_icws_malformed_entries_total`: interaction entries skipped as malformed.
    pub malformed: IntCounter,
    /// `conduit_ha_role`: 1 while this conduit reads CIC (active), 0 while it stands by.
    pub ha_role: IntGauge,
    /// `conduit_icws_interactions_tracked`: interactions whose state the source keeps (the
    /// normalizer's, refreshed after each batch).
    pub tracked: IntGauge,
}

/// Sink and dispatcher metrics.
#[derive(Clone)]
pub struct SinkMetrics {
    /// `conduit_sink_requests_total{sink,status}`: requests by HTTP status (or `connect`,
    /// `timeout`, `oauth` when there was no answer).
    pub requests: IntCounterVec,
    /// `conduit_sink_events_delivered_total{sink}`: events the cloud confirmed.
    pub delivered: IntCounterVec,
    /// `conduit_sink_events_dead_lettered_total{sink,reason}`.
    pub dead_lettered: IntCounterVec,
    /// `conduit_sink_request_duration_seconds{sink}`.
    pub request_seconds: HistogramVec,
    /// `conduit_sink_retries_total{sink,reason}`: requests or entities sent again.
    pub retries: IntCounterVec,
    /// `conduit_sink_ratelimit_remaining{sink}`: requests left in the rate-limit window.
    pub ratelimit_remaining: IntGaugeVec,
    /// `conduit_sink_batch_events{sink}`: events per request.
    pub batch_events: HistogramVec,
    /// `conduit_pipeline_accept_to_confirm_seconds`: from stored in the buffer to confirmed by
    /// the cloud (events accepted by this process only).
    pub accept_to_confirm: Histogram,
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

/// The Kafka buffer's metrics: registered only when the buffer is a Kafka topic.
#[derive(Clone)]
pub struct KafkaMetrics {
    /// `conduit_kafka_assigned_partitions`: partitions this dispatcher consumes.
    pub assigned: IntGauge,
    /// `conduit_kafka_consumer_lag_records{partition}`: records of an assigned partition not
    /// yet committed (high watermark minus committed offset).
    pub lag: IntGaugeVec,
    /// `conduit_kafka_committed_offset{partition}`: the group's committed offset.
    pub committed: IntGaugeVec,
    /// `conduit_kafka_rebalances_total{change}`: partitions assigned or revoked (`assign`,
    /// `revoke`).
    pub rebalances: IntCounterVec,
    /// `conduit_kafka_commits_total{result}`: offset commits (`ok`, `failed`).
    pub commits: IntCounterVec,
    /// `conduit_kafka_abandoned_records_total`: records of revoked partitions not confirmed
    /// within `revoke_timeout_ms` (their new owner sends them again).
    pub abandoned: IntCounter,
    /// `conduit_kafka_produce_errors_total{reason}`: records the brokers did not acknowledge
    /// (`queue_full`, `timeout`, `refused`).
    pub produce_errors: IntCounterVec,
    /// `conduit_kafka_fetch_paused`: 1 while this dispatcher has stopped fetching because it is
    /// far behind (records read and waiting for the sink), 0 otherwise.
    pub fetch_paused: IntGauge,
}

impl KafkaMetrics {
    /// Registers them in `r`.
    pub fn register(r: &Registry) -> Self {
        KafkaMetrics {
            assigned: gauge(
                r,
                "conduit_kafka_assigned_partitions",
                "Partitions this dispatcher consumes.",
            ),
            lag: gauge_vec(
                r,
                "conduit_kafka_consumer_lag_records",
                "Records of an assigned partition not yet committed.",
                &["partition"],
            ),
            committed: gauge_vec(
                r,
                "conduit_kafka_committed_offset",
                "The consumer group's committed offset of an assigned partition.",
                &["partition"],
            ),
            rebalances: counter_vec(
                r,
                "conduit_kafka_rebalances_total",
                "Partitions assigned to or revoked from this dispatcher.",
                &["change"],
            ),
            commits: counter_vec(
                r,
                "conduit_kafka_commits_total",
                "Offset commits, by result.",
                &["result"],
            ),
            abandoned: counter(
                r,
                "conduit_kafka_abandoned_records_total",
                "Records of revoked partitions not confirmed in time (sent again by their new owner).",
            ),
            produce_errors: counter_vec(
                r,
                "conduit_kafka_produce_errors_total",
                "Records the brokers did not acknowledge, by reason.",
                &["reason"],
            ),
            fetch_paused: gauge(
                r,
                "conduit_kafka_fetch_paused",
                "1 while this dispatcher has stopped fetching because records read wait for the sink.",
            ),
        }
    }
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

fn histogram_vec(r: &Registry, name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
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
        // The standard process_* metrics (CPU, memory, open files, threads, start time).
        #[cfg(target_os = "linux")]
        r.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("unique metric");
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
        let task_failures = counter_vec(
            &r,
            "conduit_task_failures_total",
            "Long-running tasks that panicked or stopped on their own, by task; each stops the process.",
            &["task"],
        );
        let sink = SinkMetrics {
            requests: counter_vec(
                &r,
                "conduit_sink_requests_total",
                "Sink requests by HTTP status, or connect/timeout/oauth without an answer.",
                &["sink", "status"],
            ),
            delivered: counter_vec(
                &r,
                "conduit_sink_events_delivered_total",
                "Events confirmed by Genesys Cloud.",
                &["sink"],
            ),
            dead_lettered: counter_vec(
                &r,
                "conduit_sink_events_dead_lettered_total",
                "Events written to the dead-letter files, by reason.",
                &["sink", "reason"],
            ),
            request_seconds: histogram_vec(
                &r,
                "conduit_sink_request_duration_seconds",
                "Duration of one sink request.",
                &["sink"],
                vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
            ),
            retries: counter_vec(
                &r,
                "conduit_sink_retries_total",
                "Requests or entities sent again, by reason.",
                &["sink", "reason"],
            ),
            ratelimit_remaining: gauge_vec(
                &r,
                "conduit_sink_ratelimit_remaining",
                "Requests left in the current rate-limit window (from inin-ratelimit-*).",
                &["sink"],
            ),
            batch_events: histogram_vec(
                &r,
                "conduit_sink_batch_events",
                "Events per sink request.",
                &["sink"],
                vec![1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0],
            ),
            accept_to_confirm: histogram(
                &r,
                "conduit_pipeline_accept_to_confirm_seconds",
                "From stored in the buffer to confirmed by Genesys Cloud.",
                vec![
                    0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0,
                ],
            ),
        };
        let icws = IcwsMetrics {
            connected: gauge(&r, "conduit_icws_connected", "1 while an ICWS session is up."),
            reconnects: counter_vec(
                &r,
                "conduit_icws_reconnects_total",
                "ICWS logins after a lost session or a failed attempt, by reason.",
                &["reason"],
            ),
            messages: counter_vec(
                &r,
                "conduit_icws_messages_total",
                "ICWS messages received, by type.",
                &["type"],
            ),
            malformed: counter(
                &r,
                "conduit_icws_malformed_entries_total",
                "ICWS interaction entries skipped as malformed.",
            ),
            tracked: gauge(
                &r,
                "conduit_icws_interactions_tracked",
                "Interactions whose state the ICWS source keeps.",
            ),
            ha_role: gauge(
                &r,
                "conduit_ha_role",
                "1 while this conduit reads CIC (active), 0 while it stands by for its pair.",
            ),
        };
        let server = ServerMetrics {
            connections: gauge(&r, "conduit_server_connections", "HTTP connections open now."),
            closed: counter_vec(
                &r,
                "conduit_server_connections_closed_total",
                "HTTP connections closed by the conduit: idle, evicted at the cap, or refused.",
                &["reason"],
            ),
            accept_errors: counter(
                &r,
                "conduit_server_accept_errors_total",
                "Failed accepts on the listener (e.g. file descriptors exhausted).",
            ),
        };
        let users = UsersMetrics {
            users: gauge_vec(
                &r,
                "conduit_users",
                "CIC users by sync state: synced, error, not_synced.",
                &["state"],
            ),
            writes: counter_vec(
                &r,
                "conduit_users_writes_total",
                "SCIM writes to the organization's users, by kind.",
                &["kind"],
            ),
            requests: counter_vec(
                &r,
                "conduit_users_requests_total",
                "SCIM requests by HTTP status, or connect/timeout/oauth without an answer.",
                &["status"],
            ),
            reconciles: counter_vec(
                &r,
                "conduit_users_reconciles_total",
                "Full reconciles of CIC's directory with the organization, by result.",
                &["result"],
            ),
            reconcile_seconds: histogram(
                &r,
                "conduit_users_reconcile_duration_seconds",
                "Duration of one full reconcile.",
                vec![1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0],
            ),
            statuses: counter_vec(
                &r,
                "conduit_users_statuses_total",
                "CIC status changes read, by result: stored, unchanged, unmapped, malformed.",
                &["result"],
            ),
        };
        // An info metric: a gauge that is always 1, its labels the information.
        let build =
            IntGaugeVec::new(Opts::new("conduit_build_info", "Build information."), &["version"]).expect("valid");
        r.register(Box::new(build.clone())).expect("unique metric");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        Metrics {
            registry: r,
            enabled,
            source,
            normalize,
            buffer,
            oauth_refreshes,
            task_failures,
            users,
            sink,
            icws,
            server,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Estimates quantile `q` (0..=1) of a histogram from its cumulative buckets `(upper bound,
/// count)` in bound order and its total count, interpolating linearly inside the bucket the rank
/// falls in (as Prometheus' `histogram_quantile` does). A rank in the `+Inf` bucket gives the
/// highest finite bound. `None` when there are no samples.
pub fn bucket_quantile(buckets: &[(f64, f64)], total: f64, q: f64) -> Option<f64> {
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut prev_bound, mut prev_count) = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(prev_bound);
            }
            let frac = if count > prev_count {
                (rank - prev_count) / (count - prev_count)
            } else {
                1.0
            };
            return Some(prev_bound + (bound - prev_bound) * frac.clamp(0.0, 1.0));
        }
        (prev_bound, prev_count) = (bound, count);
    }
    Some(prev_bound)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_buckets() {
        // 10 samples: 4 up to 0.5 s, 6 up to 1.0 s, none beyond.
        let b = [(0.5, 4.0), (1.0, 10.0), (f64::INFINITY, 10.0)];
        assert_eq!(bucket_quantile(&b, 10.0, 0.2), Some(0.25));
        assert_eq!(bucket_quantile(&b, 10.0, 0.7), Some(0.75));
        assert_eq!(bucket_quantile(&b, 10.0, 1.0), Some(1.0));
        // Samples beyond the last finite bound report that bound.
        let tail = [(0.5, 1.0), (f64::INFINITY, 2.0)];
        assert_eq!(bucket_quantile(&tail, 2.0, 0.99), Some(0.5));
        assert_eq!(bucket_quantile(&b, 0.0, 0.5), None);
    }
}
