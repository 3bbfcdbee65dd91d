//! `cic-conduit dead-letter list|replay`: interaction events (`dl-*`) and CIC status changes
//! (`status-*`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;

use super::buffer_cmd::Location;
use crate::buffer::{Appended, Buffer, DiskBuffer, Entry};
use crate::config::BufferConfig;
use crate::deadletter::{self, Interactions, LetterSchema, StatusChanges};
use crate::metrics::Metrics;
use crate::timefmt;

/// Dead-letter tools.
#[derive(Debug, Subcommand)]
pub enum DeadLetterCommand {
    /// The dead-letter files, with their record counts; `--verbose` lists every record.
    List {
        #[command(flatten)]
        at: Location,
        /// Every record: sequence number, event id, reason, status, correlation id, message.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Re-queues dead letters into the buffer (the conduit must be stopped), then moves each
    /// replayed file to `dead-letter/replayed/`.
    Replay {
        #[command(flatten)]
        at: Location,
        /// Only this file (default: every file).
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

/// Runs a dead-letter command.
pub fn run(cmd: DeadLetterCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DeadLetterCommand::List { at, verbose } => {
            let dir = at.data_dir()?;
            let (mut total, mut files) = (0, 0);
            for (n, f) in [
                list::<Interactions>(&dir, verbose)?,
                list::<StatusChanges>(&dir, verbose)?,
            ] {
                total += n;
                files += f;
            }
            if files == 0 {
                println!("no dead letters under {}", deadletter::dir_of(&dir).display());
            } else {
                println!("{total} dead letters in {files} files");
            }
            Ok(ExitCode::SUCCESS)
        }
        DeadLetterCommand::Replay { at, file } => {
            let dir = at.data_dir()?;
            let files: Vec<PathBuf> = match file {
                Some(f) => vec![f],
                None => deadletter::list::<Interactions>(&dir)?
                    .into_iter()
                    .chain(deadletter::list::<StatusChanges>(&dir)?)
                    .map(|f| f.path)
                    .collect(),
            };
            if files.is_empty() {
                println!("nothing to replay");
                return Ok(ExitCode::SUCCESS);
            }
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(replay(&dir, &files))
        }
    }
}

/// Prints the files of kind `S` (each record with `verbose`); (records, files).
fn list<S: LetterSchema>(dir: &std::path::Path, verbose: bool) -> anyhow::Result<(usize, usize)> {
    let files = deadletter::list::<S>(dir)?;
    let mut total = 0;
    for f in &files {
        total += f.records;
        println!(
            "{}  {} records{}",
            f.path.display(),
            f.records,
            f.damage.as_ref().map(|d| format!("  ({d})")).unwrap_or_default()
        );
        if verbose {
            let (letters, _) = deadletter::read_file::<S>(&f.path)?;
            for d in letters {
                println!(
                    "  at {}:{}  {}  {}  reason {}  status {}  correlation {}  {}",
                    d.partition,
                    d.seq,
                    d.event
                        .as_ref()
                        .map(S::describe)
                        .unwrap_or_else(|| "(undecodable)".into()),
                    timefmt::format_timestamp_ms(d.at_ms),
                    d.reason,
                    d.status.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                    d.correlation_id.as_deref().unwrap_or("-"),
                    d.message
                );
            }
        }
    }
    Ok((total, files.len()))
}

/// A dead letter of kind `S` as a buffer record again, under its record's key (no key when it
/// does not decode: it is then dead-lettered again, never lost).
fn entry_of<S: LetterSchema>(letter: &deadletter::DeadLetter<S::Event>) -> Entry {
    let key = letter.event.as_ref().map(S::key).unwrap_or_default();
    Entry::new(S::KIND, key, letter.payload.to_vec())
}

/// A file's dead letters of kind `S` as buffer records, and what cut the reading short.
fn entries<S: LetterSchema>(path: &std::path::Path) -> anyhow::Result<(Vec<Entry>, Option<String>)> {
    let (letters, damage) = deadletter::read_file::<S>(path)?;
    Ok((letters.iter().map(entry_of::<S>).collect(), damage))
}

async fn replay(dir: &std::path::Path, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let metrics = Metrics::new();
    let cfg = BufferConfig::with_dir(dir);
    let buffer: Arc<DiskBuffer> = Arc::new(
        DiskBuffer::open(&cfg, metrics.buffer.clone())
            .context("cannot open the buffer (stop the conduit before replaying)")?,
    );
    let mut total = 0;
    for path in files {
        let statuses = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(StatusChanges::FILE_PREFIX));
        let (records, damage) = if statuses {
            entries::<StatusChanges>(path)?
        } else {
            entries::<Interactions>(path)?
        };
        if let Some(d) = damage {
            eprintln!(
                "warning: {}: {d}; replaying the {} records before it",
                path.display(),
                records.len()
            );
        }
        let n = records.len();
        if n > 0 {
            match buffer.append(records).await? {
                Appended::Stored { .. } => {}
                Appended::Dropped { count } => anyhow::bail!("the buffer is full: {count} records not replayed"),
            }
        }
        let moved = deadletter::mark_replayed(path)?;
        println!(
            "{}: {n} records re-queued; file moved to {}",
            path.display(),
            moved.display()
        );
        total += n;
    }
    buffer.close().await?;
    println!("{total} dead letters re-queued; the conduit delivers them at its next start");
    Ok(ExitCode::SUCCESS)
}
