//! `cic-conduit buffer inspect|verify|dump`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::buffer::inspect;
use crate::config;
use crate::event::EventCodec;

/// Where the buffer is: a data dir, or a config naming one.
#[derive(Debug, Args)]
pub struct Location {
    /// The data directory (`data_dir`).
    #[arg(long, conflicts_with = "config", required_unless_present = "config")]
    data_dir: Option<PathBuf>,
    /// Or the config file whose `data_dir` to use.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

impl Location {
    pub fn data_dir(&self) -> anyhow::Result<PathBuf> {
        match (&self.data_dir, &self.config) {
            (Some(d), _) => Ok(d.clone()),
            (None, Some(c)) => Ok(config::load_file(c)?.data_dir),
            (None, None) => anyhow::bail!("give --data-dir or --config"),
        }
    }
}

/// Buffer tools.
#[derive(Debug, Subcommand)]
pub enum BufferCommand {
    /// Segments, record counts, the unacknowledged backlog, and any damage.
    Inspect {
        #[command(flatten)]
        at: Location,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check every record's CRC; exit 1 if anything is damaged.
    Verify {
        #[command(flatten)]
        at: Location,
    },
    /// Print records as JSON lines (decoded events).
    Dump {
        #[command(flatten)]
        at: Location,
        /// Only records not yet acknowledged.
        #[arg(long)]
        unacked: bool,
        /// At most this many records.
        #[arg(long)]
        limit: Option<u64>,
    },
}

/// Runs a buffer tool.
pub fn run(cmd: BufferCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BufferCommand::Inspect { at, json } => {
            let report = inspect::scan_dir(&at.data_dir()?, |_, _, _| {}).context("inspecting the buffer")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", inspect::render(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        BufferCommand::Verify { at } => {
            let report = inspect::scan_dir(&at.data_dir()?, |_, _, _| {}).context("verifying the buffer")?;
            print!("{}", inspect::render(&report));
            Ok(if report.damaged() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        BufferCommand::Dump { at, unacked, limit } => {
            let codec = EventCodec::new();
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let limit = limit.unwrap_or(u64::MAX);
            let mut printed = 0u64;
            let data_dir = at.data_dir()?;
            let cursor = match crate::buffer::cursor::load(&inspect::buffer_dir(&data_dir)) {
                Ok(crate::buffer::cursor::Loaded::At(c)) => Some(c),
                _ => None,
            };
            let mut failed = None;
            let report = inspect::scan_dir(&data_dir, |seq, kind, payload| {
                if printed >= limit || failed.is_some() {
                    return;
                }
                if unacked && cursor.is_some_and(|c| seq < c) {
                    return;
                }
                let line = match (kind, codec.decode(payload)) {
                    (crate::buffer::Kind::Interaction, Ok(ev)) => serde_json::json!({"seq": seq, "event": ev}),
                    (crate::buffer::Kind::Interaction, Err(e)) => {
                        serde_json::json!({"seq": seq, "error": e.to_string()})
                    }
                    (other, _) => serde_json::json!({"seq": seq, "kind": other.code(), "bytes": payload.len()}),
                };
                if let Err(e) = writeln!(out, "{line}") {
                    failed = Some(e);
                }
                printed += 1;
            });
            report?;
            if let Some(e) = failed {
                return Err(e.into());
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
