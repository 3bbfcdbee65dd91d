//! [`Interactions`]: how interaction events are kept as dead letters — `schemas/dead_letter.v2.avsc`,
//! whose `event` embeds the current interaction event schema.

use std::sync::LazyLock;

use apache_avro::Schema;
use apache_avro::types::Value;
use bytes::Bytes;

use super::LetterSchema;
use crate::buffer::Kind;
use crate::event::{EventCodec, InteractionEvent};

/// The dead-letter record's schema text for interaction events.
pub const SCHEMA_TEXT: &str = include_str!("../../schemas/dead_letter.v2.avsc");

/// That schema, parsed once.
pub static SCHEMA: LazyLock<Schema> =
    LazyLock::new(|| Schema::parse_str(SCHEMA_TEXT).expect("the dead-letter schema is tested to parse"));

static CODEC: LazyLock<EventCodec> = LazyLock::new(EventCodec::new);

/// Interaction events, as dead letters.
pub struct Interactions;

impl LetterSchema for Interactions {
    type Event = InteractionEvent;
    const KIND: Kind = Kind::Interaction;
    const FILE_PREFIX: &'static str = "dl-";

    fn schema() -> &'static Schema {
        &SCHEMA
    }

    fn decode(payload: &[u8]) -> Option<InteractionEvent> {
        CODEC.decode(payload).ok()
    }

    fn to_value(event: &InteractionEvent) -> Result<Value, String> {
        apache_avro::to_value(event)
            .and_then(|v| v.resolve(&crate::event::codec::SCHEMA))
            .map_err(|e| e.to_string())
    }

    fn key(event: &InteractionEvent) -> Bytes {
        Bytes::from(event.interaction.call_id_key.clone())
    }

    fn describe(event: &InteractionEvent) -> String {
        format!("event {}", event.event_id)
    }
}
