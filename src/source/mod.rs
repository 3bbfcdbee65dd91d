//! Sources: where observations come in. Each source hands batches of
//! [`Observation`]s to [`Ingest`], which normalizes, encodes and stores them, and answers only
//! once they are in the buffer at the configured persist level.
//!
//! Promises: a batch is stored all or nothing; when it cannot be stored, the normalizer's state
//! is rolled back, so the sender's retry yields the same events with the same ids.

pub mod http;
pub mod icws;
pub mod push;

use std::sync::{Arc, Mutex};

use crate::buffer::{Appended, Buffer, BufferError};
use crate::dispatch::clock::AcceptClock;
use crate::event::{CodecError, EventCodec, InteractionEvent};
use crate::normalize::table::Tracked;
use crate::normalize::{Normalizer, Observation, Undo};
use crate::timefmt;

/// Why a batch was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The buffer refused it.
    #[error(transparent)]
    Buffer(#[from] BufferError),
    /// An event did not encode (a bug: the normalizer only makes valid events).
    #[error("event encoding failed: {0}")]
    Encode(#[from] CodecError),
}

impl IngestError {
    /// Whether the sender should retry later.
    pub fn is_retryable(&self) -> bool {
        match self {
            IngestError::Buffer(e) => e.is_retryable(),
            IngestError::Encode(e) => e.is_retryable(),
        }
    }
}

/// What happened to a stored batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    /// Events stored.
    pub events: usize,
    /// Events dropped at the size cap (`when_full = drop_newest`).
    pub dropped: usize,
}

/// The shared path from observations to the buffer.
pub struct Ingest {
    normalizer: Mutex<Normalizer>,
    codec: EventCodec,
    buffer: Arc<dyn Buffer>,
    clock: Option<Arc<AcceptClock>>,
}

impl Ingest {
    /// Ingest into `buffer`.
    pub fn new(normalizer: Normalizer, buffer: Arc<dyn Buffer>) -> Self {
        Ingest {
            normalizer: Mutex::new(normalizer),
            codec: EventCodec::new(),
            buffer,
            clock: None,
        }
    }

    /// Records in `clock` when each stored batch was accepted.
    pub fn with_clock(mut self, clock: Arc<AcceptClock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The buffer behind it.
    pub fn buffer(&self) -> &Arc<dyn Buffer> {
        &self.buffer
    }

    /// Interactions whose state the normalizer keeps.
    pub fn tracked(&self) -> usize {
        self.normalizer.lock().unwrap_or_else(|p| p.into_inner()).tracked()
    }

    /// The normalizer's state for those of `ids` not ended (see [`Normalizer::export`]).
    pub fn export_tracked(&self, ids: &[String]) -> Vec<(String, Tracked)> {
        self.normalizer.lock().unwrap_or_else(|p| p.into_inner()).export(ids)
    }

    /// Takes back exported state (see [`Normalizer::import`]).
    pub fn import_tracked(&self, entries: Vec<(String, Tracked)>) {
        self.normalizer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .import(entries, timefmt::now_ms());
    }

    /// Normalizes, encodes and stores a batch; returns once it is stored.
    pub async fn ingest(&self, batch: &[Observation]) -> Result<Ingested, IngestError> {
        let now = timefmt::now_ms();
        let mut events: Vec<InteractionEvent> = Vec::with_capacity(batch.len() * 2);
        let mut undo = Undo::default();
        {
            let mut n = self.normalizer.lock().unwrap_or_else(|p| p.into_inner());
            for o in batch {
                n.observe(o, now, &mut events, &mut undo);
            }
        }
        let result = self.store(&events).await;
        match result {
            Ok(Appended::Stored { first_seq, count }) => {
                if let Some(c) = &self.clock {
                    c.record(first_seq..first_seq + count as u64, std::time::Instant::now());
                }
                Ok(Ingested {
                    events: count,
                    dropped: 0,
                })
            }
            Ok(Appended::Dropped { count }) => Ok(Ingested {
                events: 0,
                dropped: count,
            }),
            Err(e) => {
                self.normalizer.lock().unwrap_or_else(|p| p.into_inner()).rollback(undo);
                Err(e)
            }
        }
    }

    async fn store(&self, events: &[InteractionEvent]) -> Result<Appended, IngestError> {
        let mut records = Vec::with_capacity(events.len());
        for ev in events {
            let mut out = Vec::with_capacity(320);
            self.codec.encode_into(ev, &mut out)?;
            records.push(out);
        }
        Ok(self.buffer.append(records).await?)
    }
}
