//! The normalizer: ICWS-style observations (an interaction id plus a map of `Eic_*` string
//! attributes, full snapshot or delta) in, [`InteractionEvent`]s out.
//!
//! It keeps each interaction's merged attributes so that deltas make sense and a repeated or
//! re-sent snapshot yields nothing new. Which events come from a change:
//!
//! - first sight of an interaction: `STARTED`, describing it as it began (see [`as_it_began`]);
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
//! [`Normalizer::replay`], in `carry.rs`).

pub mod address;
pub mod attrs;
mod carry;
pub mod table;

use std::collections::{BTreeMap, HashSet};

use attrs::Attr;
use table::{Forgot, Table, Tracked};

use crate::config::NormalizeConfig;
use crate::event::{EventType, Interaction, InteractionEvent, State, id};
use crate::metrics::NormalizeMetrics;
use crate::timefmt;

/// Marks the id of an event for a state found rather than seen changing (see the module notes).
const FOUND: &str = "found\u{1f}";

/// What a source saw: one interaction's attributes at one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation {
    /// ICWS `interactionId` (the call id).
    pub interaction_id: String,
    /// Attribute name → value, as ICWS sends them.
    pub attributes: Vec<(String, String)>,
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
    cic_server: String,
    custom: Vec<String>,
    default_cc: Option<String>,
    max_value_bytes: usize,
    table: Table,
    generation: u64,
    metrics: NormalizeMetrics,
}

impl Normalizer {
    /// A normalizer for events from `cic_server`.
    pub fn new(cic_server: &str, cfg: &NormalizeConfig, metrics: NormalizeMetrics) -> Self {
        Normalizer {
            cic_server: cic_server.to_string(),
            custom: cfg.custom_attributes.clone(),
            default_cc: cfg.default_country_code.clone(),
            max_value_bytes: cfg.max_attribute_value_bytes,
            table: Table::new(
                cfg.max_tracked_interactions,
                (cfg.forget_ended_after_secs * 1000) as i64,
                (cfg.idle_timeout_secs * 1000) as i64,
            ),
            generation: 0,
            metrics,
        }
    }

    /// Interactions tracked now.
    pub fn tracked(&self) -> usize {
        self.table.len()
    }

    fn warn(&self, field: &str) {
        self.metrics.warnings.with_label_values(&[field]).inc();
    }

    /// Applies one observation, appending the events it yields to `out` and recording how to
    /// undo it in `undo`. `now_ms` is the wall clock (for expiry, and `observed_at` when the
    /// observation carries none).
    pub fn observe(&mut self, obs: &Observation, now_ms: i64, out: &mut Vec<InteractionEvent>, undo: &mut Undo) {
        let metrics = self.metrics.forgotten.clone();
        let mut forgot = |f: Forgot| {
            let reason = match f {
                Forgot::Ended => "ended",
                Forgot::Idle => "idle",
                Forgot::Evicted => "evicted",
            };
            metrics.with_label_values(&[reason]).inc();
        };
        self.table.maybe_sweep(now_ms, &mut forgot);
        let id = obs.interaction_id.as_str();
        if obs.left && self.table.get(id).is_none_or(|t| t.ended) {
            return;
        }
        if undo.touched.insert(id.to_string()) {
            let prev = self.table.get(id).cloned();
            undo.entries.push((id.to_string(), prev, 0));
        }
        let incoming_key = obs
            .attributes
            .iter()
            .rev()
            .find(|(k, _)| Attr::lookup(k) == Some(Attr::CallIdKey))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty());
        // A recycled call id carries a new key: it is a new interaction.
        let recycled = match (self.table.get(id), incoming_key) {
            (Some(t), Some(k)) => t.key_from_cic && t.key != k,
            _ => false,
        };
        if recycled {
            self.table.remove(id);
        }
        let is_new = self.table.get(id).is_none();
        if is_new {
            let fresh = Tracked {
                custom: vec![None; self.custom.len()],
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
        let mut cut = false;
        if let Some(t) = self.table.get_mut(id)
            && t.ended_by_leaving
            && !obs.left
        {
            t.ended = false;
            t.ended_by_leaving = false;
        }
        {
            let custom = &self.custom;
            let max = self.max_value_bytes;
            let t = self.table.get_mut(id).expect("inserted above");
            t.generation = generation;
            t.last_seen_ms = now_ms;
            for (name, value) in &obs.attributes {
                let slot = if let Some(a) = Attr::lookup(name) {
                    &mut t.known[a as usize]
                } else if let Some(i) = custom.iter().position(|c| c.eq_ignore_ascii_case(name)) {
                    &mut t.custom[i]
                } else {
                    continue;
                };
                let v = if value.len() > max {
                    cut = true;
                    let mut end = max;
                    while !value.is_char_boundary(end) {
                        end -= 1;
                    }
                    &value[..end]
                } else {
                    value.as_str()
                };
                *slot = Some(v.into());
            }
        }
        if cut {
            self.warn("value_too_long");
        }
        self.emit(id, observed_at, obs.left, obs.found, out);
        self.metrics.tracked.set(self.table.len() as i64);
    }

    /// Decides the events of the interaction's latest merge (`left`: it also left, see
    /// [`Observation::left`]; `found`: see [`Observation::found`]).
    fn emit(&mut self, id: &str, observed_at: i64, left: bool, found: bool, out: &mut Vec<InteractionEvent>) {
        let t = self.table.get(id).expect("present");
        let initiated_at = self.parse_time(t, Attr::InitiationTime);
        let terminated_at = self.parse_time(t, Attr::TerminationTime);
        let state = match t.known[Attr::State as usize].as_deref() {
            None => None,
            Some(s) => {
                let parsed = State::from_letter(s);
                if parsed.is_none() {
                    self.warn("state");
                }
                parsed
            }
        };
        let t = self.table.get_mut(id).expect("present");
        if t.key.is_empty() || t.get(Attr::CallIdKey).is_some_and(|k| k != t.key) {
            if let Some(k) = t.get(Attr::CallIdKey) {
                t.key = k.to_string();
                t.key_from_cic = true;
            } else {
                t.key = format!("{id}{}", timefmt::yyyymmdd(initiated_at.unwrap_or(observed_at)));
            }
        }
        if t.ended {
            return;
        }
        let mut types: Vec<(EventType, String)> = Vec::with_capacity(3);
        if t.counts[0] == 0 {
            types.push((EventType::Started, String::new()));
        }
        let wg = t.get(Attr::Workgroup).map(Box::<str>::from);
        let agent = t.get(Attr::UserName).map(Box::<str>::from);
        let wg_moved = t.last_workgroup.is_some() && wg.is_some() && wg != t.last_workgroup;
        let agent_moved = t.last_agent.is_some() && agent.is_some() && agent != t.last_agent;
        if wg_moved || agent_moved {
            let detail = format!(
                "{}\u{1f}{}",
                wg.as_deref().unwrap_or(""),
                agent.as_deref().unwrap_or("")
            );
            types.push((EventType::Transferred, detail));
        }
        if wg.is_some() {
            t.last_workgroup = wg;
        }
        if agent.is_some() {
            t.last_agent = agent;
        }
        if let Some(s) = state
            && Some(s) != t.last_state
        {
            // One event for every change of Eic_State.
            let ev = match s {
                State::NotSet if t.last_state.is_none() => None,
                State::Offering => Some(EventType::Queued),
                State::Alerting => Some(EventType::Alerting),
                State::Proceeding => Some(EventType::Dialing),
                State::Connected if t.last_state == Some(State::Held) => Some(EventType::Resumed),
                State::Connected => Some(EventType::Connected),
                State::Held => Some(EventType::Held),
                State::Parked => Some(EventType::Parked),
                State::Messaging => Some(EventType::Voicemail),
                State::DisconnectedLocal | State::DisconnectedRemote => Some(EventType::Ended),
                State::Suspended | State::System | State::NotSet => Some(EventType::StateChanged),
            };
            t.last_state = Some(s);
            if let Some(ev) = ev {
                types.push((ev, String::new()));
            }
        }
        // The same id as a seen disconnect would have had: whoever saw the end, one event.
        if left && !types.iter().any(|(ty, _)| *ty == EventType::Ended) {
            types.push((EventType::Ended, String::new()));
            t.ended_by_leaving = true;
        }
        if types.is_empty() {
            return;
        }
        let mut staged = Vec::with_capacity(types.len());
        for (ty, detail) in types {
            let n = t.next_occurrence(ty);
            if ty == EventType::Ended {
                t.ended = true;
            }
            let occurred_at = match ty {
                EventType::Started => initiated_at.unwrap_or(observed_at),
                EventType::Ended => terminated_at.unwrap_or(observed_at),
                _ => observed_at,
            };
            let detail = if found && !(ty == EventType::Started && initiated_at.is_some()) {
                format!("{FOUND}{detail}")
            } else {
                detail
            };
            staged.push((id::event_id(&t.key, ty, n, &detail), ty, occurred_at));
        }
        let t = self.table.get(id).expect("present");
        let base = self.build(id, t, state, initiated_at, terminated_at, observed_at);
        for (event_id, ty, occurred_at) in staged {
            self.metrics.events.with_label_values(&[ty.as_str()]).inc();
            let mut ev = base.clone();
            ev.event_id = event_id;
            ev.event_type = ty;
            ev.occurred_at = occurred_at;
            if ty == EventType::Started {
                as_it_began(&mut ev);
            }
            out.push(ev);
        }
    }

    fn parse_time(&self, t: &Tracked, a: Attr) -> Option<i64> {
        let raw = t.get(a)?;
        let v = timefmt::parse_timestamp_ms(raw);
        if v.is_none() {
            self.warn(if a == Attr::InitiationTime {
                "initiation_time"
            } else {
                "termination_time"
            });
        }
        v
    }

    fn build(
        &self,
        id: &str,
        t: &Tracked,
        state: Option<State>,
        initiated_at: Option<i64>,
        terminated_at: Option<i64>,
        observed_at: i64,
    ) -> InteractionEvent {
        let s = |a: Attr| t.get(a).map(str::to_string);
        let direction = t.get(Attr::Direction).and_then(|v| {
            let d = attrs::direction(v);
            if d.is_none() {
                self.warn("direction");
            }
            d
        });
        let connected_duration_ms = t.get(Attr::ConnectDuration).and_then(|v| {
            let d = timefmt::parse_duration_ms(v);
            if d.is_none() {
                self.warn("connected_duration");
            }
            d
        });
        let customer = address::customer_of(
            t.get(Attr::RemoteAddress),
            t.get(Attr::RemoteTnRaw),
            self.default_cc.as_deref(),
        );
        let attributes: BTreeMap<String, String> = self
            .custom
            .iter()
            .zip(&t.custom)
            .filter_map(|(name, v)| v.as_ref().map(|v| (name.clone(), v.to_string())))
            .collect();
        InteractionEvent {
            event_id: String::new(),
            event_type: EventType::Started,
            occurred_at: observed_at,
            observed_at,
            cic_server: self.cic_server.clone(),
            interaction: Interaction {
                call_id_key: t.key.clone(),
                call_id: s(Attr::CallId).unwrap_or_else(|| id.to_string()),
                media_type: t.get(Attr::ObjectType).and_then(attrs::media_type),
                direction,
                state,
                workgroup: s(Attr::Workgroup),
                agent: s(Attr::UserName),
                local_address: s(Attr::LocalAddress),
                remote_address: s(Attr::RemoteAddress),
                remote_name: s(Attr::RemoteName),
                initiated_at,
                terminated_at,
                connected_duration_ms,
            },
            customer,
            attributes,
        }
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
        self.metrics.tracked.set(self.table.len() as i64);
    }
}

/// `STARTED` describes the interaction as it began, so that whoever sends its id — this
/// conduit or its partner beside the other server of a pair, live or from a later snapshot —
/// sends the same content: what an interaction is born with (its keys, medium, direction,
/// addresses, initiation time) stays; what changes over its life (state, workgroup, agent, end,
/// durations, custom attributes) is left to the events of those changes.
fn as_it_began(ev: &mut InteractionEvent) {
    let i = &mut ev.interaction;
    i.state = None;
    i.workgroup = None;
    i.agent = None;
    i.terminated_at = None;
    i.connected_duration_ms = None;
    ev.attributes.clear();
}

#[cfg(test)]
mod tests;
