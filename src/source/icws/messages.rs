//! ICWS messages → observations, as a pure function that never panics on what it is given.
//!
//! `urn:inin.com:queues:queueContentsMessage`: every entry of `interactionsAdded` and
//! `interactionsChanged` becomes one [`Observation`] with the attributes it carries (a full
//! snapshot or only what changed — the normalizer merges either); `interactionsRemoved` lists
//! the ids that left the subscription's queues (see [`Parsed::removed`]). Attribute values must
//! be strings; anything else makes the entry malformed. `connectionStateChangeMessage` with the
//! connection down asks for a new login. `usersMessage` (the users subscription) becomes a
//! [`UsersChange`], `userStatusMessage` a list of [`StatusChange`]s. Other message types are
//! counted and ignored.

use serde_json::Value;

use crate::normalize::Observation;
use crate::users::change::StatusChange;

/// The message type of a users configuration subscription (the shape of ICWS's configuration
/// messages: `added`, `changed`, `removed`).
pub const USERS_MESSAGE: &str = "urn:inin.com:configuration.people:usersMessage";

/// The largest message accepted (bytes of its JSON); an absurd one is refused whole.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// What one message meant.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    /// Observations, in message order.
    pub observations: Vec<Observation<'static>>,
    /// Entries skipped as malformed, with why.
    pub malformed: Vec<String>,
    /// The server says the connection is down: log in again.
    pub connection_down: bool,
    /// Whether the message was a full snapshot (`isDelta: false`).
    pub snapshot: bool,
    /// `interactionsRemoved`: ids that left the subscription's queues, in message order.
    pub removed: Vec<String>,
    /// A users-subscription message: the directory's changes.
    pub users: Option<UsersChange>,
    /// A `userStatusMessage`'s entries.
    pub statuses: Vec<StatusChange>,
    /// The message type's short name for metrics (`queue_contents`, `users`, `user_status`,
    /// `connection_state`, `other`, `malformed`).
    pub kind: &'static str,
}

/// What a users-subscription message says.
#[derive(Debug, Default, PartialEq)]
pub struct UsersChange {
    /// `isDelta: false`: `upserts` is the whole directory.
    pub full: bool,
    /// Users added or changed (`added`, `changed`), each as a configuration object.
    pub upserts: Vec<Value>,
    /// The ids of users removed.
    pub removed: Vec<String>,
}

fn users(msg: &Value, out: &mut Parsed) {
    let mut change = UsersChange {
        full: msg.get("isDelta").and_then(Value::as_bool) == Some(false),
        ..UsersChange::default()
    };
    for key in ["added", "changed"] {
        match msg.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                for u in list {
                    if crate::users::feed::cic_id(u).is_some() {
                        change.upserts.push(u.clone());
                    } else {
                        out.malformed
                            .push(format!("a user in {key} without configurationId.id"));
                    }
                }
            }
            Some(_) => out.malformed.push(format!("{key} is not an array")),
        }
    }
    match msg.get("removed") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for r in list {
                // A removed user is named by its configuration id (or, read loosely, its id).
                let id = crate::users::feed::cic_id(r).or_else(|| r.as_str().filter(|s| !s.is_empty()));
                match id {
                    Some(id) => change.removed.push(id.to_string()),
                    None => out.malformed.push("a removed user without an id".into()),
                }
            }
        }
        Some(_) => out.malformed.push("removed is not an array".into()),
    }
    out.users = Some(change);
}

fn statuses(msg: &Value, observed_at_ms: i64, out: &mut Parsed) {
    match msg.get("userStatusList") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for e in list {
                match StatusChange::from_entry(e, observed_at_ms) {
                    Ok(c) => out.statuses.push(c),
                    Err(why) => out.malformed.push(why),
                }
            }
        }
        Some(_) => out.malformed.push("userStatusList is not an array".into()),
    }
}

fn entry(e: &Value, observed_at_ms: i64, out: &mut Parsed) {
    let Some(id) = e.get("interactionId").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
        out.malformed.push("an interaction entry without interactionId".into());
        return;
    };
    if id.len() > crate::source::push::MAX_ID_LEN {
        out.malformed.push(format!(
            "an interactionId of {} bytes (at most {})",
            id.len(),
            crate::source::push::MAX_ID_LEN
        ));
        return;
    }
    let mut attributes = Vec::new();
    if let Some(attrs) = e.get("attributes") {
        let Some(map) = attrs.as_object() else {
            out.malformed
                .push(format!("interaction {id}: attributes is not an object"));
            return;
        };
        for (k, v) in map {
            match v.as_str() {
                Some(s) => attributes.push((k.clone().into(), s.to_string().into())),
                None => {
                    out.malformed
                        .push(format!("interaction {id}: attribute {k} is not a string"));
                    return;
                }
            }
        }
    }
    out.observations.push(Observation {
        interaction_id: id.to_string().into(),
        attributes,
        observed_at_ms: Some(observed_at_ms),
        left: false,
        found: out.snapshot,
    });
}

/// Interprets one message received at `observed_at_ms`.
pub fn parse(msg: &Value, observed_at_ms: i64) -> Parsed {
    let mut out = Parsed {
        kind: "other",
        ..Parsed::default()
    };
    let Some(ty) = msg.get("__type").and_then(Value::as_str) else {
        out.kind = "malformed";
        out.malformed.push("a message without __type".into());
        return out;
    };
    match ty {
        "urn:inin.com:queues:queueContentsMessage" => {
            out.kind = "queue_contents";
            out.snapshot = msg.get("isDelta").and_then(Value::as_bool) == Some(false);
            for key in ["interactionsAdded", "interactionsChanged"] {
                match msg.get(key) {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(entries)) => {
                        for e in entries {
                            entry(e, observed_at_ms, &mut out);
                        }
                    }
                    Some(_) => out.malformed.push(format!("{key} is not an array")),
                }
            }
            match msg.get("interactionsRemoved") {
                None | Some(Value::Null) => {}
                Some(Value::Array(ids)) => {
                    for id in ids {
                        match id.as_str().filter(|s| !s.is_empty()) {
                            Some(id) => out.removed.push(id.to_string()),
                            None => out
                                .malformed
                                .push("a removed interaction id that is not a non-empty string".into()),
                        }
                    }
                }
                Some(_) => out.malformed.push("interactionsRemoved is not an array".into()),
            }
        }
        USERS_MESSAGE => {
            out.kind = "users";
            users(msg, &mut out);
        }
        "urn:inin.com:status:userStatusMessage" => {
            out.kind = "user_status";
            statuses(msg, observed_at_ms, &mut out);
        }
        "urn:inin.com:connection:connectionStateChangeMessage" => {
            out.kind = "connection_state";
            let state = msg.get("newConnectionState").and_then(Value::as_str).unwrap_or("");
            out.connection_down = state.eq_ignore_ascii_case("down") || state == "0";
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn an_absurd_interaction_id_costs_only_its_entry() {
        let huge = "9".repeat(2 * 1024 * 1024);
        let m = json!({"__type": "urn:inin.com:queues:queueContentsMessage", "isDelta": true,
            "interactionsAdded": [{"interactionId": "1", "attributes": {"Eic_State": "O"}},
                                  {"interactionId": huge, "attributes": {"Eic_State": "O"}},
                                  {"interactionId": "2", "attributes": {"Eic_State": "C"}}]});
        let p = parse(&m, 7);
        let ids: Vec<&str> = p.observations.iter().map(|o| &*o.interaction_id).collect();
        assert_eq!(ids, vec!["1", "2"]);
        assert_eq!(p.malformed.len(), 1);
        assert!(p.malformed[0].len() < 100, "the reason does not repeat the id");
    }

    #[test]
    fn queue_contents_become_observations() {
        let m = json!({"__type": "urn:inin.com:queues:queueContentsMessage", "isDelta": true,
            "interactionsAdded": [{"interactionId": "1", "attributes": {"Eic_State": "O"}}],
            "interactionsChanged": [{"interactionId": "2", "attributes": {"eic_state": "C"}},
                                    {"interactionId": "3", "attributes": {"Eic_State": 5}}],
            "interactionsRemoved": ["4"]});
        let p = parse(&m, 7);
        assert_eq!(p.kind, "queue_contents");
        assert!(!p.snapshot);
        assert_eq!(p.observations.len(), 2);
        assert_eq!(p.observations[1].attributes, vec![("eic_state".into(), "C".into())]);
        assert_eq!(p.observations[0].observed_at_ms, Some(7));
        assert_eq!(p.removed, vec!["4".to_string()]);
        assert_eq!(
            p.malformed,
            vec!["interaction 3: attribute Eic_State is not a string".to_string()]
        );
        let down =
            json!({"__type": "urn:inin.com:connection:connectionStateChangeMessage", "newConnectionState": "down"});
        assert!(parse(&down, 0).connection_down);
        assert_eq!(parse(&json!({"isDelta": true}), 0).kind, "malformed");
        assert_eq!(parse(&json!({"__type": "urn:other"}), 0).kind, "other");
    }

    #[test]
    fn users_and_statuses_become_changes() {
        let m = json!({"__type": USERS_MESSAGE, "isDelta": true, "subscriptionId": "u",
            "added": [{"configurationId": {"id": "jdoe"}}, {"configurationId": {}}],
            "changed": [{"configurationId": {"id": "asmith", "displayName": "A"}}],
            "removed": [{"configurationId": {"id": "gone"}}, "gone2", 5]});
        let p = parse(&m, 0);
        let u = p.users.unwrap();
        assert!(!u.full);
        assert_eq!(u.upserts.len(), 2);
        assert_eq!(u.removed, vec!["gone".to_string(), "gone2".to_string()]);
        assert_eq!(p.malformed.len(), 2);
        let s = json!({"__type": "urn:inin.com:status:userStatusMessage", "isDelta": false,
            "userStatusList": [{"userId": "jdoe", "statusId": "Available", "statusChanged": "20210706T193229Z"},
                               {"userId": "x"}]});
        let p = parse(&s, 0);
        assert_eq!(p.kind, "user_status");
        assert_eq!(p.statuses.len(), 1);
        assert_eq!(p.statuses[0].status_id, "Available");
        assert_eq!(p.malformed.len(), 1);
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            ".{0,12}".prop_map(Value::String),
            Just(json!("urn:inin.com:queues:queueContentsMessage")),
            Just(json!("interactionsAdded")),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("__type".to_string()),
                        Just("interactionsAdded".to_string()),
                        Just("interactionsChanged".to_string()),
                        Just("interactionId".to_string()),
                        Just("attributes".to_string()),
                        Just("isDelta".to_string()),
                        "[a-zA-Z_]{1,8}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(v in arb_json()) {
            let p = parse(&v, 1);
            for o in &p.observations {
                prop_assert!(!o.interaction_id.is_empty());
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                let _ = parse(&v, 1);
            }
        }
    }
}
