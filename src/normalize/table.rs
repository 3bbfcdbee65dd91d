//! The per-interaction state the normalizer keeps, and the bounded table that holds it.
//!
//! Bounds: each interaction holds at most the known attributes plus the allow-listed custom
//! ones, each value cut to a configured length; the table holds at most a configured number of
//! interactions. Ended interactions are forgotten after a grace period, idle ones after a
//! longer timeout, and when the table is full the least recently seen go first.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::attrs::KNOWN;
use crate::event::{EventType, State};

/// What is remembered of one interaction (serializable, to carry it over a restart).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tracked {
    /// Known attribute values by [`super::attrs::Attr`] slot.
    pub known: [Option<Box<str>>; KNOWN],
    /// Allow-listed custom attribute values, by allow-list position.
    pub custom: Vec<Option<Box<str>>>,
    /// The unique key events are filed under.
    pub key: String,
    /// Whether `key` came from `Eic_CallIdKey` (rather than derived).
    pub key_from_cic: bool,
    /// The last valid state seen.
    pub last_state: Option<State>,
    /// Workgroup as of the last event (transfer detection).
    pub last_workgroup: Option<Box<str>>,
    /// Agent as of the last event (transfer detection).
    pub last_agent: Option<Box<str>>,
    /// How many events of each type were emitted, by [`EventType`] position (state carried
    /// from a version with fewer types reads with the new ones at zero).
    #[serde(deserialize_with = "counts_of_any_length")]
    pub counts: [u32; EventType::ALL.len()],
    /// An `ENDED` event was emitted.
    pub ended: bool,
    /// That `ENDED` came from leaving the watched queues, not from a seen disconnect: taken back
    /// if the interaction shows up again.
    pub ended_by_leaving: bool,
    /// Wall-clock ms when last touched (for idle expiry and eviction).
    #[serde(skip)]
    pub last_seen_ms: i64,
    /// Bumped on every change, so a rollback only undoes its own change.
    #[serde(skip)]
    pub generation: u64,
}

fn counts_of_any_length<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u32; EventType::ALL.len()], D::Error> {
    let v: Vec<u32> = Vec::deserialize(d)?;
    let mut out = [0; EventType::ALL.len()];
    for (slot, n) in out.iter_mut().zip(v) {
        *slot = n;
    }
    Ok(out)
}

impl Tracked {
    /// A known attribute's value, if set and non-empty.
    pub fn get(&self, slot: super::attrs::Attr) -> Option<&str> {
        self.known[slot as usize].as_deref().filter(|v| !v.is_empty())
    }

    /// Takes the next occurrence number for an event type.
    pub fn next_occurrence(&mut self, t: EventType) -> u32 {
        let i = EventType::ALL.iter().position(|x| *x == t).unwrap_or(0);
        let n = self.counts[i];
        self.counts[i] = n.saturating_add(1);
        n
    }
}

/// Interactions by CIC interaction id, bounded.
#[derive(Debug)]
pub struct Table {
    map: HashMap<String, Tracked>,
    max: usize,
    forget_ended_ms: i64,
    idle_ms: i64,
    last_sweep_ms: i64,
}

/// Why an interaction was forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgot {
    /// Ended longer ago than the grace period.
    Ended,
    /// No message for longer than the idle timeout.
    Idle,
    /// Pushed out because the table was full.
    Evicted,
}

impl Table {
    /// An empty table.
    pub fn new(max: usize, forget_ended_ms: i64, idle_ms: i64) -> Self {
        Table {
            map: HashMap::new(),
            max,
            forget_ended_ms,
            idle_ms,
            last_sweep_ms: 0,
        }
    }

    /// Interactions tracked now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none are tracked.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The state of an interaction.
    pub fn get(&self, id: &str) -> Option<&Tracked> {
        self.map.get(id)
    }

    /// Every interaction and its state, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Tracked)> {
        self.map.iter()
    }

    /// Mutable state of an interaction.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Tracked> {
        self.map.get_mut(id)
    }

    /// Removes an interaction.
    pub fn remove(&mut self, id: &str) -> Option<Tracked> {
        self.map.remove(id)
    }

    /// Puts back a state (rollback).
    pub fn restore(&mut self, id: String, t: Tracked) {
        self.map.insert(id, t);
    }

    /// Inserts a new interaction, making room first; reports what was forgotten.
    pub fn insert(&mut self, id: String, t: Tracked, now_ms: i64, forgot: &mut impl FnMut(Forgot)) {
        if self.map.len() >= self.max {
            self.sweep(now_ms, forgot);
        }
        if self.map.len() >= self.max {
            // Still full: drop the least recently seen ~1% in one pass, so a steadily full
            // table does not pay a full scan per insert.
            let n = (self.max / 100).max(1);
            let mut ages: Vec<i64> = self.map.values().map(|t| t.last_seen_ms).collect();
            let cut = *ages.select_nth_unstable(n - 1).1;
            let mut dropped = 0;
            self.map.retain(|_, t| {
                let go = dropped < n && t.last_seen_ms <= cut;
                if go {
                    dropped += 1;
                    forgot(Forgot::Evicted);
                }
                !go
            });
        }
        self.map.insert(id, t);
    }

    /// Forgets expired interactions, at most once a second.
    pub fn maybe_sweep(&mut self, now_ms: i64, forgot: &mut impl FnMut(Forgot)) {
        if now_ms - self.last_sweep_ms >= 1000 {
            self.sweep(now_ms, forgot);
        }
    }

    fn sweep(&mut self, now_ms: i64, forgot: &mut impl FnMut(Forgot)) {
        self.last_sweep_ms = now_ms;
        let (ended_ms, idle_ms) = (self.forget_ended_ms, self.idle_ms);
        self.map.retain(|_, t| {
            let age = now_ms - t.last_seen_ms;
            if t.ended && age >= ended_ms {
                forgot(Forgot::Ended);
                false
            } else if age >= idle_ms {
                forgot(Forgot::Idle);
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracked(seen: i64, ended: bool) -> Tracked {
        Tracked {
            last_seen_ms: seen,
            ended,
            ..Default::default()
        }
    }

    #[test]
    fn forgets_ended_then_idle() {
        let mut t = Table::new(1000, 100, 1000);
        let mut n = Vec::new();
        t.insert("a".into(), tracked(0, true), 0, &mut |f| n.push(f));
        t.insert("b".into(), tracked(0, false), 0, &mut |f| n.push(f));
        t.maybe_sweep(1000, &mut |f| n.push(f));
        assert_eq!(n.len(), 2);
        assert!(n.contains(&Forgot::Ended) && n.contains(&Forgot::Idle));
        assert!(t.is_empty());
    }

    #[test]
    fn full_table_evicts_the_oldest() {
        let mut t = Table::new(100, 1_000_000, 1_000_000);
        for i in 0..100 {
            t.insert(format!("i{i}"), tracked(i, false), 0, &mut |_| {});
        }
        let mut evicted = 0;
        t.insert("new".into(), tracked(500, false), 0, &mut |f| {
            assert_eq!(f, Forgot::Evicted);
            evicted += 1
        });
        assert_eq!(evicted, 1);
        assert_eq!(t.len(), 100);
        assert!(t.get("i0").is_none() && t.get("new").is_some());
    }
}
