//! Which events an interaction's latest merge yields, and how each is built (the rules are in
//! the [module notes](super)).

use super::*;
use crate::event::EventView;
use crate::event::view::{AttributesView, CustomerView, InteractionView};

impl Rules {
    /// Decides the events of the interaction `id`'s latest merge into `t` (`left`: it also
    /// left, see [`Observation::left`]; `found`: see [`Observation::found`]).
    pub(super) fn emit(
        &self,
        id: &str,
        t: &mut Tracked,
        observed_at: i64,
        left: bool,
        found: bool,
        out: &mut impl EventSink,
    ) {
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
        // Borrowed field by field (not through `get`), so the last values can be set beside them.
        let wg = t.known[Attr::Workgroup as usize].as_deref().filter(|v| !v.is_empty());
        let agent = t.known[Attr::UserName as usize].as_deref().filter(|v| !v.is_empty());
        let moved = |last: &Option<Box<str>>, now: Option<&str>| matches!((last, now), (Some(l), Some(n)) if &**l != n);
        if moved(&t.last_workgroup, wg) || moved(&t.last_agent, agent) {
            let detail = format!("{}\u{1f}{}", wg.unwrap_or(""), agent.unwrap_or(""));
            types.push((EventType::Transferred, detail));
        }
        if let Some(w) = wg
            && t.last_workgroup.as_deref() != Some(w)
        {
            t.last_workgroup = Some(w.into());
        }
        if let Some(a) = agent
            && t.last_agent.as_deref() != Some(a)
        {
            t.last_agent = Some(a.into());
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
        let t = &*t;
        let customer = address::customer_of(
            t.get(Attr::RemoteAddress),
            t.get(Attr::RemoteTnRaw),
            self.default_cc.as_deref(),
        );
        let interaction = self.interaction(id, t, state, initiated_at, terminated_at);
        let attributes = AttributesView::Slots {
            names: &self.custom,
            values: &t.custom,
            order: &self.custom_order,
        };
        for (event_id, ty, occurred_at) in &staged {
            self.events_by_type[*ty as usize].inc();
            let began = *ty == EventType::Started;
            out.event(&EventView {
                event_id: event_id.as_str(),
                event_type: *ty,
                occurred_at: *occurred_at,
                observed_at,
                cic_server: &self.cic_server,
                interaction: if began { as_it_began(interaction) } else { interaction },
                customer: CustomerView {
                    phone: customer.phone.as_deref(),
                    email: customer.email.as_deref(),
                    caller_id_withheld: customer.caller_id_withheld,
                },
                attributes: if began { AttributesView::NONE } else { attributes },
            });
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

    /// The interaction as the tracked state has it, borrowed from it.
    fn interaction<'t>(
        &self,
        id: &'t str,
        t: &'t Tracked,
        state: Option<State>,
        initiated_at: Option<i64>,
        terminated_at: Option<i64>,
    ) -> InteractionView<'t> {
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
        InteractionView {
            call_id_key: &t.key,
            call_id: t.get(Attr::CallId).unwrap_or(id),
            media_type: t.get(Attr::ObjectType).and_then(attrs::media_type),
            direction,
            state,
            workgroup: t.get(Attr::Workgroup),
            agent: t.get(Attr::UserName),
            local_address: t.get(Attr::LocalAddress),
            remote_address: t.get(Attr::RemoteAddress),
            remote_name: t.get(Attr::RemoteName),
            initiated_at,
            terminated_at,
            connected_duration_ms,
        }
    }
}

/// `STARTED` describes the interaction as it began, so that whoever sends its id — this
/// conduit or its partner beside the other server of a pair, live or from a later snapshot —
/// sends the same content: what an interaction is born with (its keys, medium, direction,
/// addresses, initiation time) stays; what changes over its life (state, workgroup, agent, end,
/// durations, custom attributes) is left to the events of those changes.
fn as_it_began(i: InteractionView<'_>) -> InteractionView<'_> {
    InteractionView {
        state: None,
        workgroup: None,
        agent: None,
        terminated_at: None,
        connected_duration_ms: None,
        ..i
    }
}
