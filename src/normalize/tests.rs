use proptest::prelude::*;

use super::*;
use crate::event::InteractionEvent;
use crate::metrics::Metrics;

fn normalizer() -> Normalizer {
    let cfg = NormalizeConfig {
        custom_attributes: vec!["AccountTier".into()],
        default_country_code: Some("1".into()),
        ..Default::default()
    };
    Normalizer::new("cic01", &cfg, Metrics::new().normalize)
}

fn obs(id: &str, attrs: &[(&str, &str)]) -> Observation<'static> {
    Observation {
        interaction_id: id.to_string().into(),
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.to_string().into(), v.to_string().into()))
            .collect(),
        observed_at_ms: Some(1_700_000_000_000),
        left: false,
        found: false,
    }
}

fn run(n: &mut Normalizer, o: &Observation) -> Vec<InteractionEvent> {
    let mut out = Vec::new();
    n.observe(o, 1_700_000_000_000, &mut out, &mut Undo::default());
    out
}

fn types(evs: &[InteractionEvent]) -> Vec<EventType> {
    evs.iter().map(|e| e.event_type).collect()
}

#[test]
fn a_call_from_offer_to_hangup() {
    let mut n = normalizer();
    let first = run(
        &mut n,
        &obs(
            "1002658707",
            &[
                ("Eic_CallIdKey", "100265870720240409"),
                ("Eic_State", "O"),
                ("Eic_CallDirection", "I"),
                ("Eic_ObjectType", "Call"),
                ("Eic_RemoteAddress", "(317) 555-1234"),
                ("Eic_WorkgroupName", "Support"),
                ("Eic_InitiationTime", "20240409T140311Z"),
                ("AccountTier", "gold"),
                ("Eic_Unrelated", "ignored"),
            ],
        ),
    );
    assert_eq!(types(&first), vec![EventType::Started, EventType::Queued]);
    let started = &first[0];
    assert_eq!(
        started.occurred_at,
        timefmt::parse_timestamp_ms("20240409T140311Z").unwrap()
    );
    assert_eq!(started.customer.phone.as_deref(), Some("+13175551234"));
    assert_eq!(started.interaction.call_id_key, "100265870720240409");
    // STARTED: the interaction as it began; what changes over its life is on the next events.
    assert_eq!(started.interaction.state, None);
    assert_eq!(started.interaction.workgroup, None);
    assert!(started.attributes.is_empty());
    assert_eq!(started.interaction.direction, Some(crate::event::Direction::Inbound));
    let queued = &first[1];
    assert_eq!(queued.attributes.get("AccountTier").map(String::as_str), Some("gold"));
    assert_eq!(queued.interaction.state, Some(State::Offering));
    assert_eq!(queued.interaction.workgroup.as_deref(), Some("Support"));

    let alerting = run(
        &mut n,
        &obs("1002658707", &[("eic_state", "A"), ("Eic_UserName", "jdoe")]),
    );
    assert_eq!(types(&alerting), vec![EventType::Alerting], "O→A: an agent is alerted");
    assert_eq!(alerting[0].interaction.agent.as_deref(), Some("jdoe"));
    let c = run(
        &mut n,
        &obs("1002658707", &[("EIC_STATE", "C"), ("Eic_UserName", "jdoe")]),
    );
    assert_eq!(types(&c), vec![EventType::Connected]);
    assert_eq!(c[0].interaction.agent.as_deref(), Some("jdoe"));
    assert_eq!(
        types(&run(&mut n, &obs("1002658707", &[("Eic_State", "H")]))),
        vec![EventType::Held]
    );
    assert_eq!(
        types(&run(&mut n, &obs("1002658707", &[("Eic_State", "C")]))),
        vec![EventType::Resumed]
    );
    let t = run(&mut n, &obs("1002658707", &[("Eic_UserName", "asmith")]));
    assert_eq!(types(&t), vec![EventType::Transferred]);
    let end = run(
        &mut n,
        &obs(
            "1002658707",
            &[("Eic_State", "E"), ("Eic_TerminationTime", "2024-04-09T14:10:00Z")],
        ),
    );
    assert_eq!(types(&end), vec![EventType::Ended]);
    assert_eq!(end[0].interaction.state, Some(State::DisconnectedRemote));
    assert_eq!(
        end[0].occurred_at,
        timefmt::parse_timestamp_ms("2024-04-09T14:10:00Z").unwrap()
    );
    assert!(
        run(&mut n, &obs("1002658707", &[("Eic_State", "I")])).is_empty(),
        "nothing after the end"
    );
}

#[test]
fn an_interaction_that_left_unseen_ends_once_with_the_id_a_seen_end_has() {
    let gone = |id: &str| Observation {
        left: true,
        ..obs(id, &[])
    };
    let key = ("Eic_CallIdKey", "100000000120240409");
    let mut seen = normalizer();
    run(&mut seen, &obs("1", &[key, ("Eic_State", "C")]));
    let ended = run(&mut seen, &obs("1", &[("Eic_State", "E")]));
    assert!(run(&mut seen, &gone("1")).is_empty(), "already ended");

    let mut unseen = normalizer();
    run(
        &mut unseen,
        &obs("1", &[key, ("Eic_State", "C"), ("Eic_WorkgroupName", "Support")]),
    );
    let left = run(&mut unseen, &gone("1"));
    assert_eq!(types(&left), vec![EventType::Ended]);
    assert_eq!(left[0].event_id, ended[0].event_id, "whoever saw the end, one event");
    assert_eq!(
        left[0].interaction.state,
        Some(State::Connected),
        "its last known state"
    );
    assert_eq!(left[0].interaction.workgroup.as_deref(), Some("Support"));
    assert!(left[0].interaction.terminated_at.is_none());
    assert!(run(&mut unseen, &gone("1")).is_empty(), "ends once");
    // Transferred back: it carries on from where it was, and its real end is an event of its own.
    assert!(
        run(&mut unseen, &obs("1", &[("Eic_State", "C")])).is_empty(),
        "nothing new"
    );
    let back = run(&mut unseen, &obs("1", &[("Eic_State", "H")]));
    assert_eq!(types(&back), vec![EventType::Held]);
    let end = run(&mut unseen, &obs("1", &[("Eic_State", "I")]));
    assert_eq!(types(&end), vec![EventType::Ended]);
    assert_ne!(end[0].event_id, left[0].event_id);
    assert!(run(&mut unseen, &gone("1")).is_empty(), "a seen end is final");
    assert!(
        run(&mut unseen, &obs("1", &[("Eic_State", "C")])).is_empty(),
        "and stays ended"
    );
    assert!(run(&mut unseen, &gone("never-seen")).is_empty());
    assert_eq!(unseen.tracked(), 1, "an unknown id is not tracked for leaving");
}

#[test]
fn the_customer_follows_the_remote_address_as_it_changes() {
    let mut n = normalizer();
    let first = run(
        &mut n,
        &obs("7", &[("Eic_State", "O"), ("Eic_RemoteAddress", "+13175551234")]),
    );
    assert_eq!(first[0].customer.phone.as_deref(), Some("+13175551234"));
    let same = run(
        &mut n,
        &obs("7", &[("Eic_State", "A"), ("Eic_RemoteAddress", "+13175551234")]),
    );
    assert_eq!(same[0].customer.phone.as_deref(), Some("+13175551234"));
    let moved = run(
        &mut n,
        &obs("7", &[("Eic_State", "C"), ("Eic_RemoteAddress", "jane@example.com")]),
    );
    assert_eq!(moved[0].customer.phone, None);
    assert_eq!(moved[0].customer.email.as_deref(), Some("jane@example.com"));
    let withheld = run(&mut n, &obs("7", &[("Eic_State", "H"), ("Eic_RemoteTnRaw", "BLCKD")]));
    assert!(withheld[0].customer.caller_id_withheld);
}

#[test]
fn every_change_of_state_is_one_event() {
    let mut n = normalizer();
    let first = run(&mut n, &obs("7", &[("Eic_CallIdKey", "720240409"), ("Eic_State", "R")]));
    assert_eq!(
        types(&first),
        vec![EventType::Started, EventType::Dialing],
        "outbound: proceeding"
    );
    let steps = [
        ("C", EventType::Connected),
        ("X", EventType::StateChanged),
        ("C", EventType::Connected),
        ("S", EventType::StateChanged),
        ("", EventType::StateChanged),
        ("A", EventType::Alerting),
        ("O", EventType::Queued),
        ("A", EventType::Alerting),
        ("P", EventType::Parked),
        ("C", EventType::Connected),
        ("H", EventType::Held),
        ("C", EventType::Resumed),
        ("M", EventType::Voicemail),
        ("I", EventType::Ended),
    ];
    let mut ids = std::collections::HashSet::new();
    for (letter, ty) in steps {
        let evs = run(&mut n, &obs("7", &[("Eic_State", letter)]));
        assert_eq!(types(&evs), vec![ty], "state {letter:?}");
        assert!(ids.insert(evs[0].event_id.clone()), "each change its own id");
        // The same state again is no change.
        if ty != EventType::Ended {
            assert!(run(&mut n, &obs("7", &[("Eic_State", letter)])).is_empty());
        }
    }
    // Unset on first sight is no change.
    assert_eq!(
        types(&run(&mut n, &obs("8", &[("Eic_State", "")]))),
        vec![EventType::Started]
    );
}

#[test]
fn bad_values_give_null_fields_not_failures() {
    let mut n = normalizer();
    let evs = run(
        &mut n,
        &obs(
            "1",
            &[
                ("Eic_State", "Q"),
                ("Eic_InitiationTime", "yesterday"),
                ("Eic_CallDirection", "sideways"),
                ("Eic_ConnectDurationTime", "long"),
            ],
        ),
    );
    assert_eq!(types(&evs), vec![EventType::Started]);
    let i = &evs[0].interaction;
    assert_eq!(
        (i.state, i.initiated_at, i.direction, i.connected_duration_ms),
        (None, None, None, None)
    );
    let warned = n.rules.metrics.warnings.with_label_values(&["state"]).get();
    assert_eq!(warned, 1);
}

#[test]
fn recycled_call_id_is_a_new_interaction() {
    let mut n = normalizer();
    run(
        &mut n,
        &obs("7", &[("Eic_CallIdKey", "000000000720240101"), ("Eic_State", "I")]),
    );
    let again = run(
        &mut n,
        &obs("7", &[("Eic_CallIdKey", "000000000720240102"), ("Eic_State", "O")]),
    );
    assert_eq!(types(&again), vec![EventType::Started, EventType::Queued]);
    assert_eq!(again[0].interaction.call_id_key, "000000000720240102");
}

#[test]
fn rollback_makes_a_retry_yield_the_same_events() {
    let mut n = normalizer();
    let o = obs("9", &[("Eic_CallIdKey", "k9"), ("Eic_State", "C")]);
    let mut first = Vec::new();
    let mut undo = Undo::default();
    n.observe(&o, 1, &mut first, &mut undo);
    n.rollback(undo);
    assert_eq!(n.tracked(), 0);
    let second = run(&mut n, &o);
    assert_eq!(first, second);
}

#[test]
fn long_values_are_cut() {
    let mut n = normalizer();
    let long = "é".repeat(5000);
    let evs = run(&mut n, &obs("5", &[("Eic_RemoteName", &long)]));
    assert!(evs[0].interaction.remote_name.as_ref().unwrap().len() <= 2048);
}

/// Records encoded straight from the normalizer's views, as the ingest path makes them.
struct Encoded<'c>(&'c crate::event::EventCodec, Vec<Vec<u8>>);

impl EventSink for Encoded<'_> {
    fn event(&mut self, ev: &crate::event::EventView<'_>) {
        let mut out = Vec::new();
        self.0.encode_view(ev, &mut out);
        self.1.push(out);
    }
}

fn arb_obs() -> impl Strategy<Value = Observation<'static>> {
    let name = prop_oneof![
        Just("Eic_State".to_string()),
        Just("eic_state".to_string()),
        Just("Eic_CallIdKey".to_string()),
        Just("Eic_WorkgroupName".to_string()),
        Just("Eic_UserName".to_string()),
        Just("Eic_InitiationTime".to_string()),
        Just("Eic_TerminationTime".to_string()),
        Just("Eic_RemoteAddress".to_string()),
        Just("Eic_RemoteTnRaw".to_string()),
        Just("Eic_ConnectDurationTime".to_string()),
        Just("Eic_ObjectType".to_string()),
        Just("Eic_CallDirection".to_string()),
        Just("AccountTier".to_string()),
        Just("Zeta".to_string()),
        Just("alpha".to_string()),
        ".{0,12}",
    ];
    let value = prop_oneof![
        prop::sample::select(vec!["A", "C", "H", "M", "O", "P", "R", "X", "S", "I", "E", "", "Z"])
            .prop_map(String::from),
        prop::sample::select(vec!["Support", "Sales", "jdoe", "asmith"]).prop_map(String::from),
        ".{0,40}",
    ];
    (
        prop::sample::select(vec!["1", "2", "3"]),
        prop::collection::vec((name, value), 0..6),
        prop::option::of(any::<i64>()),
    )
        .prop_map(|(id, attributes, observed_at_ms)| Observation {
            interaction_id: id.to_string().into(),
            attributes: attributes
                .into_iter()
                .map(|(k, v): (String, String)| (k.into(), v.into()))
                .collect(),
            observed_at_ms,
            left: false,
            found: false,
        })
}

proptest! {
    #[test]
    fn never_panics_and_ids_are_deterministic(seq in prop::collection::vec(arb_obs(), 0..40)) {
        // Custom attributes listed out of name order, which events give them in.
        let cfg = NormalizeConfig {
            custom_attributes: vec!["Zeta".into(), "AccountTier".into(), "alpha".into()],
            default_country_code: Some("1".into()),
            ..Default::default()
        };
        let mut a = Normalizer::new("cic01", &cfg, Metrics::new().normalize);
        let mut b = Normalizer::new("cic01", &cfg, Metrics::new().normalize);
        let codec = crate::event::EventCodec::new();
        let mut out_a = Vec::new();
        let mut out_b = Encoded(&codec, Vec::new());
        for o in &seq {
            a.observe(o, 1_700_000_000_000, &mut out_a, &mut Undo::default());
            b.observe(o, 1_700_000_000_000, &mut out_b, &mut Undo::default());
        }
        prop_assert_eq!(out_a.len(), out_b.1.len());
        for (ev, bytes) in out_a.iter().zip(&out_b.1) {
            // Every event encodes under the schema, and encoding it straight from the tracked
            // state (the ingest path) gives the same bytes as encoding the owned event.
            prop_assert_eq!(bytes, &codec.encode(ev));
            prop_assert_eq!(&codec.decode(bytes).unwrap(), ev);
        }
        // An id is only ever shared by the same change of the same interaction (a key that
        // comes back is the same interaction, and its events are recognisable duplicates).
        let mut seen = std::collections::HashMap::new();
        for e in &out_a {
            let what = (e.event_type, e.interaction.call_id_key.clone());
            if let Some(prev) = seen.insert(e.event_id.clone(), what.clone()) {
                prop_assert_eq!(prev, what);
            }
        }
    }

    #[test]
    fn a_message_delivered_twice_yields_nothing_new(seq in prop::collection::vec(arb_obs(), 1..30)) {
        let mut once = normalizer();
        let mut twice = normalizer();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for o in &seq {
            once.observe(o, 1_700_000_000_000, &mut a, &mut Undo::default());
            twice.observe(o, 1_700_000_000_000, &mut b, &mut Undo::default());
            twice.observe(o, 1_700_000_000_000, &mut b, &mut Undo::default());
        }
        prop_assert_eq!(a, b);
    }

    #[test]
    fn replaying_a_sequence_yields_nothing_new(seq in prop::collection::vec(arb_obs(), 1..30)) {
        let mut n = normalizer();
        let mut first = Vec::new();
        for o in &seq {
            n.observe(o, 1_700_000_000_000, &mut first, &mut Undo::default());
        }
        // Re-sending the final state of each interaction as a snapshot adds nothing.
        let mut again = Vec::new();
        for id in ["1", "2", "3"] {
            if let Some(t) = n.table.get(id) {
                let attributes: Vec<(Cow<'_, str>, Cow<'_, str>)> = attrs::NAMES
                    .iter()
                    .zip(t.known.iter())
                    .filter_map(|(k, v)| v.as_ref().map(|v| ((*k).into(), v.to_string().into())))
                    .collect();
                let snap = Observation { interaction_id: id.into(), attributes, observed_at_ms: None, left: false, found: true };
                n.observe(&snap, 1_700_000_000_000, &mut again, &mut Undo::default());
            }
        }
        prop_assert!(again.is_empty(), "snapshot replay produced {:?}", again);
    }
}

/// A state found in a snapshot never takes the id of the change a witness saw: the witness
/// dated it and described it as it was then. `STARTED`, dated by CIC, is the same from both.
#[test]
fn a_found_state_has_an_id_of_its_own_and_a_cic_dated_start_is_shared() {
    let found = |o: Observation<'static>| Observation { found: true, ..o };
    let key = ("Eic_CallIdKey", "100000000120240409");
    let born = ("Eic_InitiationTime", "20240409T140311Z");
    let mut witness = normalizer();
    let mut seen = run(&mut witness, &obs("1", &[key, born, ("Eic_State", "O")]));
    seen.extend(run(
        &mut witness,
        &obs("1", &[("Eic_State", "C"), ("Eic_UserName", "jdoe")]),
    ));
    assert_eq!(
        types(&seen),
        vec![EventType::Started, EventType::Queued, EventType::Connected]
    );

    // The partner takes over and finds it connected (later, after a transfer).
    let mut partner = normalizer();
    let later = Observation {
        observed_at_ms: Some(1_700_000_090_000),
        ..obs("1", &[key, born, ("Eic_State", "C"), ("Eic_UserName", "asmith")])
    };
    let got = run(&mut partner, &found(later));
    assert_eq!(types(&got), vec![EventType::Started, EventType::Connected]);
    // (`observed_at`, when each looked, stays in the buffer and is not sent.)
    let as_sent = InteractionEvent {
        observed_at: seen[0].observed_at,
        ..got[0].clone()
    };
    assert_eq!(as_sent, seen[0], "the same STARTED, id and content");
    assert_ne!(got[1].event_id, seen[2].event_id, "its own id for what it found");

    // Without CIC's date, even the start depends on who looked when.
    let mut undated = normalizer();
    let got = run(&mut undated, &found(obs("1", &[key, ("Eic_State", "C")])));
    assert_ne!(got[0].event_id, seen[0].event_id);

    // Missing from a snapshot is found too; removed in a delta is seen (the shared end's id).
    let gone = |found: bool| Observation {
        left: true,
        found,
        ..obs("1", &[])
    };
    let mut w = normalizer();
    run(&mut w, &obs("1", &[key, ("Eic_State", "C")]));
    let seen_end = run(&mut w, &obs("1", &[("Eic_State", "E")]));
    for (was_found, same) in [(false, true), (true, false)] {
        let mut n = normalizer();
        run(&mut n, &obs("1", &[key, ("Eic_State", "C")]));
        let left = run(&mut n, &gone(was_found));
        assert_eq!(types(&left), vec![EventType::Ended]);
        assert_eq!(left[0].event_id == seen_end[0].event_id, same, "found: {was_found}");
    }
}
