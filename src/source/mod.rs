//! Sources: where observations come in. Each source hands batches of
//! [`Observation`]s to [`Ingest`], which normalizes, encodes and stores them, and answers only
//! once they are in the buffer at the configured persist level.
//!
//! Promises: a batch is stored all or nothing; when it cannot be stored, the normalizer's state
//! is rolled back, so the sender's retry yields the same events with the same ids. An
//! observation whose event could never be stored (larger than `buffer.max_record_bytes`) is
//! named: [`Ingest::ingest`] refuses the whole batch with it ([`IngestError::Refused`], for a
//! sender that is told which item to fix), [`Ingest::ingest_each`] refuses it alone and stores
//! the rest (for a source nobody can be told, such as ICWS).
//!
//! CIC users' status changes take the same path ([`Ingest::ingest_statuses`]): stored as
//! [`Kind::UserStatus`] records, each only when it differs from the user's last stored status.

pub mod carry;
pub mod http;
pub mod icws;
pub mod push;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::buffer::{Appended, Buffer, BufferError, Entry, Kind, Position};
use crate::event::{EventCodec, EventSink, EventView, InteractionEvent};
use crate::normalize::table::Tracked;
use crate::normalize::{Normalizer, Observation, Undo};
use crate::timefmt;
use crate::users::change::StatusChange;

/// Why a batch was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The buffer refused it.
    #[error(transparent)]
    Buffer(#[from] BufferError),
    /// Some observations can never be stored; nothing of the batch was.
    #[error("{} observation(s) cannot be stored", .0.len())]
    Refused(Vec<Refusal>),
}

/// An observation refused alone: its index in the batch and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Its index in the batch.
    pub index: usize,
    /// Why, for the sender or the log.
    pub reason: String,
}

impl IngestError {
    /// Whether the sender should retry later.
    pub fn is_retryable(&self) -> bool {
        match self {
            IngestError::Buffer(e) => e.is_retryable(),
            IngestError::Refused(_) => false,
        }
    }
}

/// What happened to a stored batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    /// Events stored.
    pub events: usize,
    /// Events dropped at the size cap (`when_full = drop_newest`).
    pub dropped: usize,
    /// Observations refused alone ([`Ingest::ingest_each`]).
    pub refused: Vec<Refusal>,
}

/// The sources' state at one buffer position ([`Ingest::snapshot`]).
pub struct Snapshot {
    /// Every record before it is reflected in the state, none after.
    pub position: Position,
    /// The normalizer's tracked interactions.
    pub interactions: Vec<(String, Tracked)>,
    /// The users' last stored statuses.
    pub statuses: Vec<LastStatus>,
}

/// The shared path from observations to the buffer.
pub struct Ingest {
    /// Held shared by each batch from observing to stored (or rolled back), and exclusively by
    /// [`Ingest::snapshot`]: a snapshot never sees a batch half done.
    gate: tokio::sync::RwLock<()>,
    normalizer: Mutex<Normalizer>,
    codec: EventCodec,
    buffer: Arc<dyn Buffer>,
    /// Each CIC user's last stored status: `(statusId, statusChanged)`.
    statuses: Mutex<HashMap<String, (String, String)>>,
}

/// A user's last stored status, as carried: `(user, statusId, statusChanged)`.
pub type LastStatus = (String, String, String);

impl Ingest {
    /// Ingest into `buffer`.
    pub fn new(normalizer: Normalizer, buffer: Arc<dyn Buffer>) -> Self {
        Ingest {
            gate: tokio::sync::RwLock::new(()),
            normalizer: Mutex::new(normalizer),
            codec: EventCodec::new(),
            buffer,
            statuses: Mutex::new(HashMap::new()),
        }
    }

    /// The buffer behind it.
    pub fn buffer(&self) -> &Arc<dyn Buffer> {
        &self.buffer
    }

    /// Interactions whose state the normalizer keeps.
    pub fn tracked(&self) -> usize {
        crate::locks::lock(&self.normalizer).tracked()
    }

    /// The normalizer's whole state and the buffer position it is exact for: every record
    /// before the position is reflected in it, none after. Waits for batches in flight (new ones
    /// wait meanwhile: a few milliseconds); `None` if they take longer than `wait`.
    pub async fn snapshot(&self, wait: std::time::Duration) -> Option<Snapshot> {
        let _quiet = tokio::time::timeout(wait, self.gate.write()).await.ok()?;
        let interactions = crate::locks::lock(&self.normalizer).export();
        let mut statuses: Vec<LastStatus> = crate::locks::lock(&self.statuses)
            .iter()
            .map(|(u, (s, c))| (u.clone(), s.clone(), c.clone()))
            .collect();
        statuses.sort();
        Some(Snapshot {
            position: self.buffer.write_position(),
            interactions,
            statuses,
        })
    }

    /// Takes back the users' last statuses (carried, or replayed from the buffer).
    pub fn import_statuses(&self, statuses: impl IntoIterator<Item = LastStatus>) {
        let mut map = crate::locks::lock(&self.statuses);
        for (user, status, changed) in statuses {
            map.insert(user, (status, changed));
        }
    }

    /// Stores the status changes that differ from each user's last stored one (a snapshot after
    /// a reconnect or a restart yields only what changed), all or nothing, in order; returns how
    /// many were new.
    pub async fn ingest_statuses(&self, changes: &[StatusChange]) -> Result<usize, IngestError> {
        let _in_flight = self.gate.read().await;
        let fresh: Vec<&StatusChange> = {
            let map = crate::locks::lock(&self.statuses);
            let mut seen: HashMap<&str, (&str, &str)> = HashMap::new();
            changes
                .iter()
                .filter(|c| {
                    let last = seen
                        .get(c.user_id.as_str())
                        .copied()
                        .or_else(|| map.get(&c.user_id).map(|(s, t)| (s.as_str(), t.as_str())));
                    let new = last != Some((c.status_id.as_str(), c.changed.as_str()));
                    seen.insert(&c.user_id, (&c.status_id, &c.changed));
                    new
                })
                .collect()
        };
        if fresh.is_empty() {
            return Ok(0);
        }
        let entries = fresh
            .iter()
            .map(|c| Entry::new(Kind::UserStatus, c.user_id.clone().into_bytes(), c.encode()))
            .collect();
        match self.buffer.append(entries).await? {
            Appended::Stored { .. } => {
                let mut map = crate::locks::lock(&self.statuses);
                for c in &fresh {
                    map.insert(c.user_id.clone(), (c.status_id.clone(), c.changed.clone()));
                }
                Ok(fresh.len())
            }
            // Dropped at the size cap: not stored, so not the last stored status either.
            Appended::Dropped { .. } => Ok(0),
        }
    }

    /// Takes back carried state (see [`Normalizer::import`]).
    pub fn import_tracked(&self, entries: Vec<(String, Tracked)>) {
        crate::locks::lock(&self.normalizer).import(entries, timefmt::now_ms());
    }

    /// Brings the normalizer's state up to date with stored events (see [`Normalizer::replay`]).
    pub fn replay(&self, events: &[InteractionEvent]) {
        crate::locks::lock(&self.normalizer).replay(events, timefmt::now_ms());
    }

    /// The codec records are written with.
    pub fn codec(&self) -> &EventCodec {
        &self.codec
    }

    /// Normalizes, encodes and stores a batch, all or nothing; returns once it is stored.
    pub async fn ingest(&self, batch: &[Observation<'_>]) -> Result<Ingested, IngestError> {
        self.ingest_with(batch, false).await
    }

    /// As [`Self::ingest`], but an observation that can never be stored is refused alone
    /// (listed in [`Ingested::refused`]) and the others are stored.
    pub async fn ingest_each(&self, batch: &[Observation<'_>]) -> Result<Ingested, IngestError> {
        self.ingest_with(batch, true).await
    }

    async fn ingest_with(&self, batch: &[Observation<'_>], alone: bool) -> Result<Ingested, IngestError> {
        let _in_flight = self.gate.read().await;
        let now = timefmt::now_ms();
        let skip = std::collections::BTreeSet::new();
        let (mut records, owners, mut undo) = self.observe(batch, &skip, now);
        let max = self.buffer.max_record_bytes();
        let bad: std::collections::BTreeMap<usize, usize> = records
            .iter()
            .zip(&owners)
            .filter(|(r, _)| r.payload.len() as u64 > max)
            .map(|(r, o)| (*o, r.payload.len()))
            .collect();
        let mut refused = Vec::new();
        if !bad.is_empty() {
            crate::locks::lock(&self.normalizer).rollback(undo);
            refused = bad
                .iter()
                .map(|(index, size)| Refusal {
                    index: *index,
                    reason: format!(
                        "its event would take {size} bytes, over the {max}-byte limit (buffer.max_record_bytes): shorten its values"
                    ),
                })
                .collect();
            if !alone {
                return Err(IngestError::Refused(refused));
            }
            let skip: std::collections::BTreeSet<usize> = bad.keys().copied().collect();
            (records, _, undo) = self.observe(batch, &skip, now);
        }
        match self.buffer.append(records).await {
            Ok(Appended::Stored { count }) => Ok(Ingested {
                events: count,
                dropped: 0,
                refused,
            }),
            Ok(Appended::Dropped { count }) => Ok(Ingested {
                events: 0,
                dropped: count,
                refused,
            }),
            Err(e) => {
                crate::locks::lock(&self.normalizer).rollback(undo);
                Err(e.into())
            }
        }
    }

    /// Observes the batch but the `skip`ped indices: the events as buffer records, which
    /// observation made each, and how to undo it.
    fn observe(
        &self,
        batch: &[Observation<'_>],
        skip: &std::collections::BTreeSet<usize>,
        now: i64,
    ) -> (Vec<Entry>, Vec<usize>, Undo) {
        let mut records = Records {
            codec: &self.codec,
            entries: Vec::with_capacity(batch.len() * 2),
        };
        let mut owners = Vec::with_capacity(batch.len() * 2);
        let mut undo = Undo::default();
        let mut n = crate::locks::lock(&self.normalizer);
        for (i, o) in batch.iter().enumerate() {
            if skip.contains(&i) {
                continue;
            }
            n.observe(o, now, &mut records, &mut undo);
            owners.resize(records.entries.len(), i);
        }
        (records.entries, owners, undo)
    }
}

/// Events encoded as they come into buffer records, each keyed by its interaction (so that a
/// partitioned buffer keeps an interaction's events in order).
struct Records<'c> {
    codec: &'c EventCodec,
    entries: Vec<Entry>,
}

impl EventSink for Records<'_> {
    fn event(&mut self, ev: &EventView<'_>) {
        let mut out = Vec::with_capacity(320);
        self.codec.encode_view(ev, &mut out);
        let key = ev.interaction.call_id_key.as_bytes();
        // An interaction's events mostly follow one another: they share one copy of its key.
        let key = match self.entries.last() {
            Some(last) if last.key == key => last.key.clone(),
            _ => bytes::Bytes::copy_from_slice(key),
        };
        self.entries.push(Entry::new(Kind::Interaction, key, out));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::DiskBuffer;
    use crate::config::{BufferConfig, NormalizeConfig};
    use crate::metrics::Metrics;

    /// An ingest whose buffer takes records of at most 1 KiB, normalizing two custom attributes
    /// of up to 1 KiB each: an observation carrying both at full length makes too large an event.
    fn ingest(dir: &std::path::Path) -> Ingest {
        let metrics = Metrics::new();
        let b = BufferConfig {
            max_record_bytes: 1024,
            segment_max_bytes: 64 * 1024,
            ..BufferConfig::with_dir(dir)
        };
        let buffer: Arc<dyn Buffer> = Arc::new(DiskBuffer::open(&b, metrics.buffer.clone()).unwrap());
        let n = NormalizeConfig {
            custom_attributes: vec!["Big1".into(), "Big2".into()],
            max_attribute_value_bytes: 1024,
            ..NormalizeConfig::default()
        };
        Ingest::new(Normalizer::new("cic", &n, metrics.normalize.clone()), buffer)
    }

    fn obs(id: &str, big: bool) -> Observation<'static> {
        let mut attributes = vec![
            ("Eic_CallIdKey".to_string(), format!("{id}20240409")),
            ("Eic_State".to_string(), "C".to_string()),
        ];
        if big {
            attributes.push(("Big1".into(), "x".repeat(1000)));
            attributes.push(("Big2".into(), "y".repeat(1000)));
        }
        Observation {
            interaction_id: id.to_string().into(),
            attributes: attributes.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
            observed_at_ms: Some(1_700_000_000_000),
            left: false,
            found: false,
        }
    }

    #[test]
    fn one_observation_too_large_to_store_costs_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let ing = ingest(dir.path());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let batch = [obs("1", false), obs("2", true), obs("3", false)];

        // All or nothing (the push source): refused with the item named, nothing stored.
        match rt.block_on(ing.ingest(&batch)) {
            Err(IngestError::Refused(r)) => {
                assert_eq!(r.len(), 1);
                assert_eq!(r[0].index, 1);
                assert!(r[0].reason.contains("buffer.max_record_bytes"), "{}", r[0].reason);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ing.buffer().stats().next_seq, 0);
        assert_eq!(ing.tracked(), 0, "the normalizer's state was rolled back");

        // One by one (ICWS): the other two are stored, with the events they would have had.
        let done = rt.block_on(ing.ingest_each(&batch)).unwrap();
        assert_eq!(done.refused.iter().map(|r| r.index).collect::<Vec<_>>(), vec![1]);
        assert_eq!(done.events, 4, "STARTED and CONNECTED for interactions 1 and 3");
        assert_eq!(ing.tracked(), 2);
    }
}
