//! Deterministic event ids.
//!
//! An id is a UUID v5 (SHA-1, a fixed namespace of this project) of the interaction's unique key
//! (`Eic_CallIdKey`), the event type, how many events of that type the interaction had before,
//! for transfers the new workgroup and agent, and for a state found rather than seen changing a
//! mark of its own (see [`crate::normalize`]). It depends on nothing local — not the server, not
//! the clock, not the process — so a change seen as it happened gets the same id on a retry,
//! after a restart, and on both servers of a switchover pair, and Genesys Cloud can recognise a
//! duplicate.

use sha1::{Digest, Sha1};
use uuid::{Builder, Uuid};

use super::EventType;

/// The namespace of cic-conduit's event ids (fixed forever: changing it changes every id).
pub const NAMESPACE: Uuid = Uuid::from_u128(0x5c1c_c0d1_7a11_4e3b_9c1d_2f6a_0b8e_e171);

/// Separates the parts of a name.
const SEP: &[u8] = b"\x1f";

/// The UUID v5 (RFC 9562) of `namespace` and the name made of `parts` one after another: the
/// same as `Uuid::new_v5` of their concatenation, without building it (and with the SHA-1 the
/// processor offers, where it has one).
pub fn v5(namespace: &Uuid, parts: &[&[u8]]) -> Uuid {
    let mut h = Sha1::new();
    h.update(namespace.as_bytes());
    for p in parts {
        h.update(p);
    }
    let hash = h.finalize();
    let mut bytes = [0; 16];
    bytes.copy_from_slice(&hash[..16]);
    Builder::from_sha1_bytes(bytes).into_uuid()
}

/// An event id's text, kept inline: a hyphenated lower-case UUID.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EventId([u8; 36]);

impl EventId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a hyphenated UUID is ASCII")
    }
}

impl std::fmt::Debug for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The id of the `occurrence`-th (0-based) event of `event_type` of the interaction `key`.
/// `detail` distinguishes events that carry a value of their own (a transfer's new target).
pub fn event_id(key: &str, event_type: EventType, occurrence: u32, detail: &str) -> EventId {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    let mut n = occurrence;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let uuid = v5(
        &NAMESPACE,
        &[
            key.as_bytes(),
            SEP,
            event_type.as_str().as_bytes(),
            SEP,
            &digits[at..],
            SEP,
            detail.as_bytes(),
        ],
    );
    let mut text = [0; 36];
    uuid.hyphenated().encode_lower(&mut text);
    EventId(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_distinct() {
        let a = event_id("100265870720240409", EventType::Held, 0, "");
        assert_eq!(a.as_str(), a.as_str().to_lowercase());
        // A fixed value: if this changes, every id ever delivered changes with it.
        assert_eq!(a, event_id("100265870720240409", EventType::Held, 0, ""));
        assert_eq!(a.as_str().len(), 36);
        assert_ne!(a, event_id("100265870720240409", EventType::Held, 1, ""));
        assert_ne!(a, event_id("100265870720240409", EventType::Resumed, 0, ""));
        assert_ne!(a, event_id("100265870720240410", EventType::Held, 0, ""));
    }

    #[test]
    fn pinned() {
        // Pinned across releases: ids must never depend on the build.
        assert_eq!(event_id("k", EventType::Started, 0, "").as_str(), PINNED_STARTED);
        // What the scheme says, spelled out: v5 of the whole name, every occurrence's digits.
        for n in [0, 7, 10, 1234, u32::MAX] {
            let name = format!("k\u{1f}transferred\u{1f}{n}\u{1f}Support\u{1f}jdoe");
            assert_eq!(
                event_id("k", EventType::Transferred, n, "Support\u{1f}jdoe").as_str(),
                reference_v5(&NAMESPACE, name.as_bytes()).hyphenated().to_string()
            );
        }
    }

    /// UUID v5 as RFC 9562 defines it, spelled out: SHA-1 of namespace and name, its first 16
    /// bytes with the version (5) and variant (RFC) bits set.
    fn reference_v5(namespace: &Uuid, name: &[u8]) -> Uuid {
        let mut h = Sha1::new();
        h.update(namespace.as_bytes());
        h.update(name);
        let mut b: [u8; 16] = h.finalize()[..16].try_into().unwrap();
        b[6] = (b[6] & 0x0f) | 0x50;
        b[8] = (b[8] & 0x3f) | 0x80;
        Uuid::from_bytes(b)
    }

    /// Python's `uuid.uuid5(NAMESPACE, "k\x1fstarted\x1f0\x1f")` gives the same.
    const PINNED_STARTED: &str = "510b0eee-f0cd-58f5-af03-59ace8468af1";
}
