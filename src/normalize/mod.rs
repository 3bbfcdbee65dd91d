//! The normalizer: ICWS-style observations (an interaction id plus a map of `Eic_*` string
//! attributes, full snapshot or delta) in, [`InteractionEvent`](crate::event::InteractionEvent)s out
//! (to an [`EventSink`]: owned, or encoded straight from the tracked state).
//!
//! It keeps each interaction's merged attributes so that deltas make sense and a repeated or
//! re-sent snapshot yields nothing new. Which events come from a change:
//!
//! - first sight of an interaction: `STARTED`, describing it as it began (see `emit.rs`);
//! - workgroup or agent changing from one value to another: `TRANSFERRED`;
//! - every change of `Eic_State`, one event each: O `QUEUED`, A `ALERTING` (with the alerted
//!   agent), R `DIALING`, C `CONNECTED` (or `RESUMED` after H), H `HELD`, P `PARKED`,
//!   M `VOICEMAIL`, I/E `ENDED` (after which the interaction yields nothing more), and X, S or
//!   a cleared state `STATE_CHANGED`;
//! - an observation that says the interaction *left* (it left every watched queue without being
//!   seen to disconnect, see [`Observation::left`]): `ENDED` with its last known state — the
//!   source will see nothing more of it. An interaction never seen before yields nothing. If it
//!   does show up again (transferred back), it carries on where it was: its later events follow,
//!   and a later disconnect is a second `ENDED` with an id of its own.
//!
//! **Seen or found.** A change seen as it happened (an ICWS delta, a push) gets the id every
//! observer gives that change — the same on a retry, after a restart, and from either conduit
//! of a switchover pair. A state only *found* (in a snapshot: first sight of an interaction, or
//! a difference from what was known, after a gap, a restart or a switchover; an interaction
//! missing from one) is reported under an id of its own (the event type's occurrence, marked
//! found), dated when found: whoever saw the change itself may already have reported it with
//! its own time and facts, and one id never stands for two contents. `STARTED` is the exception
//! when CIC dates it (`Eic_InitiationTime`): it describes the interaction as it began, the same
//! from any observer, so it keeps the one id.
//!
//! Promises: never panics on any input; unknown attributes are ignored; an unparseable value
//! yields the event anyway with that field null and a counted warning; state is bounded (see
//! [`table`]); ids come from [`crate::event::id`] and so are the same in every process that saw
//! the same sequence. Changes can be rolled back ([`Normalizer::rollback`]) when the events of a
//! request could not be stored, so a retried request yields the same events again. The state is
//! carried over a restart (exported, imported, and brought up to date from stored events:
//! [`Normalizer::replay`], in `carry.rs`). Which events a merge yields, and how each is built,
//! is in `emit.rs`.

pub mod address;
pub mod attrs;
mod carry;
mod emit;
pub mod table;

use std::borrow::Cow;
use std::collections::HashSet;

use attrs::Attr;
use table::{Forgot, Table, Tracked};

use crate::config::NormalizeConfig;
use crate::event::{EventSink, EventType, State, id};
use crate::metrics::NormalizeMetrics;
use crate::timefmt;

/// Marks the id of an event for a state found rather than seen changing (see the module notes).
const FOUND: &str = "found\u{1f}";

/// What a source saw: one interaction's attributes at one moment. Its text may borrow from
/// what the source received (a pushed body), so that reading it copies nothing the normalizer
/// does not keep.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation<'a> {
    /// ICWS `interactionId` (the call id).
    pub interaction_id: Cow<'a, str>,
    /// Attribute name → value, as ICWS sends them.
    pub attributes: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// When the sender saw it, Unix ms, if it said.
    pub observed_at_ms: Option<i64>,
    /// It left every queue the source watches (ICWS `interactionsRemoved`, or missing from the
    /// snapshot after a gap) and was not seen to disconnect: it ends as far as the source can
    /// ever tell — a call that ended unseen and one transferred out of the watched queues look
    /// the same from here.
    pub left: bool,
    /// It comes from a full snapshot (ICWS `isDelta:false`, after a subscription starts), not
    /// from a change seen as it happened: what differs from the known state changed unseen, and
    /// is reported as *found* (see the module notes).
    pub found: bool,
}

/// The changes one batch made, to undo them if its events could not be stored.
#[derive(Debug, Default)]
pub struct Undo {
    touched: HashSet<String>,
    entries: Vec<(String, Option<Tracked>, u64)>,
}

/// The normalizer and its per-interaction state.
pub struct Normalizer {
    rules: Rules,
    table: Table,
    generation: u64,
}

/// What the normalizer holds besides its state: how events are made, and where they are
/// counted (apart from the table, so that an interaction's state can be worked on in place).
struct Rules {
    cic_server: String,
    custom: Vec<String>,
    /// Positions of `custom` in name order (events list their attributes by name).
    custom_order: Vec<usize>,
    default_cc: Option<String>,
    max_value_bytes: usize,
    metrics: NormalizeMetrics,
    /// `conduit_normalize_events_total` of each type, in [`EventType::ALL`]'s order (looked up
    /// once, not at every event).
    events_by_type: Vec<prometheus::IntCounter>,
}

impl Rules {
    fn warn(&self, field: &str) {
        self.metrics.warnings.with_label_values(&[field]).inc();
    }
}

impl Normalizer {
    /// A normalizer for events from `cic_server`.
    pub fn new(cic_server: &str, cfg: &NormalizeConfig, metrics: NormalizeMetrics) -> Self {
        Normalizer {
            rules: Rules {
                cic_server: cic_server.to_string(),
                custom: cfg.custom_attributes.clone(),
                custom_order: {
                    let mut order: Vec<usize> = (0..cfg.custom_attributes.len()).collect();
                    order.sort_by(|a, b| cfg.custom_attributes[*a].cmp(&cfg.custom_attributes[*b]));
                    order
                },
                default_cc: cfg.default_country_code.clone(),
                max_value_bytes: cfg.max_attribute_value_bytes,
                events_by_type: EventType::ALL
                    .iter()
                    .map(|t| metrics.events.with_label_values(&[t.as_str()]))
                    .collect(),
                metrics,
            },
            table: Table::new(
                cfg.max_tracked_interactions,
                (cfg.forget_ended_after_secs * 1000) as i64,
                (cfg.idle_timeout_secs * 1000) as i64,
            ),
            generation: 0,
        }
    }

    /// Interactions tracked now.
    pub fn tracked(&self) -> usize {
        self.table.len()
    }

    /// Applies one observation, appending the events it yields to `out` and recording how to
    /// undo it in `undo`. `now_ms` is the wall clock (for expiry, and `observed_at` when the
    /// observation carries none).
    pub fn observe(&mut self, obs: &Observation<'_>, now_ms: i64, out: &mut impl EventSink, undo: &mut Undo) {
        let metrics = self.rules.metrics.forgotten.clone();
        let mut forgot = |f: Forgot| {
            let reason = match f {
                Forgot::Ended => "ended",
                Forgot::Idle => "idle",
                Forgot::Evicted => "evicted",
            };
            metrics.with_label_values(&[reason]).inc();
        };
        self.table.maybe_sweep(now_ms, &mut forgot);
        let id = &*obs.interaction_id;
        let incoming_key = obs
            .attributes
            .iter()
            .rev()
            .find(|(k, _)| Attr::lookup(k) == Some(Attr::CallIdKey))
            .map(|(_, v)| &**v)
            .filter(|v| !v.is_empty());
        let (known, recycled) = match self.table.get(id) {
            None if obs.left => return,
            None => (false, false),
            Some(t) if obs.left && t.ended => return,
            // A recycled call id carries a new key: it is a new interaction.
            Some(t) => (true, incoming_key.is_some_and(|k| t.key_from_cic && t.key != k)),
        };
        if !undo.touched.contains(id) {
            undo.touched.insert(id.to_string());
            let prev = if known { self.table.get(id).cloned() } else { None };
            undo.entries.push((id.to_string(), prev, 0));
        }
        if recycled {
            self.table.remove(id);
        }
        if !known || recycled {
            let fresh = Tracked {
                custom: vec![None; self.rules.custom.len()],
                ..Default::default()
            };
            self.table.insert(id.to_string(), fresh, now_ms, &mut forgot);
        }
        self.generation += 1;
        let generation = self.generation;
        if let Some(entry) = undo.entries.iter_mut().rev().find(|e| e.0 == id) {
            entry.2 = generation;
        }
        let observed_at = obs.observed_at_ms.unwrap_or(now_ms);
        let rules = &self.rules;
        let t = self.table.get_mut(id).expect("inserted above");
        if t.ended_by_leaving && !obs.left {
            t.ended = false;
            t.ended_by_leaving = false;
        }
        t.generation = generation;
        t.last_seen_ms = now_ms;
        let mut cut = false;
        for (name, value) in &obs.attributes {
            let slot = if let Some(a) = Attr::lookup(name) {
                &mut t.known[a as usize]
            } else if let Some(i) = rules.custom.iter().position(|c| c.eq_ignore_ascii_case(name)) {
                &mut t.custom[i]
            } else {
                continue;
            };
            if slot.as_deref() == Some(&**value) {
                continue;
            }
            let v = if value.len() > rules.max_value_bytes {
                cut = true;
                let mut end = rules.max_value_bytes;
                while !value.is_char_boundary(end) {
                    end -= 1;
                }
                &value[..end]
            } else {
                value
            };
            *slot = Some(v.into());
        }
        if cut {
            rules.warn("value_too_long");
        }
        rules.emit(id, t, observed_at, obs.left, obs.found, out);
        rules.metrics.tracked.set(self.table.len() as i64);
    }

    /// Undoes a batch whose events could not be stored. An interaction changed again since (by
    /// another batch) keeps that newer state.
    pub fn rollback(&mut self, undo: Undo) {
        for (id, prev, generation) in undo.entries.into_iter().rev() {
            let current = self.table.get(&id).map(|t| t.generation);
            if current.is_some_and(|g| g != generation) {
                continue;
            }
            match prev {
                Some(t) => self.table.restore(id, t),
                None => {
                    self.table.remove(&id);
                }
            }
        }
        self.rules.metrics.tracked.set(self.table.len() as i64);
    }
}

#[cfg(test)]
mod tests;
