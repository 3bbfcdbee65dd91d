//! Which interactions are in the watched queues, so that one that leaves them unseen still ends.
//!
//! ICWS says an interaction left the subscription's queues with `interactionsRemoved`. After a
//! gap, the `isDelta:false` snapshot of the new subscription is the only word: an interaction
//! that was in the queues before and is missing from it left them during the gap — typically a
//! call that ended and was cleared from its queue before the conduit was back. Either way the
//! normalizer gets a `left` observation, which yields `ENDED` unless the interaction was already
//! seen to end (see [`Observation::left`]) — seen when removed in a delta, found when missing
//! from a snapshot (see [`Observation::found`]). The set mirrors the server's queue contents, so it
//! is as large as they are; it lives as long as the source, across sessions and hosts.

use std::collections::HashSet;
use std::sync::Mutex;

use super::messages::Parsed;
use crate::normalize::Observation;

/// The interactions in the watched queues, as last told.
#[derive(Debug, Default)]
pub struct Members {
    ids: Mutex<HashSet<String>>,
}

impl Members {
    /// Takes one queue-contents message into account, and appends an observation for each
    /// interaction that left (after the message's own observations, so a change that ends an
    /// interaction comes first).
    pub fn apply(&self, p: &Parsed, observed_at_ms: i64, out: &mut Vec<Observation>) {
        if p.kind != "queue_contents" {
            return;
        }
        let mut ids = crate::locks::lock(&self.ids);
        // (id, found): missing from a snapshot, or removed in a delta (seen as it happened).
        let mut gone: Vec<(String, bool)> = Vec::new();
        if p.snapshot {
            let now: HashSet<String> = p.observations.iter().map(|o| o.interaction_id.to_string()).collect();
            gone.extend(ids.iter().filter(|id| !now.contains(*id)).map(|id| (id.clone(), true)));
            gone.sort();
            *ids = now;
        } else {
            for o in &p.observations {
                if !ids.contains(&*o.interaction_id) {
                    ids.insert(o.interaction_id.to_string());
                }
            }
        }
        // Removed and added in one message: it moved between watched queues, it did not leave.
        for id in &p.removed {
            let re_added = p.observations.iter().any(|o| &o.interaction_id == id);
            if !re_added && ids.remove(id) {
                gone.push((id.clone(), false));
            }
        }
        out.extend(gone.into_iter().map(|(id, found)| Observation {
            interaction_id: id.into(),
            attributes: Vec::new(),
            observed_at_ms: Some(observed_at_ms),
            left: true,
            found,
        }));
    }

    /// The interactions in the watched queues, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = crate::locks::lock(&self.ids).iter().cloned().collect();
        ids.sort();
        ids
    }

    /// Adds interactions known to be in the watched queues (carried over a restart).
    pub fn restore(&self, ids: impl IntoIterator<Item = String>) {
        crate::locks::lock(&self.ids).extend(ids);
    }

    /// How many interactions are in the watched queues.
    pub fn len(&self) -> usize {
        crate::locks::lock(&self.ids).len()
    }

    /// Whether the watched queues are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::super::messages::parse;
    use super::*;

    fn left(m: &Members, msg: serde_json::Value) -> Vec<String> {
        let p = parse(&msg, 1);
        let mut out = Vec::new();
        m.apply(&p, 1, &mut out);
        out.into_iter()
            .filter(|o| o.left)
            .map(|o| o.interaction_id.into_owned())
            .collect()
    }

    fn contents(delta: bool, added: &[&str], removed: &[&str]) -> serde_json::Value {
        let added: Vec<_> = added
            .iter()
            .map(|id| json!({"interactionId": id, "attributes": {"Eic_State": "C"}}))
            .collect();
        json!({"__type": "urn:inin.com:queues:queueContentsMessage", "isDelta": delta,
               "interactionsAdded": added, "interactionsRemoved": removed})
    }

    #[test]
    fn removals_and_snapshot_gaps_say_who_left() {
        let m = Members::default();
        assert!(
            left(&m, contents(false, &["1", "2", "3"], &[])).is_empty(),
            "a first snapshot"
        );
        assert_eq!(left(&m, contents(true, &["4"], &["1"])), vec!["1"]);
        assert!(left(&m, contents(true, &[], &["1"])).is_empty(), "told once");
        assert!(left(&m, contents(true, &["2"], &["2"])).is_empty(), "moved, not gone");
        // After a gap: 3 vanished, 2 and 4 are still there, 5 is new.
        assert_eq!(left(&m, contents(false, &["2", "4", "5"], &[])), vec!["3"]);
        assert_eq!(m.len(), 3);
        let other = json!({"__type": "urn:inin.com:status:userStatusMessage", "isDelta": true});
        assert!(left(&m, other).is_empty());
        assert_eq!(m.len(), 3);
    }

    proptest! {
        /// Against a model: whatever messages come, an interaction is reported as gone exactly
        /// when it was in the queues and the message takes it out.
        #[test]
        fn agrees_with_a_model(steps in prop::collection::vec(
            (any::<bool>(), prop::collection::vec(0u8..12, 0..6), prop::collection::vec(0u8..12, 0..6)),
            1..40,
        )) {
            let m = Members::default();
            let mut model = std::collections::BTreeSet::new();
            for (delta, added, removed) in steps {
                let ids = |v: &[u8]| v.iter().map(|i| i.to_string()).collect::<Vec<_>>();
                let (a, r) = (ids(&added), ids(&removed));
                let a_ref: Vec<&str> = a.iter().map(String::as_str).collect();
                let r_ref: Vec<&str> = r.iter().map(String::as_str).collect();
                let mut got = left(&m, contents(delta, &a_ref, &r_ref));
                got.sort();
                let mut want: Vec<String> = if delta {
                    model.iter().filter(|id| r.contains(id) && !a.contains(id)).cloned().collect()
                } else {
                    model.iter().filter(|id| !a.contains(id)).cloned().collect()
                };
                if !delta {
                    model.clear();
                }
                model.extend(a.iter().cloned());
                for id in &r {
                    if !a.contains(id) {
                        model.remove(id);
                    }
                }
                want.sort();
                prop_assert_eq!(got, want);
                prop_assert_eq!(m.len(), model.len());
            }
        }
    }
}
