//! What the normalizer carries over a restart: its state exported and imported whole, and
//! brought up to date from the events stored after it was saved (see
//! [`crate::source::carry`]).

use std::collections::HashMap;

use super::Normalizer;
use super::attrs::Attr;
use super::table::{Forgot, Tracked};
use crate::event::{EventType, InteractionEvent, State};
use crate::timefmt;

impl Normalizer {
    /// Every tracked interaction's state, ended ones included (so that one re-sent after a
    /// restart still yields nothing), to carry over a restart.
    pub fn export(&self) -> Vec<(String, Tracked)> {
        let mut all: Vec<(String, Tracked)> = self.table.iter().map(|(id, t)| (id.clone(), t.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Brings the state up to date with an event this normalizer emitted and stored in an
    /// earlier life: replaying, in order, the records stored after the carried state was saved
    /// leaves the state as it was when the process stopped — so the next observation of each
    /// interaction yields only what truly changed, with the ids that change would have had.
    ///
    /// The event is filed under the interaction whose key it carries, else under its call id
    /// (CIC's `Eic_CallId` equals the interaction id). What the event tells is taken back exactly:
    /// how many events of each type were emitted (the occurrence numbers ids are made of), the
    /// state, workgroup and agent it was emitted in (so no change is seen twice), whether it
    /// ended, and the values of the attributes it carries as they are (addresses, name, custom
    /// attributes); anything else keeps its carried value until the next observation.
    pub fn replay(&mut self, events: &[InteractionEvent], now_ms: i64) {
        let mut by_key: HashMap<String, String> =
            self.table.iter().map(|(id, t)| (t.key.clone(), id.clone())).collect();
        for ev in events {
            let key = ev.interaction.call_id_key.as_str();
            let id = by_key
                .get(key)
                .cloned()
                .unwrap_or_else(|| ev.interaction.call_id.clone());
            self.replay_one(&id, ev, now_ms);
            by_key.insert(key.to_string(), id);
        }
        self.rules.metrics.tracked.set(self.table.len() as i64);
    }

    fn replay_one(&mut self, id: &str, ev: &InteractionEvent, now_ms: i64) {
        let id = id.to_string();
        let key = ev.interaction.call_id_key.as_str();
        let metrics = self.rules.metrics.forgotten.clone();
        let mut forgot = |_: Forgot| metrics.with_label_values(&["evicted"]).inc();
        let fresh =
            ev.event_type == EventType::Started || self.table.get(&id).is_none_or(|t| t.key != key && t.key_from_cic);
        if fresh {
            // A STARTED is the first event of a fresh state (a recycled call id included).
            self.table.remove(&id);
            let derived = format!(
                "{id}{}",
                timefmt::yyyymmdd(ev.interaction.initiated_at.unwrap_or(ev.observed_at))
            );
            let mut t = Tracked {
                custom: vec![None; self.rules.custom.len()],
                key: key.to_string(),
                key_from_cic: key != derived,
                ..Default::default()
            };
            if ev.event_type != EventType::Started {
                // Its STARTED was emitted before the state was saved (and since forgotten).
                t.next_occurrence(EventType::Started);
            }
            self.table.insert(id.clone(), t, now_ms, &mut forgot);
        }
        let custom = &self.rules.custom;
        let t = self.table.get_mut(&id).expect("inserted above");
        if t.key != key {
            // A derived key gave way to the one CIC gave.
            t.key = key.to_string();
            t.key_from_cic = true;
        }
        if t.key_from_cic {
            t.known[Attr::CallIdKey as usize] = Some(key.into());
        }
        t.last_seen_ms = now_ms;
        t.next_occurrence(ev.event_type);
        if ev.event_type == EventType::Ended {
            t.ended = true;
            // An end seen as a disconnect carries that state; one from leaving, the state before.
            t.ended_by_leaving = !matches!(
                ev.interaction.state,
                Some(State::DisconnectedLocal | State::DisconnectedRemote)
            );
        }
        if ev.event_type != EventType::Started {
            // Every other event is built from the whole merged state: take it back as it was.
            let i = &ev.interaction;
            let mut set = |a: Attr, v: Option<&str>| t.known[a as usize] = v.map(Box::from);
            set(Attr::State, i.state.map(State::letter));
            set(Attr::Workgroup, i.workgroup.as_deref());
            set(Attr::UserName, i.agent.as_deref());
            set(Attr::CallId, Some(&i.call_id));
            set(Attr::LocalAddress, i.local_address.as_deref());
            set(Attr::RemoteAddress, i.remote_address.as_deref());
            set(Attr::RemoteName, i.remote_name.as_deref());
            t.last_state = i.state.or(t.last_state);
            if i.workgroup.is_some() {
                t.last_workgroup = i.workgroup.as_deref().map(Box::from);
            }
            if i.agent.is_some() {
                t.last_agent = i.agent.as_deref().map(Box::from);
            }
            for (slot, name) in t.custom.iter_mut().zip(custom) {
                *slot = ev.attributes.get(name).map(|v| Box::from(v.as_str()));
            }
        }
    }

    /// Takes back exported state, for interactions not tracked already.
    pub fn import(&mut self, entries: Vec<(String, Tracked)>, now_ms: i64) {
        let metrics = self.rules.metrics.forgotten.clone();
        for (id, mut t) in entries {
            if self.table.get(&id).is_none() {
                t.last_seen_ms = now_ms;
                // Custom values are by allow-list position: a changed list starts them afresh.
                if t.custom.len() != self.rules.custom.len() {
                    t.custom = vec![None; self.rules.custom.len()];
                }
                self.table
                    .insert(id, t, now_ms, &mut |_| metrics.with_label_values(&["evicted"]).inc());
            }
        }
        self.rules.metrics.tracked.set(self.table.len() as i64);
    }
}
