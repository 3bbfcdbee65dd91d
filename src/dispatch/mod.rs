//! The dispatcher: one owned buffer reader, records routed by kind to the sink that takes them,
//! each sink's records delivered through its lanes; what a destination confirmed is
//! acknowledged.
//!
//! ```text
//!                              ┌► sink A: prepare ─► hash(lane key) ─► lane 0..N ─┐
//!  buffer reader ─► by kind ───┤                                                  ├─► gate of the ─► Genesys Cloud
//!                              └► sink B: prepare ─► hash(lane key) ─► lane 0..M ─┘   OAuth client
//! ```
//!
//! Dispatch is the same for every [`Sink`]: batching ([`batch`]), lanes ([`lane`]), retries,
//! pacing and pauses at the gate of the sink's OAuth client ([`gate`]: Genesys Cloud limits
//! requests per client, so every sink of one client shares one), dead letters (written by the
//! [`crate::deadletter`] writer of the sink's kind) and acknowledgements. A sink says only how a record becomes its part of a request, how parts
//! become a body, and what an answer says.
//!
//! Promises:
//! - A record is acknowledged only after its destination confirmed it, or after it was written
//!   and synced to a dead-letter file. Nothing else removes it.
//! - Each record goes to the one sink that takes its kind, and a sink acknowledges only the
//!   records routed to it; a record no sink takes is dead-lettered (`no_sink`), never dropped.
//! - Records with one lane key (an interaction) go through one lane, which has one request in
//!   flight at a time and finishes a batch (retries included) before the next: they arrive in
//!   order.
//! - Requests in flight are bounded by each sink's `concurrency`, items waiting by the lanes'
//!   bounded channels; the reader waits when they are full.
//! - A record that cannot be prepared or is too large for any request is dead-lettered at once,
//!   never retried forever and never dropped.

pub mod batch;
pub mod gate;
pub mod lane;

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::buffer::{Acker, BufferError, BufferReader, Record};
use crate::metrics::SinkMetrics;
use crate::shutdown::Shutdown;
use crate::sink::Sink;
use crate::timefmt;

use crate::deadletter::{DeadLetter, Keep};
use batch::Item;
use gate::Gate;

/// How one sink's records are batched, sent and retried (from its config section).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Lanes, and so requests in flight at most.
    pub concurrency: usize,
    /// Records per request at most.
    pub max_events: usize,
    /// Bytes per request body at most.
    pub max_bytes: usize,
    /// How long a batch waits for more records.
    pub max_age: Duration,
    /// The first retry's backoff bound.
    pub retry_initial: Duration,
    /// The largest backoff bound.
    pub retry_max: Duration,
    /// Sends of a record the destination keeps returning as retryable, before it is
    /// dead-lettered.
    pub max_entity_attempts: u32,
}

/// One sink and how to deliver to it.
pub struct Route {
    /// The sink.
    pub sink: Arc<dyn Sink>,
    /// How.
    pub delivery: Delivery,
    /// The gate of the sink's OAuth client, shared by every sink of that client.
    pub gate: Arc<Gate>,
    /// The dead-letter writer of the sink's kind of record.
    pub dead: Arc<dyn Keep>,
}

/// What every sink's lanes share.
pub struct Common {
    /// Acknowledges for the dispatcher's buffer reader.
    pub acker: Acker,
    /// Where records no sink takes are dead-lettered.
    pub unroutable: Arc<dyn Keep>,
    /// Metrics.
    pub metrics: SinkMetrics,
    /// The hard stop: lanes give up at once (at the drain deadline).
    pub stop: Shutdown,
}

impl Common {
    fn ack<'a>(&self, items: impl Iterator<Item = &'a Item>) {
        let positions: Vec<_> = items.map(|i| i.position).collect();
        self.acker.ack(&positions);
    }

    /// Writes dead letters for `sink` with `keep` (retrying the write until it succeeds), then
    /// acknowledges them; false when stopped first.
    pub async fn dead_letter(
        &self,
        keep: &Arc<dyn Keep>,
        sink: &str,
        items: Vec<Letter>,
        corr: Option<String>,
    ) -> bool {
        if items.is_empty() {
            return true;
        }
        let now = timefmt::now_ms();
        let letters: Vec<DeadLetter<()>> = items
            .iter()
            .map(|l| DeadLetter {
                seq: l.item.position.offset(),
                partition: l.item.position.partition(),
                sink: sink.into(),
                reason: l.reason.into(),
                status: l.status,
                correlation_id: corr.clone(),
                message: l.message.clone(),
                at_ms: now,
                event: None,
                payload: l.item.payload.clone(),
            })
            .collect();
        loop {
            let (keep, l) = (keep.clone(), letters.clone());
            let written = tokio::task::spawn_blocking(move || keep.keep(l)).await;
            match written {
                Ok(Ok(())) => break,
                Ok(Err(e)) => tracing::error!(error = %e, "cannot write dead letters; retrying"),
                Err(e) => tracing::error!(error = %e, "dead-letter writer failed; retrying"),
            }
            if !self.stop.sleep(Duration::from_secs(1)).await {
                return false;
            }
        }
        for l in &items {
            self.metrics.dead_lettered.with_label_values(&[sink, l.reason]).inc();
        }
        self.ack(items.iter().map(|l| &l.item));
        true
    }
}

/// A record to dead-letter, and why.
#[derive(Debug, Clone)]
pub struct Letter {
    /// The record.
    pub item: Item,
    /// Bounded reason code.
    pub reason: &'static str,
    /// The destination's status, when it answered.
    pub status: Option<u16>,
    /// What is wrong.
    pub message: String,
}

impl Letter {
    /// `item`, dead-lettered for `reason`.
    pub fn new(item: Item, reason: &'static str, status: Option<u16>, message: impl Into<String>) -> Self {
        Letter {
            item,
            reason,
            status,
            message: message.into(),
        }
    }
}

/// What one sink's lanes share.
pub struct Context {
    /// The sink.
    pub sink: Arc<dyn Sink>,
    /// How its records are delivered.
    pub delivery: Delivery,
    /// The gate of its OAuth client.
    pub gate: Arc<Gate>,
    /// Its dead-letter writer.
    pub dead: Arc<dyn Keep>,
    /// What every sink shares.
    pub common: Arc<Common>,
}

impl Context {
    /// Acknowledges delivered items and measures them.
    pub fn confirm(&self, items: &[Item]) {
        if items.is_empty() {
            return;
        }
        let now = timefmt::now_ms();
        let m = &self.common.metrics;
        for at in items.iter().filter_map(|i| i.accepted_ms) {
            m.accept_to_confirm
                .observe(now.saturating_sub(at).max(0) as f64 / 1000.0);
        }
        m.delivered
            .with_label_values(&[self.sink.name()])
            .inc_by(items.len() as u64);
        self.common.ack(items.iter());
    }

    /// Dead-letters items of this sink (see [`Common::dead_letter`]).
    pub async fn dead_letter(&self, items: Vec<Letter>, corr: Option<String>) -> bool {
        self.common.dead_letter(&self.dead, self.sink.name(), items, corr).await
    }
}

/// A running dispatcher.
pub struct Dispatcher {
    /// Each sink's name and its client's gate (for `/health`).
    pub destinations: Vec<(&'static str, Arc<Gate>)>,
    stop: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

/// The sink named on a dead letter no sink takes.
pub const NO_SINK: &str = "none";

impl Dispatcher {
    /// Starts reading `reader` and delivering to `routes`, dead-lettering records no route takes
    /// with `unroutable`; the reader and each lane a task of `supervisor` (one that panics stops
    /// the process instead of delivery silently). At `shutdown` the reader stops and each lane
    /// finishes what it holds (see [`Dispatcher::drain`]).
    pub fn spawn(
        reader: Box<dyn BufferReader>,
        routes: Vec<Route>,
        unroutable: Arc<dyn Keep>,
        metrics: SinkMetrics,
        shutdown: &Shutdown,
        supervisor: &crate::supervisor::Supervisor,
    ) -> Self {
        let stop = Shutdown::new();
        let common = Arc::new(Common {
            acker: reader.acker(),
            unroutable,
            metrics,
            stop: stop.clone(),
        });
        for r in &routes {
            common.metrics.prepare(r.sink.name(), r.sink.refusal_reasons());
        }
        let destinations = routes.iter().map(|r| (r.sink.name(), r.gate.clone())).collect();
        let mut handles = Vec::new();
        let mut sinks = Vec::with_capacity(routes.len());
        for route in routes {
            let ctx = Arc::new(Context {
                sink: route.sink,
                delivery: route.delivery,
                gate: route.gate,
                dead: route.dead,
                common: common.clone(),
            });
            let lanes = ctx.delivery.concurrency.max(1);
            let mut txs = Vec::with_capacity(lanes);
            for _ in 0..lanes {
                // Room for a few batches per lane, so that a lane waiting for its turn never
                // leaves the others short of items (the reader blocks only on the lane that is
                // full).
                let (tx, rx) = mpsc::channel(ctx.delivery.max_events * 4);
                txs.push(tx);
                handles.push(supervisor.spawn("dispatch_lane", lane::run(ctx.clone(), rx)));
            }
            sinks.push((ctx, txs));
        }
        let shutdown = shutdown.clone();
        let reading = supervisor.spawn("dispatch_reader", async move {
            read_loop(&common, reader, &sinks, &shutdown).await;
        });
        let task = tokio::spawn(async move {
            let _ = reading.await;
            for h in handles {
                let _ = h.await;
            }
        });
        Dispatcher {
            destinations,
            stop,
            task,
        }
    }

    /// After the shutdown signal: waits for the lanes to deliver what they hold (requests in
    /// flight, batches begun) for up to `deadline`, then stops them. What they had not confirmed
    /// by then stays in the buffer and is sent again after the restart.
    pub async fn drain(self, deadline: Duration) {
        let mut task = self.task;
        if tokio::time::timeout(deadline, &mut task).await.is_err() {
            tracing::warn!(
                deadline_ms = deadline.as_millis() as u64,
                "requests still in flight at the drain deadline: stopping them (they are sent again after the restart)"
            );
            self.stop.trigger();
            let _ = task.await;
        }
    }
}

fn lane_of(key: &[u8], lanes: usize) -> usize {
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % lanes as u64) as usize
}

type Lanes = (Arc<Context>, Vec<mpsc::Sender<Item>>);

async fn read_loop(common: &Common, mut reader: Box<dyn BufferReader>, sinks: &[Lanes], shutdown: &Shutdown) {
    loop {
        let records: Vec<Record> = tokio::select! {
            r = reader.next_batch(512) => match r {
                Ok(r) => r,
                Err(BufferError::Closed) => return,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the buffer; retrying");
                    if !shutdown.sleep(Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            },
            _ = shutdown.wait() => return,
        };
        for rec in records {
            if !route(common, sinks, rec, shutdown).await {
                return;
            }
        }
    }
}

/// Hands one record to the lane of the sink that takes it, or dead-letters it; false when
/// stopping.
async fn route(common: &Common, sinks: &[Lanes], rec: Record, shutdown: &Shutdown) -> bool {
    let Some((ctx, lanes)) = sinks.iter().find(|(c, _)| c.sink.takes(rec.kind)) else {
        tracing::error!(position = %rec.position, kind = rec.kind.code(), "no sink takes this kind of record; dead-lettering it");
        let message = format!("no configured sink takes records of kind {}", rec.kind.code());
        let letter = Letter::new(Item::of(&rec), "no_sink", None, message);
        return common
            .dead_letter(&common.unroutable, NO_SINK, vec![letter], None)
            .await;
    };
    let prepared = ctx.sink.prepare(&rec);
    let mut item = Item::of(&rec);
    let lane_key = match prepared {
        Ok(p) => {
            item.part = p.part;
            p.lane_key
        }
        Err(why) => {
            tracing::error!(position = %rec.position, sink = ctx.sink.name(), reason = why.reason, error = %why.message, "a buffered record cannot be sent; dead-lettering it");
            return ctx
                .dead_letter(vec![Letter::new(item, why.reason, None, why.message)], None)
                .await;
        }
    };
    if !batch::fits_alone(&item, ctx.sink.envelope_bytes(), ctx.delivery.max_bytes) {
        let msg = format!(
            "the record takes {} bytes of a request, more than sinks.{}.max_bytes allows",
            item.part.len(),
            ctx.sink.name()
        );
        return ctx
            .dead_letter(vec![Letter::new(item, "too_large", None, msg)], None)
            .await;
    }
    let lane = &lanes[lane_of(&lane_key, lanes.len())];
    tokio::select! {
        sent = lane.send(item) => if sent.is_err() {
            // The lane is gone: it failed, and its supervisor is stopping the process.
            shutdown.wait().await;
            return false;
        },
        _ = shutdown.wait() => return false,
    }
    true
}
