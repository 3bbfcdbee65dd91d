//! Dead letters: records a destination refused for good (or that no sink could ever send), kept
//! in Avro container files under `<data_dir>/dead-letter/` so that nothing accepted is ever
//! silently lost.
//!
//! The same for every sink and every kind of record: a [`LetterSchema`] says how one kind is kept
//! — the dead-letter record's schema (its `event` field embeds the record's own schema), how a
//! payload decodes, and the key to append it under again — and [`DeadLetters`] writes the files
//! of one kind: interaction events ([`interaction::Interactions`], schema
//! `schemas/dead_letter.v2.avsc`, files `dl-*`) and CIC status changes ([`status::StatusChanges`],
//! `schemas/dead_letter_status.v2.avsc`, files `status-*`).
//!
//! Each record holds the buffered record exactly as stored (`payload`, replayable byte for
//! byte), the decoded event when it decodes (`event`, for people and tools), the sink, a bounded
//! reason code, the HTTP status, the error message and the `ININ-Correlation-Id`. A process writes
//! its own file per kind, `<prefix><unix ms>-<pid>.avro` (`dl-` for interactions), started on its
//! first dead letter and rolled at [`MAX_FILE_BYTES`]; every write is flushed as one Avro block
//! and synced (`fdatasync`) before the records it holds are acknowledged in the buffer. A file cut
//! short by a crash is read up to its last whole block ([`file`]). `dead-letter replay` moves a
//! replayed file to `replayed/`, so replaying twice never re-queues twice.

pub mod file;
pub mod interaction;
pub mod status;

use std::fs::File;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use apache_avro::types::Value;
use apache_avro::{Schema, Writer};
use bytes::Bytes;

use crate::buffer::Kind;
use crate::timefmt;

pub use file::{FileSummary, list, mark_replayed, read_file};
pub use interaction::Interactions;
pub use status::StatusChanges;

/// A file is rolled once it passes this size.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// How dead letters of one kind of record are kept.
pub trait LetterSchema: Send + Sync + 'static {
    /// The decoded record, kept beside its bytes.
    type Event: Clone + PartialEq + std::fmt::Debug + Send + Sync;
    /// Its kind in the buffer (a replay appends it back as such).
    const KIND: Kind;
    /// The start of its files' names.
    const FILE_PREFIX: &'static str;
    /// The dead-letter record's schema; its `event` field embeds the record's.
    fn schema() -> &'static Schema;
    /// The record's bytes, decoded.
    fn decode(payload: &[u8]) -> Option<Self::Event>;
    /// The decoded record as the `event` field's value.
    fn to_value(event: &Self::Event) -> Result<Value, String>;
    /// The key a replay appends it under.
    fn key(event: &Self::Event) -> Bytes;
    /// What it is, in a line of `dead-letter list --verbose`.
    fn describe(event: &Self::Event) -> String;
}

/// A dead-letter failure.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// Disk.
    #[error("dead-letter file {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Avro encoding or decoding.
    #[error("dead-letter file {path}: {message}")]
    Avro {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// One dead letter, its record decoded as `E` when it decodes.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter<E = crate::event::InteractionEvent> {
    /// Its position in the buffer: the disk log's sequence number, the offset in its partition
    /// of a Kafka topic.
    pub seq: u64,
    /// Its partition of a Kafka topic (0 in the disk log).
    pub partition: u32,
    /// The sink that refused it.
    pub sink: String,
    /// Bounded reason code.
    pub reason: String,
    /// HTTP status.
    pub status: Option<u16>,
    /// `ININ-Correlation-Id`.
    pub correlation_id: Option<String>,
    /// The cloud's message.
    pub message: String,
    /// When, Unix ms.
    pub at_ms: i64,
    /// The record as stored.
    pub payload: Bytes,
    /// The event, when the payload decodes.
    pub event: Option<E>,
}

struct Open {
    path: PathBuf,
    writer: Writer<'static, File>,
    bytes: u64,
}

/// The writer of one process's dead-letter files of one kind.
pub struct DeadLetters<S: LetterSchema = Interactions> {
    dir: PathBuf,
    open: Mutex<Option<Open>>,
    schema: PhantomData<S>,
}

/// `<data_dir>/dead-letter`.
pub fn dir_of(data_dir: &Path) -> PathBuf {
    data_dir.join("dead-letter")
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DeadLetterError + '_ {
    move |source| DeadLetterError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn avro_err(path: &Path, e: impl std::fmt::Display) -> DeadLetterError {
    DeadLetterError::Avro {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn to_value<S: LetterSchema>(d: &DeadLetter<S::Event>) -> Result<Value, String> {
    let event = match &d.event {
        Some(ev) => Value::Union(1, Box::new(S::to_value(ev)?)),
        None => Value::Union(0, Box::new(Value::Null)),
    };
    let opt_str = |s: &Option<String>| match s {
        Some(s) => Value::Union(1, Box::new(Value::String(s.clone()))),
        None => Value::Union(0, Box::new(Value::Null)),
    };
    Ok(Value::Record(vec![
        ("seq".into(), Value::Long(d.seq as i64)),
        ("partition".into(), Value::Int(d.partition as i32)),
        ("sink".into(), Value::String(d.sink.clone())),
        ("reason".into(), Value::String(d.reason.clone())),
        (
            "status".into(),
            match d.status {
                Some(s) => Value::Union(1, Box::new(Value::Int(i32::from(s)))),
                None => Value::Union(0, Box::new(Value::Null)),
            },
        ),
        ("correlation_id".into(), opt_str(&d.correlation_id)),
        ("message".into(), Value::String(d.message.clone())),
        ("dead_lettered_at".into(), Value::TimestampMillis(d.at_ms)),
        ("payload".into(), Value::Bytes(d.payload.to_vec())),
        ("event".into(), event),
    ]))
}

fn from_value<S: LetterSchema>(v: &Value) -> Option<DeadLetter<S::Event>> {
    let Value::Record(fields) = v else { return None };
    let get = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let unwrap_union = |v: &Value| match v {
        Value::Union(_, inner) => (**inner).clone(),
        other => other.clone(),
    };
    let string = |name: &str| match get(name).map(unwrap_union) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let payload = match get("payload")? {
        Value::Bytes(b) => Bytes::from(b.clone()),
        _ => return None,
    };
    Some(DeadLetter {
        seq: match get("seq")? {
            Value::Long(n) => *n as u64,
            _ => return None,
        },
        // Files of version 1 have no partition: the disk log's.
        partition: match get("partition") {
            Some(Value::Int(n)) => *n as u32,
            _ => 0,
        },
        sink: string("sink").unwrap_or_default(),
        reason: string("reason").unwrap_or_default(),
        status: match get("status").map(unwrap_union) {
            Some(Value::Int(n)) => u16::try_from(n).ok(),
            _ => None,
        },
        correlation_id: string("correlation_id"),
        message: string("message").unwrap_or_default(),
        at_ms: match get("dead_lettered_at")? {
            Value::TimestampMillis(n) | Value::Long(n) => *n,
            _ => 0,
        },
        event: S::decode(&payload),
        payload,
    })
}

impl<S: LetterSchema> DeadLetters<S> {
    /// Dead letters under `<data_dir>/dead-letter/` (created when missing).
    pub fn open(data_dir: &Path) -> Result<Self, DeadLetterError> {
        let dir = dir_of(data_dir);
        crate::private_fs::create_own_dir(&dir).map_err(io_err(&dir))?;
        Ok(DeadLetters {
            dir,
            open: Mutex::new(None),
            schema: PhantomData,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn new_file(&self) -> Result<Open, DeadLetterError> {
        let name = format!(
            "{}{:013}-{}.avro",
            S::FILE_PREFIX,
            timefmt::now_ms(),
            std::process::id()
        );
        let path = self.dir.join(name);
        let file = crate::private_fs::file_options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(&path))?;
        crate::private_fs::sync_dir(&self.dir).map_err(io_err(&self.dir))?;
        let writer = Writer::new(S::schema(), file).map_err(|e| avro_err(&path, e))?;
        Ok(Open { path, writer, bytes: 0 })
    }

    /// Writes `letters` and syncs them to disk; blocking (call from a blocking context).
    pub fn write(&self, letters: &[DeadLetter<S::Event>]) -> Result<(), DeadLetterError> {
        if letters.is_empty() {
            return Ok(());
        }
        let mut guard = crate::locks::lock(&self.open);
        if guard.as_ref().is_none_or(|o| o.bytes >= MAX_FILE_BYTES) {
            *guard = Some(self.new_file()?);
        }
        let open = guard.as_mut().expect("opened above");
        for d in letters {
            let v = to_value::<S>(d).map_err(|e| avro_err(&open.path, e))?;
            open.writer.append_value(v).map_err(|e| avro_err(&open.path, e))?;
        }
        let n = open.writer.flush().map_err(|e| avro_err(&open.path, e))?;
        open.bytes += n as u64;
        let result = open.writer.get_ref().sync_data().map_err(io_err(&open.path));
        if result.is_err() {
            // The file's state is unknown: start a new one next time.
            *guard = None;
        }
        result
    }
}

/// What dispatch needs of a dead-letter writer, whatever the kind: it hands over the refused
/// records as stored, and the writer decodes them itself.
pub trait Keep: Send + Sync {
    /// Writes `letters` (their `event` is decoded here) and syncs them; blocking.
    fn keep(&self, letters: Vec<DeadLetter<()>>) -> Result<(), DeadLetterError>;
}

impl<S: LetterSchema> Keep for DeadLetters<S> {
    fn keep(&self, letters: Vec<DeadLetter<()>>) -> Result<(), DeadLetterError> {
        let letters: Vec<DeadLetter<S::Event>> = letters
            .into_iter()
            .map(|d| DeadLetter {
                event: S::decode(&d.payload),
                seq: d.seq,
                partition: d.partition,
                sink: d.sink,
                reason: d.reason,
                status: d.status,
                correlation_id: d.correlation_id,
                message: d.message,
                at_ms: d.at_ms,
                payload: d.payload,
            })
            .collect();
        self.write(&letters)
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{self, File};

    use super::*;
    use crate::event::{EventCodec, InteractionEvent};

    fn letter(seq: u64, event: Option<InteractionEvent>) -> DeadLetter {
        let payload = match &event {
            Some(ev) => Bytes::from(EventCodec::new().encode(ev)),
            None => Bytes::from_static(b"not avro"),
        };
        DeadLetter {
            seq,
            partition: 0,
            sink: "journey".into(),
            reason: "client_error".into(),
            status: Some(422),
            correlation_id: Some("abc".into()),
            message: "attributes.state must be one of the schema's enum values".into(),
            at_ms: 1_712_671_391_000,
            payload,
            event,
        }
    }

    #[test]
    fn round_trips_and_survives_a_cut_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dl: DeadLetters = DeadLetters::open(tmp.path()).unwrap();
        let a = letter(7, Some(InteractionEvent::example()));
        let mut b = letter(8, None);
        b.status = None;
        b.correlation_id = None;
        dl.write(&[a.clone(), b.clone()]).unwrap();
        dl.write(&[letter(9, None)]).unwrap();
        let files = list::<Interactions>(tmp.path()).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].records, 3);
        assert!(files[0].damage.is_none());
        let (read, _) = read_file::<Interactions>(&files[0].path).unwrap();
        assert_eq!(read[0], a);
        assert_eq!(read[1], b);
        // Cut the file inside its second block: the first block still reads.
        let len = fs::metadata(&files[0].path).unwrap().len();
        let f = File::options().write(true).open(&files[0].path).unwrap();
        f.set_len(len - 5).unwrap();
        let (read, damage) = read_file::<Interactions>(&files[0].path).unwrap();
        assert_eq!(read.len(), 2);
        assert!(damage.is_some());
        let moved = mark_replayed(&files[0].path).unwrap();
        assert!(moved.exists());
        assert!(list::<Interactions>(tmp.path()).unwrap().is_empty());
    }
}
