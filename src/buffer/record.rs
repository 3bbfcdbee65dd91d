//! What the buffer stores and hands back, the same for every buffer: [`Entry`] (what an appender
//! gives), [`Record`] (what a reader gets), [`Position`] (where a record is, opaque to callers)
//! and [`Kind`] (which stream a record belongs to).
//!
//! # The stored form (the disk log)
//!
//! A frame's payload is the record's envelope followed by its bytes:
//! `0xCE | version u8 = 1 | kind u8 | accepted_ms i64 | key_len u16 | key | payload`
//! (little-endian). A Kafka topic carries the same fields as the message's key, headers and
//! timestamp instead. Records written before the envelope existed are bare encoded interaction
//! events (an Avro single-object encoding starts with `0xC3 0x01`, never with `0xCE`): they read
//! as interactions with no key and no accept time. An envelope cut short reads the same way, so
//! its bytes fail to decode and are dead-lettered rather than lost.

use bytes::Bytes;

/// The envelope's first byte.
const MARKER: u8 = 0xCE;
/// The envelope's version.
const VERSION: u8 = 1;
/// Envelope bytes before the key.
const HEAD: usize = 1 + 1 + 1 + 8 + 2;
/// The longest key a record can have.
pub const MAX_KEY: usize = u16::MAX as usize;

/// Where a record is in a buffer. Callers hand it back (to acknowledge) and never compute with
/// it: the disk log's is a sequence number in its one partition, a Kafka topic's a partition and
/// an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Position {
    partition: u32,
    offset: u64,
}

impl Position {
    /// The position `offset` in `partition` (for buffers).
    pub(crate) fn new(partition: u32, offset: u64) -> Self {
        Position { partition, offset }
    }

    /// A position of the disk log, which has one partition (for buffers and the offline tools).
    pub(crate) fn seq(seq: u64) -> Self {
        Position::new(0, seq)
    }

    /// Its partition (for display, dead letters and buffers).
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Its offset in the partition (for display, dead letters and buffers).
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.partition, self.offset)
    }
}

/// Which stream a record belongs to; the dispatcher routes each record to the sink that takes
/// its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// An interaction event (Avro `InteractionEvent`), keyed by the interaction.
    Interaction,
    /// A CIC user's status change (JSON [`crate::users::change::StatusChange`]), keyed by the
    /// CIC user.
    UserStatus,
    /// A kind this version does not know (written by a newer one): no sink takes it, so it is
    /// dead-lettered, never lost.
    Unknown(u8),
}

impl Kind {
    /// Its code in the stored form.
    pub fn code(self) -> u8 {
        match self {
            Kind::Interaction => 1,
            Kind::UserStatus => 2,
            Kind::Unknown(c) => c,
        }
    }

    /// The kind a stored code names.
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => Kind::Interaction,
            2 => Kind::UserStatus,
            c => Kind::Unknown(c),
        }
    }
}

/// A record to append: its stream, its key (records with one key stay in order in a
/// partitioned buffer) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its stream.
    pub kind: Kind,
    /// Its key (at most [`MAX_KEY`] bytes).
    pub key: Bytes,
    /// Its bytes (an encoded event).
    pub payload: Vec<u8>,
}

impl Entry {
    /// An entry of `kind` under `key`.
    pub fn new(kind: Kind, key: impl Into<Bytes>, payload: Vec<u8>) -> Self {
        Entry {
            kind,
            key: key.into(),
            payload,
        }
    }

    /// Bytes of its stored form (envelope and payload).
    pub fn stored_len(&self) -> usize {
        HEAD + self.key.len() + self.payload.len()
    }

    /// Its envelope, for a record accepted at `accepted_ms`; the payload follows it.
    pub fn envelope(&self, accepted_ms: i64, out: &mut Vec<u8>) {
        out.push(MARKER);
        out.push(VERSION);
        out.push(self.kind.code());
        out.extend_from_slice(&accepted_ms.to_le_bytes());
        out.extend_from_slice(&(self.key.len() as u16).to_le_bytes());
        out.extend_from_slice(&self.key);
    }
}

/// One stored record, as a reader gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where it is (to acknowledge it).
    pub position: Position,
    /// Its stream.
    pub kind: Kind,
    /// Its key (empty for records stored before keys existed).
    pub key: Bytes,
    /// When the buffer accepted it, ms since the epoch (unknown for records stored before it was
    /// kept).
    pub accepted_ms: Option<i64>,
    /// Its bytes (an encoded event).
    pub payload: Bytes,
}

impl Record {
    /// The record at `position` whose stored form is `stored` (see the module docs).
    pub fn from_stored(position: Position, stored: Bytes) -> Self {
        match parse(&stored) {
            Some(v) => Record {
                position,
                kind: v.kind,
                key: stored.slice(v.key),
                accepted_ms: Some(v.accepted_ms),
                payload: stored.slice(v.payload),
            },
            None => Record {
                position,
                kind: Kind::Interaction,
                key: Bytes::new(),
                accepted_ms: None,
                payload: stored,
            },
        }
    }
}

/// A stored form's parts, as ranges of it.
struct Parts {
    kind: Kind,
    accepted_ms: i64,
    key: std::ops::Range<usize>,
    payload: std::ops::Range<usize>,
}

fn parse(b: &[u8]) -> Option<Parts> {
    if b.len() < HEAD || b[0] != MARKER || b[1] != VERSION {
        return None;
    }
    let accepted_ms = i64::from_le_bytes(b[3..11].try_into().ok()?);
    let key_len = usize::from(u16::from_le_bytes(b[11..13].try_into().ok()?));
    let key_end = HEAD.checked_add(key_len).filter(|e| *e <= b.len())?;
    Some(Parts {
        kind: Kind::from_code(b[2]),
        accepted_ms,
        key: HEAD..key_end,
        payload: key_end..b.len(),
    })
}

/// A stored form's payload and kind without copying (for the offline tools).
pub fn payload_of(stored: &[u8]) -> (Kind, &[u8]) {
    match parse(stored) {
        Some(p) => (p.kind, &stored[p.payload]),
        None => (Kind::Interaction, stored),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_round_trips() {
        let e = Entry::new(Kind::Interaction, "call-1", vec![0xC3, 0x01, 7, 8]);
        let mut stored = Vec::new();
        e.envelope(1_700_000_000_123, &mut stored);
        stored.extend_from_slice(&e.payload);
        assert_eq!(stored.len(), e.stored_len());
        let r = Record::from_stored(Position::seq(9), Bytes::from(stored.clone()));
        assert_eq!(r.position, Position::seq(9));
        assert_eq!(r.kind, Kind::Interaction);
        assert_eq!(&r.key[..], b"call-1");
        assert_eq!(r.accepted_ms, Some(1_700_000_000_123));
        assert_eq!(&r.payload[..], &e.payload[..]);
        assert_eq!(payload_of(&stored), (Kind::Interaction, &e.payload[..]));
    }

    #[test]
    fn records_from_before_the_envelope_read_as_keyless_interactions() {
        let old = Bytes::from_static(&[0xC3, 0x01, 1, 2, 3]);
        let r = Record::from_stored(Position::seq(0), old.clone());
        assert_eq!((r.kind, r.accepted_ms, r.key.len()), (Kind::Interaction, None, 0));
        assert_eq!(r.payload, old);
    }

    #[test]
    fn a_cut_envelope_keeps_its_bytes_for_a_dead_letter() {
        let e = Entry::new(Kind::Unknown(9), vec![b'k'; 40], vec![1, 2]);
        let mut stored = Vec::new();
        e.envelope(5, &mut stored);
        stored.truncate(20);
        let r = Record::from_stored(Position::seq(0), Bytes::from(stored.clone()));
        assert_eq!(&r.payload[..], &stored[..], "nothing is thrown away");
        assert_eq!(r.accepted_ms, None);
    }

    #[test]
    fn unknown_kinds_keep_their_code() {
        assert_eq!(Kind::from_code(1), Kind::Interaction);
        assert_eq!(Kind::from_code(Kind::UserStatus.code()), Kind::UserStatus);
        assert_eq!(Kind::from_code(42).code(), 42);
    }
}
