//! Dead letters: events Genesys Cloud refused for good, kept in Avro container files under
//! `<data_dir>/dead-letter/` so that nothing accepted is ever silently lost.
//!
//! Each record holds the buffered record exactly as stored (`payload`, replayable byte for
//! byte), the decoded event when it decodes (`event`, for people and tools), the sink, a bounded
//! reason code, the HTTP status, the error message and the `ININ-Correlation-Id`. A process writes
//! its own file, `dl-<unix ms>-<pid>.avro`, started on its first dead letter and rolled at
//! [`MAX_FILE_BYTES`]; every write is flushed as one Avro block and synced (`fdatasync`) before
//! the records it holds are acknowledged in the buffer. A file cut short by a crash is read up to
//! its last whole block. `dead-letter replay` moves a replayed file to `replayed/`, so replaying
//! twice never re-queues twice.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use apache_avro::types::Value;
use apache_avro::{Reader, Schema, Writer};
use bytes::Bytes;

use crate::event::{EventCodec, InteractionEvent};
use crate::timefmt;

/// A file is rolled once it passes this size.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The dead-letter record's schema text, `schemas/dead_letter.v1.avsc`; its `event` embeds the
/// current interaction event schema.
pub const SCHEMA_TEXT: &str = include_str!("../../schemas/dead_letter.v1.avsc");

/// The dead-letter record's schema, parsed once.
pub static SCHEMA: LazyLock<Schema> =
    LazyLock::new(|| Schema::parse_str(SCHEMA_TEXT).expect("the dead-letter schema is tested to parse"));

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

/// One dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Buffer sequence number.
    pub seq: u64,
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
    pub event: Option<InteractionEvent>,
}

struct Open {
    path: PathBuf,
    writer: Writer<'static, File>,
    bytes: u64,
}

/// The writer of one process's dead-letter files.
pub struct DeadLetters {
    dir: PathBuf,
    open: Mutex<Option<Open>>,
    codec: EventCodec,
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

fn to_value(d: &DeadLetter) -> Result<Value, String> {
    let event = match &d.event {
        Some(ev) => {
            let v = apache_avro::to_value(ev)
                .and_then(|v| v.resolve(&crate::event::codec::SCHEMA))
                .map_err(|e| e.to_string())?;
            Value::Union(1, Box::new(v))
        }
        None => Value::Union(0, Box::new(Value::Null)),
    };
    let opt_str = |s: &Option<String>| match s {
        Some(s) => Value::Union(1, Box::new(Value::String(s.clone()))),
        None => Value::Union(0, Box::new(Value::Null)),
    };
    Ok(Value::Record(vec![
        ("seq".into(), Value::Long(d.seq as i64)),
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

fn from_value(v: &Value, codec: &EventCodec) -> Option<DeadLetter> {
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
        event: codec.decode(&payload).ok(),
        payload,
    })
}

impl DeadLetters {
    /// Dead letters under `<data_dir>/dead-letter/` (created when missing).
    pub fn open(data_dir: &Path) -> Result<Self, DeadLetterError> {
        let dir = dir_of(data_dir);
        crate::private_fs::create_own_dir(&dir).map_err(io_err(&dir))?;
        Ok(DeadLetters {
            dir,
            open: Mutex::new(None),
            codec: EventCodec::new(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The event a buffered record holds, if it decodes (kept beside the raw record).
    pub fn decode_event(&self, payload: &[u8]) -> Option<InteractionEvent> {
        self.codec.decode(payload).ok()
    }

    fn new_file(&self) -> Result<Open, DeadLetterError> {
        let name = format!("dl-{:013}-{}.avro", timefmt::now_ms(), std::process::id());
        let path = self.dir.join(name);
        let file = crate::private_fs::file_options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(&path))?;
        crate::private_fs::sync_dir(&self.dir).map_err(io_err(&self.dir))?;
        let writer = Writer::new(&SCHEMA, file).map_err(|e| avro_err(&path, e))?;
        Ok(Open { path, writer, bytes: 0 })
    }

    /// Writes `letters` and syncs them to disk; blocking (call from a blocking context).
    pub fn write(&self, letters: &[DeadLetter]) -> Result<(), DeadLetterError> {
        if letters.is_empty() {
            return Ok(());
        }
        let mut guard = crate::locks::lock(&self.open);
        if guard.as_ref().is_none_or(|o| o.bytes >= MAX_FILE_BYTES) {
            *guard = Some(self.new_file()?);
        }
        let open = guard.as_mut().expect("opened above");
        for d in letters {
            let v = to_value(d).map_err(|e| avro_err(&open.path, e))?;
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

/// One dead-letter file.
#[derive(Debug, Clone)]
pub struct FileSummary {
    /// Its path.
    pub path: PathBuf,
    /// Records read.
    pub records: usize,
    /// Set when the file could not be read to its end (cut short by a crash, or damaged).
    pub damage: Option<String>,
}

/// Reads every dead letter of a file, up to the first damage.
pub fn read_file(path: &Path) -> Result<(Vec<DeadLetter>, Option<String>), DeadLetterError> {
    let file = File::open(path).map_err(io_err(path))?;
    if file.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
        return Ok((Vec::new(), Some("empty file".into())));
    }
    let reader = match Reader::new(std::io::BufReader::new(file)) {
        Ok(r) => r,
        Err(e) => return Ok((Vec::new(), Some(format!("unreadable header: {e}")))),
    };
    let codec = EventCodec::new();
    let mut out = Vec::new();
    for v in reader {
        match v {
            Ok(v) => match from_value(&v, &codec) {
                Some(d) => out.push(d),
                None => return Ok((out, Some("a record does not match the dead-letter schema".into()))),
            },
            Err(e) => return Ok((out, Some(format!("stopped at damage: {e}")))),
        }
    }
    Ok((out, None))
}

/// The dead-letter files under `data_dir`, oldest first (not those already replayed).
pub fn list(data_dir: &Path) -> Result<Vec<FileSummary>, DeadLetterError> {
    let dir = dir_of(data_dir);
    let mut paths: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "avro") && p.is_file())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&dir)(e)),
    };
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let (records, damage) = read_file(&path)?;
        out.push(FileSummary {
            path,
            records: records.len(),
            damage,
        });
    }
    Ok(out)
}

/// Moves a replayed file to `dead-letter/replayed/`.
pub fn mark_replayed(path: &Path) -> Result<PathBuf, DeadLetterError> {
    let dir = path.parent().unwrap_or(Path::new(".")).join("replayed");
    crate::private_fs::create_own_dir(&dir).map_err(io_err(&dir))?;
    let to = dir.join(path.file_name().unwrap_or_default());
    fs::rename(path, &to).map_err(io_err(path))?;
    crate::private_fs::sync_dir(&dir).map_err(io_err(&dir))?;
    if let Some(parent) = path.parent() {
        crate::private_fs::sync_dir(parent).map_err(io_err(parent))?;
    }
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(seq: u64, event: Option<InteractionEvent>) -> DeadLetter {
        let payload = match &event {
            Some(ev) => Bytes::from(EventCodec::new().encode(ev).unwrap()),
            None => Bytes::from_static(b"not avro"),
        };
        DeadLetter {
            seq,
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
        let dl = DeadLetters::open(tmp.path()).unwrap();
        let a = letter(7, Some(InteractionEvent::example()));
        let mut b = letter(8, None);
        b.status = None;
        b.correlation_id = None;
        dl.write(&[a.clone(), b.clone()]).unwrap();
        dl.write(&[letter(9, None)]).unwrap();
        let files = list(tmp.path()).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].records, 3);
        assert!(files[0].damage.is_none());
        let (read, _) = read_file(&files[0].path).unwrap();
        assert_eq!(read[0], a);
        assert_eq!(read[1], b);
        // Cut the file inside its second block: the first block still reads.
        let len = fs::metadata(&files[0].path).unwrap().len();
        let f = File::options().write(true).open(&files[0].path).unwrap();
        f.set_len(len - 5).unwrap();
        let (read, damage) = read_file(&files[0].path).unwrap();
        assert_eq!(read.len(), 2);
        assert!(damage.is_some());
        let moved = mark_replayed(&files[0].path).unwrap();
        assert!(moved.exists());
        assert!(list(tmp.path()).unwrap().is_empty());
    }
}
