//! Reading dead-letter files: one file, every file of a kind, and moving a replayed one aside.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use apache_avro::Reader;

use super::{DeadLetter, DeadLetterError, LetterSchema, dir_of, from_value, io_err};

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

/// A file's dead letters, and what stopped the reading early (a cut or damaged file), if anything.
pub type Read<S> = (Vec<DeadLetter<<S as LetterSchema>::Event>>, Option<String>);

/// Reads every dead letter of a file of kind `S`, up to the first damage.
pub fn read_file<S: LetterSchema>(path: &Path) -> Result<Read<S>, DeadLetterError> {
    let file = File::open(path).map_err(io_err(path))?;
    if file.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
        return Ok((Vec::new(), Some("empty file".into())));
    }
    let reader = match Reader::new(std::io::BufReader::new(file)) {
        Ok(r) => r,
        Err(e) => return Ok((Vec::new(), Some(format!("unreadable header: {e}")))),
    };
    let mut out = Vec::new();
    for v in reader {
        match v {
            Ok(v) => match from_value::<S>(&v) {
                Some(d) => out.push(d),
                None => return Ok((out, Some("a record does not match the dead-letter schema".into()))),
            },
            Err(e) => return Ok((out, Some(format!("stopped at damage: {e}")))),
        }
    }
    Ok((out, None))
}

/// The dead-letter files of kind `S` under `data_dir`, oldest first (not those already replayed).
pub fn list<S: LetterSchema>(data_dir: &Path) -> Result<Vec<FileSummary>, DeadLetterError> {
    let dir = dir_of(data_dir);
    let mut paths: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "avro") && p.is_file())
            .filter(|p| is_of::<S>(p))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&dir)(e)),
    };
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let (records, damage) = read_file::<S>(&path)?;
        out.push(FileSummary {
            path,
            records: records.len(),
            damage,
        });
    }
    Ok(out)
}

/// Whether a file's name is one of kind `S`'s: its prefix, then the digits of a time.
fn is_of<S: LetterSchema>(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(S::FILE_PREFIX))
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
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
