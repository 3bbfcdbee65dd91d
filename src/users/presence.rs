//! CIC statuses as Genesys Cloud presence: which system presence a CIC status id means, and the
//! deterministic id of a presence event.
//!
//! The defaults match by meaning ([`DEFAULTS`]); a configured map comes first; a status neither
//! names is unmapped — reported, never guessed. The presence definition itself is looked up in
//! the organization by its system presence (ids differ per organization).
//!
//! `UserPresenceEvent.eventId` is documented as a version-4 UUID. The id here is derived from the
//! change itself (the user, the status and CIC's change time — not the server's name, which
//! differs between the two servers of a switchover pair: the same change has the same id on a
//! retry, after a restart and from either conduit of a pair), then given the version-4 and RFC
//! 4122 variant bits, so that it has the documented form and stays deterministic.

use std::collections::BTreeMap;

/// CIC's standard statuses and the system presence each means.
pub const DEFAULTS: [(&str, &str); 17] = [
    ("Available", "Available"),
    ("Available, Follow-Me", "Available"),
    ("Available, Forward", "Available"),
    ("Available, No ACD", "Available"),
    ("Working at Home", "Available"),
    ("Do Not Disturb", "Busy"),
    ("Follow Up", "Busy"),
    ("At Lunch", "Meal"),
    ("Away from desk", "Away"),
    ("In a Meeting", "Meeting"),
    ("At a Training Session", "Training"),
    ("Gone Home", "Offline"),
    ("On Vacation", "Offline"),
    ("Out of the Office", "Offline"),
    ("Out of Town", "Offline"),
    ("At Break", "Break"),
    ("Unavailable", "Busy"),
];

/// The system presences a status may map to.
pub const SYSTEM_PRESENCES: [&str; 9] = [
    "Available",
    "Busy",
    "Away",
    "Break",
    "Meal",
    "Meeting",
    "Training",
    "Offline",
    "Idle",
];

/// The system presence `status_id` means: the configured map first (matched exactly), then the
/// defaults (without regard to case); `None` when neither names it.
pub fn presence_of<'a>(status_id: &str, configured: &'a BTreeMap<String, String>) -> Option<&'a str> {
    if let Some(p) = configured.get(status_id) {
        return Some(p.as_str());
    }
    DEFAULTS
        .iter()
        .find(|(s, _)| s.eq_ignore_ascii_case(status_id.trim()))
        .map(|(_, p)| *p)
}

/// Checks a configured map: every target must be a system presence; the error names the entry.
pub fn check_map(configured: &BTreeMap<String, String>) -> Result<(), String> {
    for (status, presence) in configured {
        if !SYSTEM_PRESENCES.contains(&presence.as_str()) {
            return Err(format!(
                "`{status}` maps to `{presence}`, which is not one of {SYSTEM_PRESENCES:?}"
            ));
        }
    }
    Ok(())
}

/// The id of the presence event for `user`'s change to `status_id` at `changed` (CIC's
/// `statusChanged`): a UUID with the version-4 form, the same for the same change.
pub fn event_id(user: &str, status_id: &str, changed: &str) -> String {
    let name = [
        user.as_bytes(),
        b"\x1f",
        status_id.as_bytes(),
        b"\x1f",
        changed.as_bytes(),
    ];
    let mut bytes = *crate::event::id::v5(&NAMESPACE, &name).as_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).hyphenated().to_string()
}

/// The namespace of presence event ids.
const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6c1f_2a0e_4b7d_4e3a_9f2c_5d8e_1a3b_7c90);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_by_meaning_and_a_configured_map_comes_first() {
        let none = BTreeMap::new();
        for (status, presence) in [
            ("Available", "Available"),
            ("Do Not Disturb", "Busy"),
            ("At Lunch", "Meal"),
            ("Gone Home", "Offline"),
            ("away from desk", "Away"),
            ("In a Meeting", "Meeting"),
        ] {
            assert_eq!(presence_of(status, &none), Some(presence), "{status}");
        }
        assert_eq!(
            presence_of("Custom Status", &none),
            None,
            "unmapped: reported, not guessed"
        );
        let configured = BTreeMap::from([
            ("Custom Status".to_string(), "Break".to_string()),
            ("At Lunch".to_string(), "Break".to_string()),
        ]);
        assert_eq!(presence_of("Custom Status", &configured), Some("Break"));
        assert_eq!(presence_of("At Lunch", &configured), Some("Break"));
        assert!(DEFAULTS.iter().all(|(_, p)| SYSTEM_PRESENCES.contains(p)));
        assert!(check_map(&configured).is_ok());
        let bad = BTreeMap::from([("X".to_string(), "Lunch".to_string())]);
        assert!(check_map(&bad).unwrap_err().contains("`X`"));
    }

    #[test]
    fn event_ids_are_version_4_in_form_and_the_same_for_the_same_change() {
        let a = event_id("jdoe", "At Lunch", "20261130T120000Z");
        // Pinned across releases (Python's uuid.uuid5 of the same name, version bits set to 4).
        assert_eq!(a, "5613d67e-962c-4f45-81ca-2947e1b129a2");
        assert!(crate::sim::cloud::presence::is_v4_uuid(&a), "{a}");
        assert_eq!(a, event_id("jdoe", "At Lunch", "20261130T120000Z"));
        for other in [
            event_id("rroe", "At Lunch", "20261130T120000Z"),
            event_id("jdoe", "Available", "20261130T120000Z"),
            event_id("jdoe", "At Lunch", "20261130T120001Z"),
        ] {
            assert_ne!(a, other);
            assert!(crate::sim::cloud::presence::is_v4_uuid(&other));
        }
    }
}
