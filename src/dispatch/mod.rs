//! The dispatcher: reads the buffer, delivers to the journey sink, acknowledges what the cloud
//! confirmed.
//!
//! ```text
//!  buffer reader ─► decode ─► map to entity ─► hash(call id key) ─► lane 0 ─┐
//!                                                                 ─► lane 1 ─┼─► gate ─► Genesys Cloud
//!                                                                 ─► lane N ─┘   (pause, pacing)
//! ```
//!
//! Promises:
//! - A record is acknowledged in the buffer only after the cloud confirmed it, or after it was
//!   written and synced to a dead-letter file ([`deadletter`]). Nothing else removes it.
//! - An interaction's events go through one lane, which has one request in flight at a time and
//!   finishes a batch (retries included) before the next: they reach the cloud in order.
//! - Requests in flight are bounded by `concurrency`, items waiting by the lanes' bounded
//!   channels; the reader waits when they are full.
//! - A record that cannot be decoded or is too large for any request is dead-lettered at once,
//!   never retried forever and never dropped.

pub mod batch;
pub mod clock;
pub mod deadletter;
pub mod gate;
pub mod lane;

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::buffer::{Buffer, BufferError, BufferReader, Record};
use crate::config::JourneySinkConfig;
use crate::event::EventCodec;
use crate::metrics::SinkMetrics;
use crate::shutdown::Shutdown;
use crate::sink::journey::{JourneySink, Mapper};
use crate::timefmt;

use batch::{Batcher, Item};
use clock::AcceptClock;
use deadletter::{DeadLetter, DeadLetters};
use gate::Gate;

/// What every lane shares.
pub struct Context {
    /// The sink's settings.
    pub cfg: JourneySinkConfig,
    /// The sink.
    pub sink: JourneySink,
    /// The destination's gate.
    pub gate: Arc<Gate>,
    /// The buffer, for acknowledgements.
    pub buffer: Arc<dyn Buffer>,
    /// Dead-letter files.
    pub dead: Arc<DeadLetters>,
    /// Accept instants, for latency.
    pub clock: Arc<AcceptClock>,
    /// Metrics.
    pub metrics: SinkMetrics,
    /// Stop signal.
    pub shutdown: Shutdown,
}

impl Context {
    /// Acknowledges delivered items and measures them.
    pub fn confirm(&self, items: &[Item]) {
        if items.is_empty() {
            return;
        }
        let now = Instant::now();
        for i in items {
            if let Some(at) = self.clock.accepted_at(i.seq) {
                self.metrics
                    .accept_to_confirm
                    .observe(now.saturating_duration_since(at).as_secs_f64());
            }
        }
        self.metrics
            .delivered
            .with_label_values(&[crate::sink::journey::NAME])
            .inc_by(items.len() as u64);
        self.ack(items.iter().map(|i| i.seq));
    }

    fn ack(&self, seqs: impl Iterator<Item = u64>) {
        let mut run: Option<std::ops::Range<u64>> = None;
        for s in seqs {
            run = match run {
                Some(r) if r.end == s => Some(r.start..s + 1),
                Some(r) => {
                    self.buffer.ack(r);
                    Some(s..s + 1)
                }
                None => Some(s..s + 1),
            };
        }
        if let Some(r) = run {
            self.buffer.ack(r);
        }
        self.clock.prune(self.buffer.stats().cursor);
    }

    /// Writes dead letters (retrying the write until it succeeds), then acknowledges them;
    /// false when shutdown came first.
    pub async fn dead_letter(
        &self,
        items: Vec<(Item, &'static str, Option<u16>, String)>,
        corr: Option<String>,
    ) -> bool {
        if items.is_empty() {
            return true;
        }
        let now = timefmt::now_ms();
        let letters: Vec<DeadLetter> = items
            .iter()
            .map(|(item, reason, status, message)| DeadLetter {
                seq: item.seq,
                sink: crate::sink::journey::NAME.into(),
                reason: (*reason).into(),
                status: *status,
                correlation_id: corr.clone(),
                message: message.clone(),
                at_ms: now,
                event: self.dead.decode_event(&item.payload),
                payload: item.payload.clone(),
            })
            .collect();
        let letters = Arc::new(letters);
        loop {
            let dead = self.dead.clone();
            let l = letters.clone();
            let written = tokio::task::spawn_blocking(move || dead.write(&l)).await;
            match written {
                Ok(Ok(())) => break,
                Ok(Err(e)) => tracing::error!(error = %e, "cannot write dead letters; retrying"),
                Err(e) => tracing::error!(error = %e, "dead-letter writer failed; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = self.shutdown.wait() => return false,
            }
        }
        for (_, reason, _, _) in &items {
            self.metrics
                .dead_lettered
                .with_label_values(&[crate::sink::journey::NAME, reason])
                .inc();
        }
        self.ack(items.iter().map(|(i, ..)| i.seq));
        true
    }
}

/// A running dispatcher.
pub struct Dispatcher {
    /// The destination's gate (for `/health`).
    pub gate: Arc<Gate>,
    task: tokio::task::JoinHandle<()>,
}

impl Dispatcher {
    /// Starts reading `reader` and delivering through `ctx`, the reader and each lane a task of
    /// `supervisor` (one that panics stops the process instead of delivery silently).
    pub fn spawn(
        ctx: Context,
        reader: Box<dyn BufferReader>,
        custom_attributes: &[String],
        supervisor: &crate::supervisor::Supervisor,
    ) -> Self {
        let ctx = Arc::new(ctx);
        let gate = ctx.gate.clone();
        let mapper = Mapper::new(custom_attributes, &ctx.cfg.external_source_id);
        let lanes = ctx.cfg.concurrency.max(1);
        let mut txs = Vec::with_capacity(lanes);
        let mut handles = Vec::with_capacity(lanes);
        for _ in 0..lanes {
            // Room for a few batches per lane, so that a lane waiting for its turn never leaves
            // the others short of items (the reader blocks only on the lane that is full).
            let (tx, rx) = mpsc::channel(ctx.cfg.max_events * 4);
            txs.push(tx);
            handles.push(supervisor.spawn("dispatch_lane", lane::run(ctx.clone(), rx)));
        }
        let reading = supervisor.spawn("dispatch_reader", async move {
            read_loop(&ctx, reader, &mapper, &txs).await;
        });
        let task = tokio::spawn(async move {
            let _ = reading.await;
            for h in handles {
                let _ = h.await;
            }
        });
        Dispatcher { gate, task }
    }

    /// Waits until the dispatcher has stopped (after the shutdown signal).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

fn lane_of(key: &str, lanes: usize) -> usize {
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % lanes as u64) as usize
}

async fn read_loop(ctx: &Context, mut reader: Box<dyn BufferReader>, mapper: &Mapper, lanes: &[mpsc::Sender<Item>]) {
    let codec = EventCodec::new();
    let fits = Batcher::new(1, ctx.cfg.max_bytes, ctx.cfg.max_age());
    loop {
        let records: Vec<Record> = tokio::select! {
            r = reader.next_batch(512) => match r {
                Ok(r) => r,
                Err(BufferError::Closed) => return,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the buffer; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = ctx.shutdown.wait() => return,
                    }
                }
            },
            _ = ctx.shutdown.wait() => return,
        };
        for rec in records {
            let mut item = Item {
                seq: rec.seq,
                payload: rec.payload,
                json: Bytes::new(),
                attempts: 0,
            };
            let ev = match codec.decode(&item.payload) {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::error!(seq = item.seq, error = %e, "buffered record does not decode; dead-lettering it");
                    if !ctx
                        .dead_letter(vec![(item, "undecodable", None, e.to_string())], None)
                        .await
                    {
                        return;
                    }
                    continue;
                }
            };
            item.json = Bytes::from(serde_json::to_vec(&mapper.entity(&ev)).expect("entities serialize"));
            if !fits.fits_alone(&item) {
                let msg = format!(
                    "the entity takes {} bytes, more than sinks.journey.max_bytes allows",
                    item.json.len()
                );
                if !ctx.dead_letter(vec![(item, "too_large", None, msg)], None).await {
                    return;
                }
                continue;
            }
            let lane = &lanes[lane_of(&ev.interaction.call_id_key, lanes.len())];
            tokio::select! {
                sent = lane.send(item) => if sent.is_err() {
                    // The lane is gone: it failed, and its supervisor is stopping the process.
                    ctx.shutdown.wait().await;
                    return;
                },
                _ = ctx.shutdown.wait() => return,
            }
        }
    }
}
