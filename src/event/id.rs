//! Deterministic event ids.
//!
//! An id is a UUID v5 (SHA-1, a fixed namespace of this project) of the interaction's unique key
//! (`Eic_CallIdKey`), the event type, how many events of that type the interaction had before,
//! for transfers the new workgroup and agent, and for a state found rather than seen changing a
//! mark of its own (see [`crate::normalize`]). It depends on nothing local — not the server, not
//! the clock, not the process — so a change seen as it happened gets the same id on a retry,
//! after a restart, and on both servers of a switchover pair, and Genesys Cloud can recognise a
//! duplicate.

use uuid::Uuid;

use super::EventType;

/// The namespace of cic-conduit's event ids (fixed forever: changing it changes every id).
pub const NAMESPACE: Uuid = Uuid::from_u128(0x5c1c_c0d1_7a11_4e3b_9c1d_2f6a_0b8e_e171);

/// The id of the `occurrence`-th (0-based) event of `event_type` of the interaction `key`.
/// `detail` distinguishes events that carry a value of their own (a transfer's new target).
pub fn event_id(key: &str, event_type: EventType, occurrence: u32, detail: &str) -> String {
    let mut name = String::with_capacity(key.len() + detail.len() + 24);
    name.push_str(key);
    name.push('\u{1f}');
    name.push_str(event_type.as_str());
    name.push('\u{1f}');
    name.push_str(&occurrence.to_string());
    name.push('\u{1f}');
    name.push_str(detail);
    Uuid::new_v5(&NAMESPACE, name.as_bytes()).hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_distinct() {
        let a = event_id("100265870720240409", EventType::Held, 0, "");
        // A fixed value: if this changes, every id ever delivered changes with it.
        assert_eq!(a, event_id("100265870720240409", EventType::Held, 0, ""));
        assert_eq!(a.len(), 36);
        assert_ne!(a, event_id("100265870720240409", EventType::Held, 1, ""));
        assert_ne!(a, event_id("100265870720240409", EventType::Resumed, 0, ""));
        assert_ne!(a, event_id("100265870720240410", EventType::Held, 0, ""));
    }

    #[test]
    fn pinned() {
        // Pinned across releases: ids must never depend on the build.
        assert_eq!(event_id("k", EventType::Started, 0, ""), PINNED_STARTED);
    }

    const PINNED_STARTED: &str = "510b0eee-f0cd-58f5-af03-59ace8468af1";
}
