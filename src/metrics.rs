//! Every Prometheus metric of the conduit, named in one place.
//!
//! Names follow `conduit_<subsystem>_<name>_<unit>`, counters end in `_total`, and every label
//! takes a bounded set of values (source names, event types, fixed reason codes) — never an
//! interaction id, a user name or anything else that grows without bound. Each subsystem gets
//! a cheap-to-clone handle struct; nothing here is global, so tests build their own.

use std::sync::{Arc, Mutex};

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// One registered metric: its name, type and label names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// The metric's name.
    pub name: String,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    /// Its label names, in order.
    pub labels: Vec<String>,
}

/// Where metrics are registered: the registry `/metrics` renders, and a description of each
/// metric registered (what the README's metric table is checked against).
#[derive(Clone, Default)]
pub struct Registrar {
    /// The registry.
    pub registry: Registry,
    described: Arc<Mutex<Vec<Described>>>,
}

impl Registrar {
    /// Registers `c`, a collector of metrics of `kind`, and returns it.
    fn add<C: Collector + Clone + 'static>(&self, c: C, kind: &'static str) -> C {
        self.register(c.clone(), kind);
        c
    }

    /// Registers `c`, a collector of metrics of `kind` (`process`: the process collector's).
    fn register<C: Collector + 'static>(&self, c: C, kind: &'static str) {
        let mut described = crate::locks::lock(&self.described);
        for d in c.desc() {
            // The process collector's counter among its gauges.
            let kind = if kind == "process" {
                if d.fq_name.ends_with("_total") {
                    "counter"
                } else {
                    "gauge"
                }
            } else {
                kind
            };
            described.push(Described {
                name: d.fq_name.clone(),
                kind,
                labels: d.variable_labels.clone(),
            });
        }
        self.registry.register(Box::new(c)).expect("unique metric");
    }

    /// Every metric registered so far.
    pub fn described(&self) -> Vec<Described> {
        crate::locks::lock(&self.described).clone()
    }
}

/// All metrics, registered in one registry.
pub struct Metrics {
    /// The registry `/metrics` renders, and what is in it.
    pub registrar: Registrar,
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
    /// `conduit_sink_state{sink,state}`: 1 for the destination's state now (`ok`, `retrying`,
    /// `paused`, `auth_failing`), 0 for the others; set when `/metrics` is read.
    pub state: IntGaugeVec,
    /// `conduit_sink_batch_events{sink}`: events per request.
    pub batch_events: HistogramVec,
    /// `conduit_pipeline_accept_to_confirm_seconds`: from stored in the buffer to confirmed by
    /// the cloud (events accepted by this process only).
    pub accept_to_confirm: Histogram,
}

/// The dispatcher's own dead-letter reasons (a sink adds its own: `Sink::refusal_reasons`).
const DISPATCH_REFUSALS: [&str; 6] = [
    "rejected",
    "retries_exhausted",
    "client_error",
    "not_implemented",
    "unexpected_status",
    "too_large",
];

/// A destination's states, as `conduit_sink_state` labels them.
pub const SINK_STATES: [&str; 4] = ["ok", "retrying", "paused", "auth_failing"];

/// The request statuses alerts look for.
const ALERTED_STATUSES: [&str; 4] = ["401", "403", "429", "oauth"];

impl SinkMetrics {
    /// Shows `state` as sink `sink`'s state now (one of [`SINK_STATES`]).
    pub fn show_state(&self, sink: &str, state: &str) {
        for s in SINK_STATES {
            self.state.with_label_values(&[sink, s]).set(i64::from(s == state));
        }
    }

    /// Creates, at zero, the counters of sink `sink` that alerts read: a counter that does not
    /// exist yet cannot show an increase (after a restart during an outage, say).
    pub fn prepare(&self, sink: &str, refusals: &[&str]) {
        self.delivered.with_label_values(&[sink]);
        self.show_state(sink, "ok");
        for status in ALERTED_STATUSES {
            self.requests.with_label_values(&[sink, status]);
        }
        for reason in DISPATCH_REFUSALS.iter().chain(refusals) {
            self.dead_lettered.with_label_values(&[sink, reason]);
        }
    }
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
    pub fn register(r: &Registrar) -> Self {
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
    /// `conduit_buffer_capacity_bytes`: the size cap (`buffer.max_bytes`); 0 for a Kafka topic.
    pub capacity: IntGauge,
    /// `conduit_buffer_oldest_record_age_seconds`: since the oldest record waiting was
    /// accepted; 0 when nothing waits or no reader in this process has read it.
    pub oldest_age: Gauge,
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

fn counter_vec(r: &Registrar, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    r.add(
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
        "counter",
    )
}

fn counter(r: &Registrar, name: &str, help: &str) -> IntCounter {
    r.add(IntCounter::new(name, help).expect("valid metric"), "counter")
}

fn gauge(r: &Registrar, name: &str, help: &str) -> IntGauge {
    r.add(IntGauge::new(name, help).expect("valid metric"), "gauge")
}

fn histogram_vec(r: &Registrar, name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).expect("valid metric");
    r.add(h, "histogram")
}

fn gauge_vec(r: &Registrar, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    r.add(
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
        "gauge",
    )
}

fn histogram(r: &Registrar, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid metric");
    r.add(h, "histogram")
}

impl Metrics {
    /// A fresh registry with every metric.
    pub fn new() -> Self {
        Self::with_icws(true)
    }

    /// A fresh registry; the ICWS source's metrics in it only with `icws` (they exist either
    /// way, but are shown only when the source runs).
    pub fn with_icws(icws: bool) -> Self {
        let r = Registrar::default();
        // The standard process_* metrics (CPU, memory, open files, threads, start time).
        #[cfg(target_os = "linux")]
        r.register(prometheus::process_collector::ProcessCollector::for_self(), "process");
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
            capacity: gauge(
                &r,
                "conduit_buffer_capacity_bytes",
                "The buffer's size cap (buffer.max_bytes); 0 for a Kafka topic.",
            ),
            oldest_age: r.add(
                Gauge::new(
                    "conduit_buffer_oldest_record_age_seconds",
                    "Seconds since the oldest record waiting in the buffer was accepted (0 when none waits).",
                )
                .expect("valid metric"),
                "gauge",
            ),
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
            state: gauge_vec(
                &r,
                "conduit_sink_state",
                "1 for the destination's state now (ok, retrying, paused, auth_failing), 0 for the others.",
                &["sink", "state"],
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
        let shown = r.clone();
        let r = if icws { shown.clone() } else { Registrar::default() };
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
        let r = shown;
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
        let build = gauge_vec(&r, "conduit_build_info", "Build information.", &["version"]);
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        Metrics {
            registrar: r,
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
        let _ = TextEncoder::new().encode(&self.registrar.registry.gather(), &mut out);
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

    /// The README's metric table, as (name, type, label names) per metric.
    #[cfg(target_os = "linux")]
    fn readme_table() -> Vec<Described> {
        let readme = include_str!("../README.md");
        let start = readme
            .find("| metric | type | meaning |")
            .expect("the README's metric table");
        let mut out = Vec::new();
        for row in readme[start..].lines().skip(2).take_while(|l| l.starts_with('|')) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let names: Vec<&str> = cells[1].split('`').skip(1).step_by(2).collect();
            let kinds: Vec<&str> = cells[2].split(", ").collect();
            assert!(kinds.len() == 1 || kinds.len() == names.len(), "types of {row}");
            for (i, n) in names.iter().enumerate() {
                let (name, labels) = match n.split_once('{') {
                    Some((name, rest)) => (
                        name,
                        rest.trim_end_matches('}').split(',').map(str::to_string).collect(),
                    ),
                    None => (*n, Vec::new()),
                };
                let kind = match kinds[if kinds.len() == 1 { 0 } else { i }] {
                    "counter" => "counter",
                    "gauge" => "gauge",
                    "histogram" => "histogram",
                    other => panic!("type {other} in {row}"),
                };
                out.push(Described {
                    name: name.to_string(),
                    kind,
                    labels,
                });
            }
        }
        out
    }

    // The README lists the process collector's metrics, which exist on Linux only.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_readme_lists_every_metric_as_registered() {
        let m = Metrics::new();
        KafkaMetrics::register(&m.registrar);
        let mut registered = m.registrar.described();
        let mut table = readme_table();
        registered.sort_by(|a, b| a.name.cmp(&b.name));
        table.sort_by(|a, b| a.name.cmp(&b.name));
        let names = |v: &[Described]| v.iter().map(|d| d.name.clone()).collect::<Vec<_>>();
        let (r, t) = (names(&registered), names(&table));
        let missing: Vec<_> = r.iter().filter(|n| !t.contains(n)).collect();
        let extra: Vec<_> = t.iter().filter(|n| !r.contains(n)).collect();
        assert!(
            missing.is_empty(),
            "registered but not in the README's table: {missing:?}"
        );
        assert!(extra.is_empty(), "in the README's table but not registered: {extra:?}");
        assert_eq!(
            registered, table,
            "the README's table and the code differ (type or labels)"
        );
    }

    #[test]
    fn sink_state_labels_are_the_health_documents() {
        use crate::dispatch::gate::DestState;
        let labels: Vec<String> = [
            DestState::Ok,
            DestState::Retrying,
            DestState::Paused,
            DestState::AuthFailing,
        ]
        .iter()
        .map(|s| serde_json::to_value(s).unwrap().as_str().unwrap().to_string())
        .collect();
        assert_eq!(labels, SINK_STATES);
    }

    #[test]
    fn icws_metrics_are_shown_only_with_the_icws_source() {
        let shown = |m: &Metrics| {
            m.registrar
                .described()
                .iter()
                .any(|d| d.name == "conduit_icws_connected")
        };
        assert!(shown(&Metrics::with_icws(true)));
        let without = Metrics::with_icws(false);
        assert!(!shown(&without));
        without.icws.connected.set(1);
        assert!(!without.render().contains("conduit_icws"), "{}", without.render());
        assert!(!without.render().contains("conduit_ha_role"));
    }

    #[test]
    fn the_counters_alerts_read_exist_from_the_start() {
        let m = Metrics::new();
        m.sink.prepare("journey", &["undecodable"]);
        let text = m.render();
        for line in [
            "conduit_sink_events_delivered_total{sink=\"journey\"} 0",
            "conduit_sink_requests_total{sink=\"journey\",status=\"oauth\"} 0",
            "conduit_sink_requests_total{sink=\"journey\",status=\"429\"} 0",
            "conduit_sink_events_dead_lettered_total{reason=\"undecodable\",sink=\"journey\"} 0",
            "conduit_sink_events_dead_lettered_total{reason=\"rejected\",sink=\"journey\"} 0",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }
}
