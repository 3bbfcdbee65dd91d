//! A record as a Kafka message: the key is the record's key, the value its payload (the same
//! bytes as in the disk log: Avro single-object encoding of an interaction event, the JSON of a
//! status change), the timestamp its accept time, and headers say what it is:
//!
//! | header | value |
//! |---|---|
//! | `conduit.kind` | the stream: `interaction`, `user_status`, or the number of a kind this version does not know |
//! | `conduit.schema` | what the value is: `io.cicconduit.v1.InteractionEvent` (Avro), `io.cicconduit.v1.StatusChange` (JSON) |
//!
//! A message without a `conduit.kind` header, or with one this version does not read, is a
//! record of an unknown kind: no sink takes it, so the dispatcher dead-letters it (with its
//! partition and offset) and goes on.

use bytes::Bytes;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};

use crate::buffer::{Kind, Position, Record};

/// The header naming the record's kind.
pub const KIND: &str = "conduit.kind";
/// The header naming the value's schema.
pub const SCHEMA: &str = "conduit.schema";

/// A kind's name in the `conduit.kind` header.
pub fn kind_name(kind: Kind) -> String {
    match kind {
        Kind::Interaction => "interaction".into(),
        Kind::UserStatus => "user_status".into(),
        Kind::Unknown(c) => c.to_string(),
    }
}

/// The kind a `conduit.kind` header names (an unknown kind for a value this version does not
/// read, kind 0 for none).
pub fn kind_of(value: Option<&[u8]>) -> Kind {
    match value {
        Some(b"interaction") => Kind::Interaction,
        Some(b"user_status") => Kind::UserStatus,
        Some(v) => match std::str::from_utf8(v).ok().and_then(|s| s.parse::<u8>().ok()) {
            Some(c) => Kind::from_code(c),
            None => Kind::Unknown(0),
        },
        None => Kind::Unknown(0),
    }
}

/// What the value of a record of `kind` is.
pub fn schema_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Interaction => "io.cicconduit.v1.InteractionEvent",
        Kind::UserStatus => "io.cicconduit.v1.StatusChange",
        Kind::Unknown(_) => "unknown",
    }
}

/// The headers of a record of `kind`.
pub fn headers(kind: Kind) -> OwnedHeaders {
    let name = kind_name(kind);
    OwnedHeaders::new_with_capacity(2)
        .insert(Header {
            key: KIND,
            value: Some(name.as_bytes()),
        })
        .insert(Header {
            key: SCHEMA,
            value: Some(schema_of(kind).as_bytes()),
        })
}

/// The record a consumed message is.
pub fn record(m: &BorrowedMessage<'_>) -> Record {
    let kind = kind_of(
        m.headers()
            .and_then(|h| h.iter().find(|h| h.key == KIND))
            .and_then(|h| h.value),
    );
    Record {
        position: Position::new(m.partition().max(0) as u32, m.offset().max(0) as u64),
        kind,
        key: Bytes::copy_from_slice(m.key().unwrap_or_default()),
        accepted_ms: m.timestamp().to_millis(),
        payload: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_header() {
        for kind in [Kind::Interaction, Kind::UserStatus, Kind::Unknown(7)] {
            assert_eq!(kind_of(Some(kind_name(kind).as_bytes())), kind);
        }
        let h = headers(Kind::UserStatus);
        let found: Vec<(String, Vec<u8>)> = h
            .iter()
            .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
            .collect();
        assert_eq!(
            found,
            vec![
                (KIND.to_string(), b"user_status".to_vec()),
                (SCHEMA.to_string(), b"io.cicconduit.v1.StatusChange".to_vec())
            ]
        );
    }

    #[test]
    fn a_message_of_no_known_kind_is_an_unknown_kind_never_an_interaction() {
        assert_eq!(kind_of(None), Kind::Unknown(0));
        assert_eq!(kind_of(Some(b"garbage")), Kind::Unknown(0));
        assert_eq!(kind_of(Some(b"300")), Kind::Unknown(0));
        assert_eq!(kind_of(Some(b"1")), Kind::Interaction, "a code reads as its kind");
    }
}
