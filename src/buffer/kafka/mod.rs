//! The Kafka buffer: a topic instead of the disk log, for conduits that scale out. Ingest
//! conduits (one beside each CIC server) produce to it; a consumer group of dispatchers
//! (`role = "dispatch"`) consumes it and delivers through the same sinks. Kafka's partitions,
//! replication and group rebalancing carry the load and the failover; the conduit adds no
//! coordination of its own.
//!
//! # Design
//!
//! **Records** are the same bytes as on disk, as messages keyed by the record's key (the
//! interaction, the user), so each key stays in one partition and in order; the accept time is
//! the message's timestamp and the kind and schema are headers ([`wire`]).
//!
//! **Accepted means acknowledged.** The producer is idempotent (no duplicates or reordering
//! from its own retries) with `acks=all`; [`Buffer::append`] answers only once the brokers
//! acknowledged every record of the batch (each record's delivery report), exactly as the disk
//! log answers only after `fdatasync`. A batch is not atomic across partitions: when part of it
//! fails, the source is told to retry the whole and the part that was stored is stored again,
//! under the same event ids (the cloud keeps one of each).
//!
//! **Backpressure, never a silent drop.** The producer's queue is bounded
//! (`max_queued_records`): when it is full an append waits up to `buffer.block_timeout_ms`, then
//! fails with [`BufferError::Full`]; a record the brokers do not acknowledge within
//! `produce_timeout_ms` (brokers down) fails its append with [`BufferError::Unavailable`]. Both
//! reach the sources as "retry later" (503 with `Retry-After`; the ICWS source retries).
//!
//! **Delivery** is [`consume`]'s: offsets are committed only past records the cloud confirmed
//! (or that were dead-lettered, with their partition and offset), in order per partition; a
//! rebalance waits a bounded time for records in flight, then commits and lets them go.
//!
//! **What Kafka does not give.** Records of the sources' carried state are not replayed from the
//! topic after a crash ([`Buffer::replay_from`] replays nothing): the state saved every 30 s and
//! at shutdown is what a restart carries on from. The size cap, `persist` and `when_full` are the
//! disk log's; Kafka's retention and the producer's bounded queue take their place.

pub mod client;
mod consume;
pub mod setup;
pub mod wire;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use super::{Appended, BoxFuture, Buffer, BufferError, BufferReader, BufferStats, Entry, Position};
use crate::metrics::{BufferMetrics, KafkaMetrics};
use client::{Context, KafkaSettings, Reported};

pub use super::kafka_stats::{KafkaStats, PartitionStats};

/// Stops the consumer thread when the reader that owns it goes.
pub(crate) struct Owner {
    stop: Arc<AtomicBool>,
    buffer: Arc<Inner>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        *crate::locks::lock(&self.buffer.owner) = None;
    }
}

struct Inner {
    settings: KafkaSettings,
    /// The producer; replaced when the brokers keep refusing it (see [`KafkaBuffer::renew`]).
    producer: RwLock<FutureProducer<Context>>,
    /// When the producer was last replaced.
    renewed: Mutex<Instant>,
    produced: Arc<Reported>,
    consumed: Arc<Reported>,
    /// The reader's owner, while there is one.
    owner: Mutex<Option<String>>,
    /// The consumer thread, to join at close.
    consumer: Mutex<Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>>,
    closed: AtomicBool,
    metrics: KafkaMetrics,
    buffer_metrics: BufferMetrics,
}

/// The producer is replaced at most this often.
const RENEW_EVERY: Duration = Duration::from_secs(5);

fn new_producer(settings: &KafkaSettings, reported: &Arc<Reported>) -> Result<FutureProducer<Context>, BufferError> {
    settings
        .producer()
        .create_with_context(Context {
            topic: settings.config.topic.clone(),
            reported: reported.clone(),
            metrics: None,
        })
        .map_err(|e| BufferError::Unavailable(format!("kafka producer: {e}")))
}

/// A Kafka topic as the buffer.
pub struct KafkaBuffer {
    inner: Arc<Inner>,
}

impl KafkaBuffer {
    /// A buffer on the topic `settings` name; its metrics registered in `registry`. Connects
    /// lazily: brokers that are down make appends fail (retryably), not this.
    pub fn open(
        settings: KafkaSettings,
        registry: &crate::metrics::Registrar,
        buffer_metrics: BufferMetrics,
    ) -> Result<Self, BufferError> {
        let produced = Arc::new(Reported::default());
        let metrics = KafkaMetrics::register(registry);
        let producer = new_producer(&settings, &produced)?;
        Ok(KafkaBuffer {
            inner: Arc::new(Inner {
                settings,
                producer: RwLock::new(producer),
                renewed: Mutex::new(Instant::now().checked_sub(RENEW_EVERY).unwrap_or_else(Instant::now)),
                produced,
                consumed: Arc::new(Reported::default()),
                owner: Mutex::new(None),
                consumer: Mutex::new(None),
                closed: AtomicBool::new(false),
                metrics,
                buffer_metrics,
            }),
        })
    }

    async fn produce(&self, entries: Vec<Entry>) -> Result<Appended, BufferError> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(BufferError::Closed);
        }
        let max = u64::from(inner.settings.max_record_bytes);
        if let Some(e) = entries.iter().find(|e| e.payload.len() as u64 > max) {
            return Err(BufferError::TooLarge {
                size: e.payload.len() as u64,
                max,
            });
        }
        let topic = inner.settings.config.topic.as_str();
        let accepted_ms = crate::timefmt::now_ms();
        let deadline = Instant::now() + inner.settings.block_timeout;
        let producer = inner
            .producer
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut reports = Vec::with_capacity(entries.len());
        for e in &entries {
            let mut record = FutureRecord::to(topic)
                .key(&e.key[..])
                .payload(&e.payload[..])
                .timestamp(accepted_ms)
                .headers(wire::headers(e.kind));
            loop {
                match producer.send_result(record) {
                    Ok(report) => {
                        reports.push(report);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        if Instant::now() >= deadline {
                            inner.metrics.produce_errors.with_label_values(&["queue_full"]).inc();
                            return Err(BufferError::Full {
                                used: producer.in_flight_count().max(0) as u64,
                                cap: u64::from(inner.settings.config.max_queued_records),
                            });
                        }
                        record = r;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err((e, _)) => return Err(self.failed("refused", e)),
                }
            }
        }
        let mut first_error = None;
        for report in reports {
            match report.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    let reason = match e {
                        KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut) => "timeout",
                        _ => "refused",
                    };
                    first_error.get_or_insert(self.failed(reason, e));
                }
                Err(_) => {
                    first_error.get_or_insert(BufferError::Closed);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        *crate::locks::lock(&inner.produced.error) = None;
        *crate::locks::lock(&inner.produced.client_error) = None;
        inner.produced.all_down.store(false, Ordering::Release);
        inner.buffer_metrics.appended.inc_by(entries.len() as u64);
        Ok(Appended::Stored { count: entries.len() })
    }

    fn failed(&self, reason: &str, e: KafkaError) -> BufferError {
        self.inner.metrics.produce_errors.with_label_values(&[reason]).inc();
        let why = match crate::locks::lock(&self.inner.produced.client_error).as_deref() {
            Some(cause) => format!("kafka did not acknowledge the record: {e} (the client's last error: {cause})"),
            None => format!("kafka did not acknowledge the record: {e}"),
        };
        *crate::locks::lock(&self.inner.produced.error) = Some(why.clone());
        if reason == "refused" || self.inner.produced.all_down.load(Ordering::Acquire) {
            self.renew();
        }
        BufferError::Unavailable(why)
    }

    /// Replaces the producer after the brokers refused its records, or after an append failed
    /// while every broker was down: the new one starts a new idempotent session (a new producer
    /// id), where a broker that lost or mishandles the old session's state would refuse it for
    /// good. At most once in [`RENEW_EVERY`]; appends in flight finish on the old one, which is
    /// let go off the async threads (it takes up to half a second to purge).
    fn renew(&self) {
        let inner = &self.inner;
        {
            let mut at = crate::locks::lock(&inner.renewed);
            if at.elapsed() < RENEW_EVERY {
                return;
            }
            *at = Instant::now();
        }
        match new_producer(&inner.settings, &inner.produced) {
            Ok(p) => {
                let old = std::mem::replace(
                    &mut *inner
                        .producer
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                    p,
                );
                tokio::task::spawn_blocking(move || drop(old));
                tracing::warn!("kafka did not take this producer's records: a new producer session takes over");
            }
            Err(e) => tracing::warn!(error = %e, "cannot make a new kafka producer"),
        }
    }

    /// The figures for `/health`.
    pub fn kafka_stats(&self) -> KafkaStats {
        let inner = &self.inner;
        let consuming = crate::locks::lock(&inner.consumer).is_some();
        let partitions = if consuming {
            crate::locks::lock(&inner.consumed.partitions)
                .iter()
                .map(|(p, (hi, committed))| PartitionStats {
                    partition: *p,
                    lag: if *committed >= 0 {
                        (hi - committed).max(0) as u64
                    } else {
                        (*hi).max(0) as u64
                    },
                    committed: *committed,
                })
                .collect()
        } else {
            Vec::new()
        };
        let last_error = crate::locks::lock(&inner.produced.error)
            .clone()
            .or_else(|| crate::locks::lock(&inner.consumed.error).clone());
        KafkaStats {
            topic: inner.settings.config.topic.clone(),
            group: consuming.then(|| inner.settings.config.group.clone()),
            producing: inner
                .producer
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .in_flight_count()
                .max(0) as u64,
            partitions,
            last_error,
        }
    }
}

impl Buffer for KafkaBuffer {
    fn append(&self, entries: Vec<Entry>) -> BoxFuture<'_, Result<Appended, BufferError>> {
        Box::pin(self.produce(entries))
    }

    fn reader(&self, name: &str) -> Result<Box<dyn BufferReader>, BufferError> {
        let inner = &self.inner;
        {
            let mut owner = crate::locks::lock(&inner.owner);
            if let Some(o) = owner.as_ref() {
                return Err(BufferError::ReaderTaken {
                    owner: o.clone(),
                    wanted: name.to_string(),
                });
            }
            *owner = Some(name.to_string());
        }
        let cfg = &inner.settings.config;
        let shared = consume::shared(
            &cfg.topic,
            Duration::from_millis(cfg.revoke_timeout_ms),
            inner.metrics.clone(),
            inner.buffer_metrics.clone(),
        );
        let context = consume::DispatchContext {
            base: Context {
                topic: cfg.topic.clone(),
                reported: inner.consumed.clone(),
                metrics: Some(inner.metrics.clone()),
            },
            shared: shared.clone(),
        };
        let consumer: rdkafka::consumer::BaseConsumer<consume::DispatchContext> = inner
            .settings
            .consumer()
            .create_with_context(context)
            .map_err(|e| BufferError::Unavailable(format!("kafka consumer: {e}")))?;
        rdkafka::consumer::Consumer::subscribe(&consumer, &[cfg.topic.as_str()])
            .map_err(|e| BufferError::Unavailable(format!("kafka subscribe to {}: {e}", cfg.topic)))?;
        let (tx, rx) = consume::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name("kafka-consumer".into())
                .spawn(move || consume::run(consumer, shared, tx, stop))?
        };
        *crate::locks::lock(&inner.consumer) = Some((stop.clone(), thread));
        Ok(Box::new(consume::KafkaReader {
            rx,
            shared,
            _owner: Owner {
                stop,
                buffer: inner.clone(),
            },
        }))
    }

    fn stats(&self) -> BufferStats {
        let k = self.kafka_stats();
        let backlog = if k.group.is_some() {
            k.partitions.iter().map(|p| p.lag).sum()
        } else {
            k.producing
        };
        self.inner.buffer_metrics.records.set(backlog as i64);
        BufferStats {
            backlog_records: backlog,
            write_error: crate::locks::lock(&self.inner.produced.error).clone(),
            kafka: Some(k),
            ..BufferStats::default()
        }
    }

    fn max_record_bytes(&self) -> u64 {
        u64::from(self.inner.settings.max_record_bytes)
    }

    fn write_position(&self) -> Position {
        Position::new(0, 0)
    }

    fn close(&self) -> BoxFuture<'_, Result<(), BufferError>> {
        Box::pin(async move {
            let inner = self.inner.clone();
            inner.closed.store(true, Ordering::Release);
            tokio::task::spawn_blocking(move || {
                // Appends in flight have their answers; anything still queued goes out now.
                let producer = inner
                    .producer
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                if let Err(e) = producer.flush(inner.settings.block_timeout) {
                    tracing::warn!(error = %e, "kafka producer: not every record was acknowledged at close");
                }
                let consumer = crate::locks::lock(&inner.consumer).take();
                if let Some((stop, thread)) = consumer {
                    stop.store(true, Ordering::Release);
                    let _ = thread.join();
                }
            })
            .await
            .map_err(|e| BufferError::Unavailable(format!("closing the kafka buffer: {e}")))
        })
    }
}
