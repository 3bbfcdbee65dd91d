//! Which events an interaction's latest merge yields, and how each is built (the rules are in
//! the [module notes](super)).

use super::*;

impl Normalizer {
    /// Decides the events of the interaction's latest merge (`left`: it also left, see
    /// [`Observation::left`]; `found`: see [`Observation::found`]).
    pub(super) fn emit(
        &mut self,
        id: &str,
        observed_at: i64,
        left: bool,
        found: bool,
        out: &mut Vec<InteractionEvent>,
    ) {
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
        let mut base = Some(self.build(id, t, state, initiated_at, terminated_at, observed_at));
        let last = staged.len() - 1;
        for (i, (event_id, ty, occurred_at)) in staged.into_iter().enumerate() {
            self.events_by_type[ty as usize].inc();
            // The last event takes the built one; only the others copy it.
            let mut ev = if i == last {
                base.take().expect("built")
            } else {
                base.clone().expect("built")
            };
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
