//! Which events an interaction's latest merge yields, and how each is built (the rules are in
//! the [module notes](super)).

use super::*;
use crate::event::EventView;
use crate::event::view::{AttributesView, CustomerView, InteractionView};

impl Normalizer {
    /// Decides the events of the interaction's latest merge (`left`: it also left, see
    /// [`Observation::left`]; `found`: see [`Observation::found`]).
    pub(super) fn emit(&mut self, id: &str, observed_at: i64, left: bool, found: bool, out: &mut impl EventSink) {
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
