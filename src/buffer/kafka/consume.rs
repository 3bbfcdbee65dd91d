//! The dispatcher's side of the Kafka buffer: a consumer in the group, on a thread of its own,
//! handing records to the one owned reader, and the offsets it commits.
//!
//! Promises:
//! - **An offset is committed only past confirmed records.** A partition's committable offset
//!   is its lowest record handed to the dispatcher and not yet acknowledged, or, when all are,
//!   the one after the last handed. Records polled but not yet handed are never committed past.
//!   Commits go out as acknowledgements move it, at most every 200 ms (each is a write at the
//!   broker), and when partitions are revoked and when the reader stops; always synchronously,
//!   so every result is counted and a failed commit is made again.
//! - **A rebalance loses nothing, and is quick.** When partitions are revoked, the records
//!   handed from them but not yet in a request are let go at once (the dispatcher drops them
//!   before their batch goes out: [`Acknowledge::claim`]), and the consumer waits up to
//!   `revoke_timeout_ms` only for those in a request to be confirmed; then it commits and
//!   forgets them: what was not confirmed by then is counted as abandoned and read again by the
//!   new owner (sent twice at most, under the same event ids). Records of a revoked partition
//!   still waiting to be handed are dropped, never handed: each assignment of a partition has a
//!   generation, and only the current one's records go on.
//! - **Bounded.** The hand-off channel is bounded; when it is full, records wait in the consumer
//!   thread up to a bound, past which it pauses its partitions (and keeps polling, so it stays in
//!   the group) until most have gone on. Partitions are resumed when assigned: librdkafka keeps
//!   a partition paused across losing and regaining it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::client::Context;
use rdkafka::message::Message;

use super::wire;
use crate::buffer::{Acker, Acknowledge, BoxFuture, BufferError, BufferReader, Position, Record};
use crate::metrics::{BufferMetrics, KafkaMetrics};

/// Records waiting in the hand-off channel at most.
const CHANNEL: usize = 4096;
/// Records polled but not yet in the channel: past this many (or bytes) the partitions are
/// paused, and resumed once fewer than [`RESUME_BELOW`] (and bytes) wait. Pausing drops
/// librdkafka's prefetched records, which are fetched again on resuming: fetching resumes while
/// seconds of records still wait, or the dispatcher would starve meanwhile (measured: resuming
/// at 1,024 of 8,192 stalled a 5,000 events/s drain for 2–3 s at every pause).
const PAUSE_AT: (usize, usize) = (16384, 16 << 20);
const RESUME_BELOW: (usize, usize) = (12288, 12 << 20);
/// The longest a poll waits.
const POLL: Duration = Duration::from_millis(50);
/// Confirmed records are committed at most this often while consuming (each commit is a write
/// at the broker); at once when partitions are revoked and when the reader stops.
const COMMIT_EVERY: Duration = Duration::from_millis(200);

/// One assigned partition, as this consumer tracks it.
#[derive(Debug)]
struct Part {
    /// The generation of its assignment.
    generation: u64,
    /// Offsets handed to the dispatcher and not yet acknowledged, each with whether a request
    /// carries it (claimed).
    handed: BTreeMap<i64, bool>,
    /// Being revoked: no record of it is claimed any more.
    revoking: bool,
    /// The offset after the last handed.
    next: Option<i64>,
    /// The last offset committed (or sent to be).
    committed: Option<i64>,
}

impl Part {
    fn committable(&self) -> Option<i64> {
        self.handed.first_key_value().map(|(o, _)| *o).or(self.next)
    }

    /// Records in a request and not yet confirmed.
    fn in_flight(&self) -> usize {
        self.handed.values().filter(|c| **c).count()
    }
}

#[derive(Debug, Default)]
struct Tracking {
    parts: BTreeMap<i32, Part>,
    generations: u64,
    /// Stopping: a revocation does not wait.
    closing: bool,
    /// A commit failed: commit every partition again.
    recommit: bool,
}

impl Tracking {
    /// `p` is assigned (again): a new generation, nothing handed yet. Returns the generation.
    fn assign(&mut self, p: i32) -> u64 {
        self.generations += 1;
        let generation = self.generations;
        self.parts.insert(
            p,
            Part {
                generation,
                handed: BTreeMap::new(),
                revoking: false,
                next: None,
                committed: None,
            },
        );
        generation
    }
}

/// What the consumer thread, its rebalance callbacks, the reader and the acknowledger share.
pub(super) struct Shared {
    topic: String,
    tracking: Mutex<Tracking>,
    acked: Condvar,
    revoke_timeout: Duration,
    metrics: KafkaMetrics,
    buffer_metrics: BufferMetrics,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tracking> {
        crate::locks::lock(&self.tracking)
    }

    /// The generation of `partition`'s assignment, if it is assigned.
    fn generation(&self, partition: i32) -> Option<u64> {
        self.lock().parts.get(&partition).map(|p| p.generation)
    }

    /// The records of current assignments among `items`, now handed to the dispatcher.
    fn hand(&self, items: Vec<Polled>) -> Vec<Record> {
        let mut t = self.lock();
        let mut out = Vec::with_capacity(items.len());
        for (generation, rec) in items {
            let p = rec.position.partition() as i32;
            let Some(part) = t.parts.get_mut(&p).filter(|x| x.generation == generation) else {
                continue;
            };
            let offset = rec.position.offset() as i64;
            // Already there when an earlier assignment's copy of it is still on its way: which
            // ever copy a request claims first is the one sent (see `claim`).
            part.handed.entry(offset).or_insert(false);
            part.next = Some(part.next.map_or(offset + 1, |n| n.max(offset + 1)));
            out.push(rec);
        }
        out
    }

    /// The partitions whose committable offset moved, marked as committed.
    fn due(&self) -> Vec<(i32, i64)> {
        let mut t = self.lock();
        let all = std::mem::take(&mut t.recommit);
        t.parts
            .iter_mut()
            .filter_map(|(p, part)| {
                let c = part.committable()?;
                (all || part.committed != Some(c)).then(|| {
                    part.committed = Some(c);
                    (*p, c)
                })
            })
            .collect()
    }

    /// Commits `offsets` synchronously and counts the result. (librdkafka reports an
    /// asynchronous manual commit's result only to an `offset_commit_cb`, which rdkafka's
    /// consumer does not set: a failed one would go unseen. One round trip every
    /// [`COMMIT_EVERY`] on the consumer thread costs nothing the lanes notice: the hand-off
    /// channel keeps them fed meanwhile.)
    fn commit<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, offsets: &[(i32, i64)]) {
        if offsets.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in offsets {
            // Always valid: an offset the broker gave.
            let _ = tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*o));
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                self.metrics.commits.with_label_values(&["ok"]).inc();
                for (p, o) in offsets {
                    self.metrics.committed.with_label_values(&[&p.to_string()]).set(*o);
                }
            }
            Err(e) => {
                self.metrics.commits.with_label_values(&["failed"]).inc();
                self.lock().recommit = true;
                tracing::warn!(error = %e, "offset commit failed; trying again");
            }
        }
    }
}

/// The consumer's context: reports, and the rebalance callbacks.
pub(super) struct DispatchContext {
    pub(super) base: Context,
    pub(super) shared: Arc<Shared>,
}

impl ClientContext for DispatchContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.base.log(level, fac, message)
    }
    fn error(&self, error: KafkaError, reason: &str) {
        self.base.error(error, reason)
    }
    fn stats_raw(&self, statistics: &[u8]) {
        let assigned = self.shared.lock().parts.keys().copied().collect();
        self.base.stats(statistics, Some(&assigned))
    }
}

impl ConsumerContext for DispatchContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let s = &self.shared;
        let revoked: Vec<i32> = tpl.elements_for_topic(&s.topic).iter().map(|e| e.partition()).collect();
        // Records handed from them and not yet in a request are let go; those in one get time
        // to be confirmed.
        let deadline = Instant::now() + s.revoke_timeout;
        let mut t = s.lock();
        for p in &revoked {
            if let Some(part) = t.parts.get_mut(p) {
                part.revoking = true;
            }
        }
        let in_flight =
            |t: &Tracking| -> usize { revoked.iter().filter_map(|p| t.parts.get(p)).map(Part::in_flight).sum() };
        while !t.closing && in_flight(&t) > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            t = s
                .acked
                .wait_timeout(t, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        let abandoned = in_flight(&t);
        let offsets: Vec<(i32, i64)> = revoked
            .iter()
            .filter_map(|p| t.parts.get(p).and_then(|x| x.committable()).map(|c| (*p, c)))
            .collect();
        drop(t);
        s.commit(consumer, &offsets);
        let mut t = s.lock();
        for p in &revoked {
            t.parts.remove(p);
            let _ = s.metrics.lag.remove_label_values(&[&p.to_string()]);
            let _ = s.metrics.committed.remove_label_values(&[&p.to_string()]);
        }
        s.metrics.assigned.set(t.parts.len() as i64);
        drop(t);
        s.metrics
            .rebalances
            .with_label_values(&["revoke"])
            .inc_by(revoked.len() as u64);
        s.metrics.abandoned.inc_by(abandoned as u64);
        tracing::info!(partitions = ?revoked, abandoned, "partitions revoked");
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(tpl) = rebalance else {
            return;
        };
        // librdkafka keeps a partition paused across losing and regaining it: one paused while
        // far behind and taken away before the resume would never be fetched again. Fetch what
        // is assigned (the consumer loop pauses it all again while it is still far behind).
        if let Err(e) = consumer.resume(tpl) {
            tracing::warn!(error = %e, "resuming assigned partitions");
        }
        let s = &self.shared;
        let assigned: Vec<i32> = tpl.elements_for_topic(&s.topic).iter().map(|e| e.partition()).collect();
        let mut t = s.lock();
        for p in &assigned {
            t.assign(*p);
        }
        s.metrics.assigned.set(t.parts.len() as i64);
        drop(t);
        s.metrics
            .rebalances
            .with_label_values(&["assign"])
            .inc_by(assigned.len() as u64);
        tracing::info!(partitions = ?assigned, "partitions assigned");
    }
}

/// The consumer thread: polls, hands records on, commits; stops when `stop` is set, with a
/// last synchronous commit.
pub(super) fn run(
    consumer: BaseConsumer<DispatchContext>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Polled>,
    stop: Arc<AtomicBool>,
) {
    let mut pending: VecDeque<Polled> = VecDeque::new();
    let mut pending_bytes = 0usize;
    let size = |(_, r): &Polled| r.payload.len() + r.key.len();
    let mut paused = false;
    let mut committed_at = Instant::now();
    while !stop.load(Ordering::Acquire) {
        while let Some(item) = pending.pop_front() {
            let bytes = size(&item);
            match tx.try_send(item) {
                Ok(()) => pending_bytes -= bytes,
                Err(mpsc::error::TrySendError::Full(item)) => {
                    pending.push_front(item);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    stop.store(true, Ordering::Release);
                    break;
                }
            }
        }
        // Far behind: stop fetching (partitions assigned meanwhile too) but stay in the group.
        let pause = if paused {
            pending.len() >= RESUME_BELOW.0 || pending_bytes >= RESUME_BELOW.1
        } else {
            pending.len() >= PAUSE_AT.0 || pending_bytes >= PAUSE_AT.1
        };
        if (pause || paused)
            && let Ok(assignment) = consumer.assignment()
        {
            let r = if pause {
                consumer.pause(&assignment)
            } else {
                consumer.resume(&assignment)
            };
            if let Err(e) = r {
                tracing::debug!(error = %e, "pausing or resuming partitions");
            }
            paused = pause;
            shared.metrics.fetch_paused.set(i64::from(pause));
        }
        let full = !pending.is_empty();
        match consumer.poll(if full { POLL / 5 } else { POLL }) {
            Some(Ok(m)) => {
                if let Some(generation) = shared.generation(m.partition()) {
                    let item = (generation, wire::record(&m));
                    pending_bytes += size(&item);
                    pending.push_back(item);
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, "kafka consumer"),
            None => {}
        }
        if committed_at.elapsed() >= COMMIT_EVERY {
            committed_at = Instant::now();
            let due = shared.due();
            shared.commit(&consumer, &due);
        }
    }
    shared.lock().closing = true;
    let due = shared.due();
    shared.commit(&consumer, &due);
    // Dropping the consumer leaves the group (its partitions go to the others at once).
    drop(consumer);
}

/// The owned reader of a Kafka buffer.
pub(super) struct KafkaReader {
    pub(super) rx: mpsc::Receiver<Polled>,
    pub(super) shared: Arc<Shared>,
    /// Stops the consumer thread when the reader goes.
    pub(super) _owner: super::Owner,
}

impl BufferReader for KafkaReader {
    fn next_batch(&mut self, max: usize) -> BoxFuture<'_, Result<Vec<Record>, BufferError>> {
        Box::pin(async move {
            loop {
                let first = self.rx.recv().await.ok_or(BufferError::Closed)?;
                let mut items = vec![first];
                while items.len() < max.max(1) {
                    match self.rx.try_recv() {
                        Ok(i) => items.push(i),
                        Err(_) => break,
                    }
                }
                let records = self.shared.hand(items);
                if !records.is_empty() {
                    return Ok(records);
                }
            }
        })
    }

    fn acker(&self) -> Acker {
        Arc::new(KafkaAcker {
            shared: self.shared.clone(),
        })
    }
}

struct KafkaAcker {
    shared: Arc<Shared>,
}

impl Acknowledge for KafkaAcker {
    fn ack(&self, positions: &[Position]) {
        let s = &self.shared;
        let mut t = s.lock();
        let mut n = 0u64;
        for pos in positions {
            if let Some(part) = t.parts.get_mut(&(pos.partition() as i32))
                && part.handed.remove(&(pos.offset() as i64)).is_some()
            {
                n += 1;
            }
        }
        drop(t);
        s.acked.notify_all();
        s.buffer_metrics.acked.inc_by(n);
    }

    fn claim(&self, positions: &[Position]) -> Vec<bool> {
        let mut t = self.shared.lock();
        positions
            .iter()
            .map(|pos| {
                t.parts
                    .get_mut(&(pos.partition() as i32))
                    .filter(|p| !p.revoking)
                    .and_then(|p| p.handed.get_mut(&(pos.offset() as i64)))
                    // Claimed already: this is a second copy of the record (read again after
                    // its partition came back, while the first was still on its way).
                    .filter(|claimed| !**claimed)
                    .map(|claimed| *claimed = true)
                    .is_some()
            })
            .collect()
    }
}

/// The consumer's shared state, for a reader of `topic`.
pub(super) fn shared(
    topic: &str,
    revoke_timeout: Duration,
    metrics: KafkaMetrics,
    buffer_metrics: BufferMetrics,
) -> Arc<Shared> {
    Arc::new(Shared {
        topic: topic.to_string(),
        tracking: Mutex::new(Tracking::default()),
        acked: Condvar::new(),
        revoke_timeout,
        metrics,
        buffer_metrics,
    })
}

/// A record polled from an assignment of its partition (the assignment's generation).
pub(super) type Polled = (u64, Record);

/// The hand-off channel.
pub(super) fn channel() -> (mpsc::Sender<Polled>, mpsc::Receiver<Polled>) {
    mpsc::channel(CHANNEL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn shared_for_test() -> Arc<Shared> {
        let r = crate::metrics::Registrar::default();
        let m = crate::metrics::Metrics::new();
        shared("t", Duration::ZERO, KafkaMetrics::register(&r), m.buffer.clone())
    }

    fn rec(p: u32, o: u64) -> Record {
        Record {
            position: Position::new(p, o),
            kind: crate::buffer::Kind::Interaction,
            key: Bytes::new(),
            accepted_ms: None,
            payload: Bytes::new(),
        }
    }

    fn assign(s: &Shared, p: i32) -> u64 {
        s.lock().assign(p)
    }

    #[test]
    fn the_commit_never_passes_an_unconfirmed_record() {
        let s = shared_for_test();
        let g = assign(&s, 0);
        assert!(s.due().is_empty(), "nothing handed: nothing to commit");
        let handed = s.hand((10..15).map(|o| (g, rec(0, o))).collect());
        assert_eq!(handed.len(), 5);
        assert_eq!(s.due(), vec![(0, 10)]);
        let acker = KafkaAcker { shared: s.clone() };
        acker.ack(&[Position::new(0, 11), Position::new(0, 12)]);
        assert!(s.due().is_empty(), "10 is not confirmed: the commit stays at 10");
        acker.ack(&[Position::new(0, 10)]);
        assert_eq!(s.due(), vec![(0, 13)]);
        acker.ack(&[Position::new(0, 14), Position::new(0, 13)]);
        assert_eq!(s.due(), vec![(0, 15)], "all confirmed: the one after the last handed");
        s.lock().recommit = true;
        assert_eq!(s.due(), vec![(0, 15)], "after a failed commit, committed again");
    }

    #[test]
    fn only_records_handed_and_still_assigned_are_this_readers_to_send() {
        let s = shared_for_test();
        let g = assign(&s, 1);
        let acker = KafkaAcker { shared: s.clone() };
        let at = |o| Position::new(1, o);
        assert_eq!(acker.claim(&[at(5)]), [false], "not handed yet");
        s.hand(vec![(g, rec(1, 5)), (g, rec(1, 6)), (g, rec(1, 7))]);
        assert_eq!(acker.claim(&[at(5)]), [true]);
        acker.ack(&[at(5)]);
        assert_eq!(acker.claim(&[at(5)]), [false], "confirmed already");
        // A request carries 6; the partition is then being revoked: only 6 is waited for, and
        // 7, not yet in a request, is the new owner's.
        assert_eq!(acker.claim(&[at(6)]), [true]);
        // A second copy of 6 (read again after the partition came back while the first was on
        // its way) is not sent too, and handing it again does not undo the claim.
        s.hand(vec![(g, rec(1, 6))]);
        assert_eq!(acker.claim(&[at(6)]), [false], "claimed already");
        s.lock().parts.get_mut(&1).unwrap().revoking = true;
        assert_eq!(s.lock().parts[&1].in_flight(), 1, "only the record in a request");
        assert_eq!(acker.claim(&[at(7), at(6)]), [false, false]);
        assert_eq!(
            s.lock().parts[&1].committable(),
            Some(6),
            "never past the one in flight"
        );
        acker.ack(&[at(6)]);
        assert_eq!(s.lock().parts[&1].in_flight(), 0);
        assert_eq!(s.lock().parts[&1].committable(), Some(7), "7 was never confirmed");
        s.lock().parts.remove(&1);
        assert_eq!(acker.claim(&[at(7)]), [false], "revoked");
    }

    #[test]
    fn records_of_an_earlier_assignment_are_never_handed() {
        let s = shared_for_test();
        let old = assign(&s, 3);
        s.lock().parts.remove(&3);
        let new = assign(&s, 3);
        let handed = s.hand(vec![(old, rec(3, 1)), (new, rec(3, 7)), (new, rec(4, 1))]);
        assert_eq!(handed, vec![rec(3, 7)], "stale and unassigned records are dropped");
        // A gap in the offsets (compaction, transaction markers) does not hold the commit.
        let handed = s.hand(vec![(new, rec(3, 9))]);
        assert_eq!(handed.len(), 1);
        KafkaAcker { shared: s.clone() }.ack(&[Position::new(3, 7), Position::new(3, 9)]);
        assert_eq!(s.due(), vec![(3, 10)]);
    }
}
