//! Avro encoding of [`InteractionEvent`] for the buffer and for Avro files.
//!
//! A buffered record is an Avro *single-object encoding*: the two bytes `C3 01`, the 8-byte
//! CRC-64-AVRO (Rabin) fingerprint of the writer schema, then the datum. The fingerprint lets a
//! later version read what an earlier one wrote. Encoding goes straight from serde to bytes with
//! apache-avro's schema-aware serializer into a caller-owned, reused buffer: never through
//! `apache_avro::types::Value`, which costs about eight times as much.

use std::sync::LazyLock;

use apache_avro::Schema;
use apache_avro::rabin::Rabin;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use serde::Serialize;
use serde::ser::{SerializeTuple, Serializer};

use super::InteractionEvent;

/// The current writer schema's text.
pub const SCHEMA_V1: &str = include_str!("../../schemas/interaction_event.v1.avsc");

/// The current writer schema, parsed once.
pub static SCHEMA: LazyLock<Schema> =
    LazyLock::new(|| Schema::parse_str(SCHEMA_V1).expect("the bundled schema is tested to parse"));

/// Marker of Avro single-object encoding.
const MAGIC: [u8; 2] = [0xC3, 0x01];
/// Marker plus fingerprint.
pub const HEADER_LEN: usize = 10;

/// A record that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not Avro single-object encoding.
    #[error("not an Avro single-object record (bad header)")]
    BadHeader,
    /// Written with a schema this version does not know.
    #[error("record written with unknown schema fingerprint {0:016x}")]
    UnknownSchema(u64),
    /// Avro itself failed.
    #[error("avro: {0}")]
    Avro(String),
}

impl CodecError {
    /// Codec errors are about the data, never transient.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// Encoder and decoder for the current schema; cheap to share between threads.
pub struct EventCodec {
    writer: GenericDatumWriter<'static>,
    reader: GenericDatumReader<'static>,
    fingerprint: u64,
}

impl std::fmt::Debug for EventCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EventCodec({:016x})", self.fingerprint)
    }
}

impl EventCodec {
    /// A codec for the bundled schema.
    pub fn new() -> Self {
        let schema: &'static Schema = &SCHEMA;
        let writer = GenericDatumWriter::builder(schema)
            .validate(false)
            .human_readable(false)
            .build()
            .expect("the bundled schema resolves");
        let reader = GenericDatumReader::builder(schema)
            .human_readable(false)
            .build()
            .expect("the bundled schema resolves");
        EventCodec {
            writer,
            reader,
            fingerprint: fingerprint(schema),
        }
    }

    /// The writer schema's Rabin fingerprint.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Appends one encoded record to `out` (which the caller reuses).
    pub fn encode_into(&self, event: &InteractionEvent, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.fingerprint.to_le_bytes());
        self.writer
            .write_ser(out, &Positional(event))
            .map_err(|e| CodecError::Avro(e.to_string()))?;
        Ok(())
    }

    /// Encodes one record into a new vector.
    pub fn encode(&self, event: &InteractionEvent) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(256);
        self.encode_into(event, &mut out)?;
        Ok(out)
    }

    /// Decodes one record written by this or an earlier schema version.
    pub fn decode(&self, bytes: &[u8]) -> Result<InteractionEvent, CodecError> {
        if bytes.len() < HEADER_LEN || bytes[..2] != MAGIC {
            return Err(CodecError::BadHeader);
        }
        let fp = u64::from_le_bytes(bytes[2..10].try_into().expect("8 bytes"));
        if fp != self.fingerprint {
            return Err(CodecError::UnknownSchema(fp));
        }
        let mut datum = &bytes[HEADER_LEN..];
        self.reader
            .read_deser(&mut datum)
            .map_err(|e| CodecError::Avro(e.to_string()))
    }
}

impl Default for EventCodec {
    fn default() -> Self {
        Self::new()
    }
}

/// Serializes an event's records as tuples in schema field order, which apache-avro's
/// schema-aware serializer writes positionally. (Serialized as structs, every field costs a
/// name lookup in the schema — more than doubling the encoding time.) The field order here must
/// match `schemas/`; the tests compare the bytes with the generic path.
struct Positional<'a>(&'a InteractionEvent);
struct PositionalInteraction<'a>(&'a super::Interaction);
struct PositionalCustomer<'a>(&'a super::Customer);

impl Serialize for Positional<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut t = s.serialize_tuple(8)?;
        t.serialize_element(&e.event_id)?;
        t.serialize_element(&e.event_type)?;
        t.serialize_element(&e.occurred_at)?;
        t.serialize_element(&e.observed_at)?;
        t.serialize_element(&e.cic_server)?;
        t.serialize_element(&PositionalInteraction(&e.interaction))?;
        t.serialize_element(&PositionalCustomer(&e.customer))?;
        t.serialize_element(&e.attributes)?;
        t.end()
    }
}

impl Serialize for PositionalInteraction<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let i = self.0;
        let mut t = s.serialize_tuple(13)?;
        t.serialize_element(&i.call_id_key)?;
        t.serialize_element(&i.call_id)?;
        t.serialize_element(&i.media_type)?;
        t.serialize_element(&i.direction)?;
        t.serialize_element(&i.state)?;
        t.serialize_element(&i.workgroup)?;
        t.serialize_element(&i.agent)?;
        t.serialize_element(&i.local_address)?;
        t.serialize_element(&i.remote_address)?;
        t.serialize_element(&i.remote_name)?;
        t.serialize_element(&i.initiated_at)?;
        t.serialize_element(&i.terminated_at)?;
        t.serialize_element(&i.connected_duration_ms)?;
        t.end()
    }
}

impl Serialize for PositionalCustomer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut t = s.serialize_tuple(3)?;
        t.serialize_element(&c.phone)?;
        t.serialize_element(&c.email)?;
        t.serialize_element(&c.caller_id_withheld)?;
        t.end()
    }
}

/// CRC-64-AVRO fingerprint of a schema's canonical form, as a number.
pub fn fingerprint(schema: &Schema) -> u64 {
    let fp = schema.fingerprint::<Rabin>();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&fp.bytes[..8]);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let codec = EventCodec::new();
        let mut ev = InteractionEvent::example();
        let bytes = codec.encode(&ev).unwrap();
        assert_eq!(codec.decode(&bytes).unwrap(), ev);
        ev.interaction.state = None;
        ev.customer.phone = None;
        ev.attributes.clear();
        let bytes = codec.encode(&ev).unwrap();
        assert_eq!(codec.decode(&bytes).unwrap(), ev);
    }

    #[test]
    fn direct_encoding_matches_the_value_path() {
        // The fast path must produce exactly what apache-avro's generic Value path produces.
        let codec = EventCodec::new();
        let ev = InteractionEvent::example();
        let fast = codec.encode(&ev).unwrap();
        let value = apache_avro::to_value(&ev).unwrap().resolve(&SCHEMA).unwrap();
        let slow = GenericDatumWriter::builder(&SCHEMA)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap();
        assert_eq!(&fast[HEADER_LEN..], &slow[..]);
    }

    #[test]
    fn rejects_foreign_bytes() {
        let codec = EventCodec::new();
        assert!(matches!(codec.decode(b"hello world"), Err(CodecError::BadHeader)));
        let mut bytes = codec.encode(&InteractionEvent::example()).unwrap();
        bytes[3] ^= 0xff;
        assert!(matches!(codec.decode(&bytes), Err(CodecError::UnknownSchema(_))));
        let truncated = &codec.encode(&InteractionEvent::example()).unwrap()[..30];
        assert!(codec.decode(truncated).is_err());
    }
}
