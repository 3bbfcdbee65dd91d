//! A CIC user's status change, as the buffer keeps it ([`crate::buffer::Kind::UserStatus`],
//! keyed by the CIC user so that one user's changes stay in order): JSON, the fields of one
//! `userStatusList` entry of a `userStatusMessage`.

use serde::{Deserialize, Serialize};

/// The longest user or status id taken.
pub const MAX_ID: usize = 256;

/// One status change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    /// The CIC user (`userId`, the user name).
    pub user_id: String,
    /// The CIC status (`statusId`, e.g. `Available`).
    pub status_id: String,
    /// When CIC says it changed (`statusChanged`, ISO-8601 as CIC sent it).
    pub changed: String,
    /// `changed` parsed, in ms since the epoch.
    pub changed_ms: i64,
    /// `loggedIn`.
    #[serde(default)]
    pub logged_in: bool,
    /// `onPhone`.
    #[serde(default)]
    pub on_phone: bool,
}

impl StatusChange {
    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a status change encodes")
    }

    /// A stored record's payload, decoded.
    pub fn decode(payload: &[u8]) -> Option<Self> {
        serde_json::from_slice(payload).ok()
    }

    /// One entry of a `userStatusList`, or why it cannot be taken.
    pub fn from_entry(e: &serde_json::Value, now_ms: i64) -> Result<Self, String> {
        let text = |k: &str| e.get(k).and_then(serde_json::Value::as_str).map(str::trim);
        let user_id = text("userId")
            .filter(|s| !s.is_empty())
            .ok_or("a status entry without userId")?;
        let status_id = text("statusId")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("user {}: a status entry without statusId", bounded(user_id)))?;
        if user_id.len() > MAX_ID || status_id.len() > MAX_ID {
            return Err(format!("user {}: an id of more than {MAX_ID} bytes", bounded(user_id)));
        }
        let changed = text("statusChanged").unwrap_or("");
        // A change without a (readable) time is taken as of now; its id is then built from the
        // time CIC sent, so the same entry again is still the same change.
        let changed_ms = crate::timefmt::parse_timestamp_ms(changed).unwrap_or(now_ms);
        let flag = |k: &str| e.get(k).and_then(serde_json::Value::as_bool).unwrap_or(false);
        Ok(StatusChange {
            user_id: user_id.to_string(),
            status_id: status_id.to_string(),
            changed: changed.to_string(),
            changed_ms,
            logged_in: flag("loggedIn"),
            on_phone: flag("onPhone"),
        })
    }
}

fn bounded(s: &str) -> String {
    crate::outbound::bounded(s, 64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_parse_and_round_trip() {
        let e = json!({"userId": "jdoe", "statusId": "At Lunch", "statusChanged": "20210706T193229Z",
            "loggedIn": true, "onPhone": false, "stations": ["s1"]});
        let c = StatusChange::from_entry(&e, 0).unwrap();
        assert_eq!(c.changed_ms, 1_625_599_949_000);
        assert_eq!(StatusChange::decode(&c.encode()), Some(c));
        assert!(StatusChange::from_entry(&json!({"statusId": "x"}), 0).is_err());
        assert!(StatusChange::from_entry(&json!({"userId": "x", "statusId": 5}), 0).is_err());
        let undated = StatusChange::from_entry(&json!({"userId": "x", "statusId": "Available"}), 42).unwrap();
        assert_eq!(undated.changed_ms, 42);
    }
}
