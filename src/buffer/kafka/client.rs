//! The librdkafka clients' configuration and what they report: the properties the conduit sets
//! (its guarantee rests on them), the operator's pass-through properties, and a context that
//! turns librdkafka's logs, errors and statistics into tracing events and figures.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;

use crate::config::KafkaConfig;
use crate::config::Secret;

/// The Kafka settings a buffer runs on: the config with its secret properties resolved.
#[derive(Clone)]
pub struct KafkaSettings {
    /// The config section.
    pub config: KafkaConfig,
    /// `secret_properties`, resolved.
    pub secrets: BTreeMap<String, Secret>,
    /// The largest payload an append takes.
    pub max_record_bytes: u32,
    /// How long an append waits for room in the producer's queue.
    pub block_timeout: std::time::Duration,
}

impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.config.brokers)
            .field("topic", &self.config.topic)
            .field("group", &self.config.group)
            .field("secret_properties", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KafkaSettings {
    /// What every client shares: the brokers, then the operator's properties.
    fn base(&self, client_id: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.config.brokers)
            .set("client.id", client_id)
            .set("statistics.interval.ms", "1000")
            // Leave the broker a little room beyond the record for its framing.
            .set(
                "message.max.bytes",
                (u64::from(self.max_record_bytes) + 64 * 1024).to_string(),
            );
        for (k, v) in &self.config.properties {
            c.set(k, v);
        }
        for (k, v) in &self.secrets {
            c.set(k, v.expose());
        }
        c
    }

    /// The producer's: idempotent, acknowledged by every in-sync replica, a bounded queue, and
    /// an answer within `produce_timeout_ms`.
    pub fn producer(&self) -> ClientConfig {
        let mut c = self.base("cic-conduit-ingest");
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", self.config.produce_timeout_ms.to_string())
            .set(
                "queue.buffering.max.messages",
                self.config.max_queued_records.to_string(),
            );
        if !self.config.properties.contains_key("linger.ms") {
            c.set("linger.ms", "5");
        }
        c
    }

    /// The consumer's: one group, offsets stored and committed only by the conduit, from the
    /// earliest record when the group has no offset yet, a bounded prefetch.
    pub fn consumer(&self) -> ClientConfig {
        let mut c = self.base("cic-conduit-dispatch");
        c.set("group.id", &self.config.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed");
        for (k, v) in [
            ("auto.offset.reset", "earliest"),
            ("queued.max.messages.kbytes", "16384"),
        ] {
            if !self.config.properties.contains_key(k) {
                c.set(k, v);
            }
        }
        c
    }

    /// The admin client's (for `setup`).
    pub fn admin(&self) -> ClientConfig {
        self.base("cic-conduit-setup")
    }
}

/// What a client last reported: the last error while nothing has worked since, and the
/// statistics the figures come from.
#[derive(Default)]
pub struct Reported {
    /// The last error (cleared by the next success of the client's user).
    pub error: Mutex<Option<String>>,
    /// The last error librdkafka itself reported other than "all brokers down" (a refused TLS
    /// handshake, say), which explains the ones its user sees (a record not acknowledged in time).
    pub client_error: Mutex<Option<String>>,
    /// Every broker connection was down since the client's user last succeeded.
    pub all_down: std::sync::atomic::AtomicBool,
    /// Per partition of the topic: (high watermark, committed offset), from the statistics.
    pub partitions: Mutex<BTreeMap<i32, (i64, i64)>>,
}

/// A client context: librdkafka's logs and errors as tracing events, its statistics kept.
pub struct Context {
    /// The topic whose partitions are kept from the statistics.
    pub topic: String,
    /// Where reports go.
    pub reported: std::sync::Arc<Reported>,
    /// Where a consumer's lag and committed offsets go.
    pub metrics: Option<crate::metrics::KafkaMetrics>,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        // `properties` go to the producer and the consumer alike: each says it ignores the
        // other's, which is expected.
        let level = if fac == "CONFWARN" && message.contains(" property and will be ignored by this ") {
            RDKafkaLogLevel::Debug
        } else {
            level
        };
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility = fac, "{message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility = fac, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility = fac, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility = fac, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", error = %error, "{reason}");
        let why = format!("{error}: {reason}");
        let mut cause = crate::locks::lock(&self.reported.client_error);
        let shown = if matches!(
            error,
            KafkaError::Global(rdkafka::types::RDKafkaErrorCode::AllBrokersDown)
        ) {
            self.reported.all_down.store(true, std::sync::atomic::Ordering::Release);
            // A consequence: what brought the connections down says more.
            match cause.as_deref() {
                Some(c) => format!("{why}; before that: {c}"),
                None => why,
            }
        } else {
            *cause = Some(why.clone());
            why
        };
        drop(cause);
        *crate::locks::lock(&self.reported.error) = Some(shown);
    }

    fn stats_raw(&self, statistics: &[u8]) {
        self.stats(statistics, None)
    }
}

impl Context {
    /// Keeps the figures of `statistics` for the topic's partitions (only those of `assigned`
    /// when given: librdkafka goes on listing partitions it no longer consumes).
    pub(super) fn stats(&self, statistics: &[u8], assigned: Option<&BTreeSet<i32>>) {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(statistics) else {
            return;
        };
        let Some(parts) = v["topics"][self.topic.as_str()]["partitions"].as_object() else {
            return;
        };
        let mut out = BTreeMap::new();
        for (p, s) in parts {
            let (Ok(p), Some(hi), Some(committed)) = (
                p.parse::<i32>(),
                s["hi_offset"].as_i64(),
                s["committed_offset"].as_i64(),
            ) else {
                continue;
            };
            // librdkafka lists the internal partition -1 and partitions it does not fetch.
            if p >= 0
                && s["fetch_state"].as_str().is_none_or(|f| f != "none")
                && assigned.is_none_or(|a| a.contains(&p))
            {
                out.insert(p, (hi, committed));
            }
        }
        if let Some(m) = &self.metrics {
            for (p, (hi, committed)) in &out {
                let label = p.to_string();
                m.lag.with_label_values(&[&label]).set(hi - (*committed).max(0));
                if *committed >= 0 {
                    m.committed.with_label_values(&[&label]).set(*committed);
                }
            }
        }
        *crate::locks::lock(&self.reported.partitions) = out;
    }
}
