//! How the simulated server's interactions and user statuses change, and what each change tells
//! the subscribed sessions (see the [module notes](super)).

use super::*;

impl CicSim {
    /// Applies interaction changes, and queues the resulting deltas for every subscription that
    /// sees them. An interaction that ends (state `I` or `E`) stays in its queues for `linger`,
    /// then leaves them (at a later [`CicSim::apply`] or [`CicSim::sweep`]).
    pub fn apply(&self, changes: &[Change]) {
        let now = std::time::Instant::now();
        let linger = self.cfg.linger;
        let mut inner = self.lock();
        inner.report.changes += changes.len() as u64;
        // Per session and subscription: added, changed, removed.
        type Delta = (Vec<Value>, Vec<Value>, Vec<String>);
        let mut out: HashMap<(String, String), Delta> = HashMap::new();
        let Inner {
            sessions,
            interactions,
            report,
            ..
        } = &mut *inner;
        // Interactions whose linger is over leave their queues.
        let expired: Vec<String> = interactions
            .iter()
            .filter(|(_, i)| i.ended_at.is_some_and(|t| now.duration_since(t) >= linger))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            let Some(gone) = interactions.remove(&id) else { continue };
            for (sid, s) in sessions.iter() {
                for (sub_id, sub) in &s.subs {
                    if sub.queues.iter().any(|q| gone.in_queue(q)) {
                        out.entry((sid.clone(), sub_id.clone()))
                            .or_insert_with(|| (Vec::new(), Vec::new(), Vec::new()))
                            .2
                            .push(id.clone());
                    }
                }
            }
        }
        for c in changes {
            let before = interactions.get(&c.interaction_id).cloned();
            let mut after = before.clone().unwrap_or_default();
            let mut changed: Vec<String> = Vec::new();
            for (k, v) in &c.attributes {
                let lower = k.to_ascii_lowercase();
                if after.get(&lower) != Some(v.as_str()) {
                    changed.push(lower.clone());
                    after.attrs.insert(lower, (k.to_string(), v.clone()));
                }
            }
            let ended = matches!(after.get("eic_state"), Some("I" | "E"));
            if ended && after.ended_at.is_none() {
                after.ended_at = Some(now);
            }
            // Removed with this very change only when nothing lingers.
            let leaves = ended && linger.is_zero();
            for (sid, s) in sessions.iter() {
                for (sub_id, sub) in &s.subs {
                    let was = before
                        .as_ref()
                        .is_some_and(|b| sub.queues.iter().any(|q| b.in_queue(q)));
                    let is = sub.queues.iter().any(|q| after.in_queue(q));
                    let entry = || (Vec::new(), Vec::new(), Vec::new());
                    let key = (sid.clone(), sub_id.clone());
                    if is && !was {
                        out.entry(key).or_insert_with(entry).0.push(json!({
                            "interactionId": c.interaction_id,
                            "attributes": attrs_json(&after, &sub.attrs, None),
                        }));
                    } else if is || (was && leaves) {
                        let a = attrs_json(&after, &sub.attrs, Some(&changed));
                        if a.as_object().is_some_and(|m| !m.is_empty()) {
                            out.entry(key.clone()).or_insert_with(entry).1.push(json!({
                                "interactionId": c.interaction_id,
                                "attributes": a,
                            }));
                        }
                        if leaves || !is {
                            out.entry(key).or_insert_with(entry).2.push(c.interaction_id.clone());
                        }
                    } else if was {
                        out.entry(key).or_insert_with(entry).2.push(c.interaction_id.clone());
                    }
                }
            }
            if leaves {
                interactions.remove(&c.interaction_id);
            } else {
                interactions.insert(c.interaction_id.clone(), after);
            }
        }
        for ((sid, sub_id), (added, changed, removed)) in out {
            let Some(s) = sessions.get_mut(&sid) else { continue };
            let msg = json!({
                "__type": "urn:inin.com:queues:queueContentsMessage",
                "isDelta": true,
                "subscriptionId": sub_id,
                "interactionsAdded": added,
                "interactionsChanged": changed,
                "interactionsRemoved": removed,
            });
            s.pending.push_back(msg);
            if s.pending.len() > MAX_PENDING_MESSAGES {
                s.pending.pop_front();
                report.messages_dropped += 1;
            }
        }
        drop(inner);
        self.queued.notify_waiters();
    }

    /// Sets a user's status and tells the sessions subscribed to that user.
    pub fn set_status(&self, user: &str, status_id: &str, logged_in: bool, on_phone: bool) {
        let status = UserStatus {
            user_id: user.to_string(),
            status_id: status_id.to_string(),
            status_changed: crate::timefmt::format_timestamp_ms(crate::timefmt::now_ms())
                .replace(['-', ':'], "")
                .split('.')
                .next()
                .unwrap_or_default()
                .to_string()
                + "Z",
            logged_in,
            on_phone,
            stations: if logged_in {
                vec![format!("{user}-station")]
            } else {
                vec![]
            },
        };
        let mut inner = self.lock();
        inner.statuses.insert(user.to_string(), status.clone());
        let msg = json!({
            "__type": "urn:inin.com:status:userStatusMessage",
            "isDelta": true,
            "userStatusList": [status],
        });
        for s in inner.sessions.values_mut() {
            if s.status_users.iter().any(|u| u == user) {
                s.pending.push_back(msg.clone());
            }
        }
        drop(inner);
        self.queued.notify_waiters();
    }

    /// Removes the disconnected interactions whose linger is over.
    pub fn sweep(&self) {
        self.apply(&[]);
    }
}
