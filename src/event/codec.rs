//! Avro encoding of [`InteractionEvent`] for the buffer and for Avro files.
//!
//! A buffered record is an Avro *single-object encoding*: the two bytes `C3 01`, the 8-byte
//! fingerprint of the writer schema as the specification defines it (CRC-64-AVRO of the Parsing
//! Canonical Form, little-endian; see [`super::fingerprint`]), then the datum — so any Avro tool
//! that looks a schema up by fingerprint reads it. Records written by earlier versions decode
//! too: those of `interaction_event.v1`, under its standard fingerprint and under the one
//! earlier releases wrote (apache-avro's, [`V1_LEGACY_FINGERPRINT`]). Encoding goes straight
//! from serde to bytes with apache-avro's schema-aware serializer into a caller-owned, reused
//! buffer: never through `apache_avro::types::Value`, which costs about eight times as much.

use std::sync::LazyLock;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use serde::Serialize;
use serde::ser::{SerializeTuple, Serializer};

use super::InteractionEvent;
use super::fingerprint::{fingerprint, hex};

/// The current writer schema's text.
pub const SCHEMA_TEXT: &str = include_str!("../../schemas/interaction_event.v2.avsc");

/// The first schema version's text (still read).
pub const SCHEMA_V1_TEXT: &str = include_str!("../../schemas/interaction_event.v1.avsc");

/// The fingerprint earlier releases wrote for `interaction_event.v1` (apache-avro's canonical
/// form, which keeps `logicalType`): not the standard one, still read.
pub const V1_LEGACY_FINGERPRINT: [u8; 8] = [0xae, 0xaa, 0x85, 0x1e, 0x7a, 0x20, 0x75, 0x91];

/// The current writer schema, parsed once.
pub static SCHEMA: LazyLock<Schema> =
    LazyLock::new(|| Schema::parse_str(SCHEMA_TEXT).expect("the bundled schema is tested to parse"));

static SCHEMA_V1: LazyLock<Schema> =
    LazyLock::new(|| Schema::parse_str(SCHEMA_V1_TEXT).expect("the bundled schemas are tested to parse"));

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
    /// Written with a schema this version does not know (its fingerprint, as hex).
    #[error("record written with unknown schema fingerprint {0}")]
    UnknownSchema(String),
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
    fingerprint: [u8; 8],
    /// Readers of earlier versions' records, by the fingerprint in their header. Each earlier
    /// version's fields and symbols are a subset of the current one's, so its datum deserializes
    /// straight into today's event.
    older: Vec<([u8; 8], GenericDatumReader<'static>)>,
}

impl std::fmt::Debug for EventCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EventCodec({})", hex(&self.fingerprint))
    }
}

fn datum_reader(schema: &'static Schema) -> GenericDatumReader<'static> {
    GenericDatumReader::builder(schema)
        .human_readable(false)
        .build()
        .expect("the bundled schemas resolve")
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
        let v1 = fingerprint(SCHEMA_V1_TEXT).expect("the bundled schemas are JSON");
        EventCodec {
            writer,
            reader: datum_reader(schema),
            fingerprint: fingerprint(SCHEMA_TEXT).expect("the bundled schema is JSON"),
            older: vec![
                (v1, datum_reader(&SCHEMA_V1)),
                (V1_LEGACY_FINGERPRINT, datum_reader(&SCHEMA_V1)),
            ],
        }
    }

    /// The writer schema's fingerprint: the 8 header bytes.
    pub fn fingerprint(&self) -> [u8; 8] {
        self.fingerprint
    }

    /// Appends one encoded record to `out` (which the caller reuses).
    pub fn encode_into(&self, event: &InteractionEvent, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.fingerprint);
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
        let fp: [u8; 8] = bytes[2..HEADER_LEN].try_into().expect("8 bytes");
        let reader = if fp == self.fingerprint {
            &self.reader
        } else {
            match self.older.iter().find(|(f, _)| *f == fp) {
                Some((_, r)) => r,
                None => return Err(CodecError::UnknownSchema(hex(&fp))),
            }
        };
        let mut datum = &bytes[HEADER_LEN..];
        reader
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
    fn writes_the_standard_fingerprint_and_reads_version_1_records() {
        let codec = EventCodec::new();
        let bytes = codec.encode(&InteractionEvent::example()).unwrap();
        assert_eq!(bytes[2..HEADER_LEN], fingerprint(SCHEMA_TEXT).unwrap());
        // A record as earlier releases wrote it: v1 schema, apache-avro's fingerprint.
        let v1 = GenericDatumWriter::builder(&SCHEMA_V1).build().unwrap();
        let ev = InteractionEvent::example();
        let value = apache_avro::to_value(&ev).unwrap().resolve(&SCHEMA_V1).unwrap();
        let datum = v1.write_value_to_vec(value).unwrap();
        for fp in [V1_LEGACY_FINGERPRINT, fingerprint(SCHEMA_V1_TEXT).unwrap()] {
            let mut old = MAGIC.to_vec();
            old.extend_from_slice(&fp);
            old.extend_from_slice(&datum);
            assert_eq!(codec.decode(&old).unwrap(), ev, "{}", hex(&fp));
        }
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
