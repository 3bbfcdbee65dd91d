//! [`StatusChanges`]: how CIC status changes are kept as dead letters —
//! `schemas/dead_letter_status.v2.avsc`, files `status-*.avro`.

use std::sync::LazyLock;

use apache_avro::Schema;
use apache_avro::types::Value;
use bytes::Bytes;

use super::LetterSchema;
use crate::buffer::Kind;
use crate::users::change::StatusChange;

/// The dead-letter record's schema text for status changes.
pub const SCHEMA_TEXT: &str = include_str!("../../schemas/dead_letter_status.v2.avsc");

/// That schema, parsed once.
pub static SCHEMA: LazyLock<Schema> =
    LazyLock::new(|| Schema::parse_str(SCHEMA_TEXT).expect("the status dead-letter schema is tested to parse"));

/// CIC status changes, as dead letters.
pub struct StatusChanges;

impl LetterSchema for StatusChanges {
    type Event = StatusChange;
    const KIND: Kind = Kind::UserStatus;
    const FILE_PREFIX: &'static str = "status-";

    fn schema() -> &'static Schema {
        &SCHEMA
    }

    fn decode(payload: &[u8]) -> Option<StatusChange> {
        StatusChange::decode(payload)
    }

    fn to_value(c: &StatusChange) -> Result<Value, String> {
        Ok(Value::Record(vec![
            ("user_id".into(), Value::String(c.user_id.clone())),
            ("status_id".into(), Value::String(c.status_id.clone())),
            ("changed".into(), Value::String(c.changed.clone())),
            ("changed_at".into(), Value::TimestampMillis(c.changed_ms)),
            ("logged_in".into(), Value::Boolean(c.logged_in)),
            ("on_phone".into(), Value::Boolean(c.on_phone)),
        ]))
    }

    fn key(c: &StatusChange) -> Bytes {
        Bytes::from(c.user_id.clone())
    }

    fn describe(c: &StatusChange) -> String {
        format!("user {} status `{}` at {}", c.user_id, c.status_id, c.changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deadletter::{DeadLetter, DeadLetters, read_file};

    #[test]
    fn a_status_dead_letter_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let c = StatusChange {
            user_id: "jdoe".into(),
            status_id: "Custom".into(),
            changed: "20210706T193229Z".into(),
            changed_ms: 1_625_599_949_000,
            logged_in: true,
            on_phone: false,
        };
        let d = DeadLetter {
            seq: 3,
            partition: 2,
            sink: "presence".into(),
            reason: "unmapped_status".into(),
            status: None,
            correlation_id: None,
            message: "no presence".into(),
            at_ms: 5,
            payload: Bytes::from(c.encode()),
            event: Some(c),
        };
        let letters: DeadLetters<StatusChanges> = DeadLetters::open(dir.path()).unwrap();
        letters.write(std::slice::from_ref(&d)).unwrap();
        let files = crate::deadletter::list::<StatusChanges>(dir.path()).unwrap();
        assert!(
            crate::deadletter::list::<crate::deadletter::Interactions>(dir.path())
                .unwrap()
                .is_empty()
        );
        assert_eq!(files.len(), 1);
        let (back, damage) = read_file::<StatusChanges>(&files[0].path).unwrap();
        assert_eq!((back, damage), (vec![d], None));
    }
}
