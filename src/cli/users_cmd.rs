//! `cic-conduit users status [--json]`: every CIC user's sync status, from the data dir (safe
//! while the conduit runs; it reads the file user sync keeps).

use std::process::ExitCode;

use clap::Subcommand;

use super::buffer_cmd::Location;
use crate::users::status::{self, State};

/// User-sync tools.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Each CIC user: synced (when), error (why, the cloud's message and correlation id) or not
    /// synced (why), removed; then the counts. Exits 1 when any user is in error.
    Status {
        #[command(flatten)]
        at: Location,
        /// The statuses as one JSON object, by CIC user id.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a users command.
pub fn run(cmd: UsersCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        UsersCommand::Status { at, json } => {
            let dir = at.data_dir()?;
            let users = status::read(&dir)?;
            let errors = users.values().filter(|u| u.state == State::Error).count();
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else if users.is_empty() {
                println!("no user sync status in {} (user sync has not run yet)", dir.display());
            } else {
                let width = users.keys().map(String::len).max().unwrap_or(4).max(4);
                println!("{:width$}  {:10}  DETAIL", "USER", "STATE");
                for (id, u) in &users {
                    let detail = match u.state {
                        State::Synced => format!(
                            "{} as {}, last synced {}",
                            u.cloud_id.as_deref().unwrap_or("?"),
                            u.user_name.as_deref().unwrap_or("?"),
                            u.last_synced.as_deref().unwrap_or("?")
                        ),
                        _ => {
                            let mut d = u.reason.clone().unwrap_or_default();
                            if let Some(m) = &u.message {
                                d.push_str(&format!("; Genesys Cloud: {m}"));
                            }
                            if let Some(c) = &u.correlation_id {
                                d.push_str(&format!(" (correlation id {c})"));
                            }
                            format!("{d} (since {})", u.since)
                        }
                    };
                    println!("{id:width$}  {:10}  {detail}", u.state.label());
                }
                let count = |s: State| users.values().filter(|u| u.state == s).count();
                println!(
                    "\n{} synced, {errors} in error, {} not synced, {} removed",
                    count(State::Synced),
                    count(State::NotSynced),
                    count(State::Removed)
                );
            }
            Ok(if errors > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
