//! Avro encoding of [`InteractionEvent`] for the buffer and for Avro files.
//!
//! A buffered record is an Avro *single-object encoding*: the two bytes `C3 01`, the 8-byte
//! fingerprint of the writer schema as the specification defines it (CRC-64-AVRO of the Parsing
//! Canonical Form, little-endian; see [`super::fingerprint`]), then the datum — so any Avro tool
//! that looks a schema up by fingerprint reads it. Records written by earlier versions decode
//! too: those of `interaction_event.v1`, under its standard fingerprint and under the one
//! earlier releases wrote (apache-avro's, [`V1_LEGACY_FINGERPRINT`]). Encoding writes the datum
//! by hand ([`super::avro`], the same bytes as apache-avro's) from a borrowed view of the event
//! into a caller-owned, reused buffer; decoding is apache-avro's.

use std::sync::LazyLock;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;

use super::InteractionEvent;
use super::fingerprint::{fingerprint, hex};
use super::view::EventView;

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

/// A record that could not be decoded (encoding cannot fail: the schema is fixed at build time).
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

/// Encoder and decoder for the current schema; cheap to share between threads.
pub struct EventCodec {
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
        let v1 = fingerprint(SCHEMA_V1_TEXT).expect("the bundled schemas are JSON");
        EventCodec {
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
    pub fn encode_into(&self, event: &InteractionEvent, out: &mut Vec<u8>) {
        self.encode_view(&event.view(), out);
    }

    /// Appends one encoded record of a borrowed event to `out`.
    pub fn encode_view(&self, event: &EventView<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.fingerprint);
        super::avro::write(event, out);
    }

    /// Encodes one record into a new vector.
    pub fn encode(&self, event: &InteractionEvent) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.encode_into(event, &mut out);
        out
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

#[cfg(test)]
mod tests {
    use apache_avro::writer::datum::GenericDatumWriter;

    use super::*;

    #[test]
    fn round_trips() {
        let codec = EventCodec::new();
        let mut ev = InteractionEvent::example();
        let bytes = codec.encode(&ev);
        assert_eq!(codec.decode(&bytes).unwrap(), ev);
        ev.interaction.state = None;
        ev.customer.phone = None;
        ev.attributes.clear();
        let bytes = codec.encode(&ev);
        assert_eq!(codec.decode(&bytes).unwrap(), ev);
    }

    #[test]
    fn encoding_matches_apache_avros_value_path() {
        // The written datum must be exactly what apache-avro's generic Value path produces.
        let codec = EventCodec::new();
        let ev = InteractionEvent::example();
        let fast = codec.encode(&ev);
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
        let bytes = codec.encode(&InteractionEvent::example());
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
        let mut bytes = codec.encode(&InteractionEvent::example());
        bytes[3] ^= 0xff;
        assert!(matches!(codec.decode(&bytes), Err(CodecError::UnknownSchema(_))));
        let truncated = &codec.encode(&InteractionEvent::example())[..30];
        assert!(codec.decode(truncated).is_err());
    }
}
