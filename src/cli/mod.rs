//! The `cic-conduit` command line. `anyhow` lives here, at the binary's edge, and nowhere else.

mod buffer_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config;

/// cic-conduit: carries Genesys PureConnect (CIC) interaction events to Genesys Cloud.
#[derive(Debug, Parser)]
#[command(name = "cic-conduit", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the conduit until SIGTERM or Ctrl-C.
    Run {
        /// The config file (TOML); CONDUIT_* environment variables override its keys.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file (with its environment overrides and secrets) and print a summary.
    CheckConfig {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Examine the buffer on disk (safe while the conduit runs; changes nothing).
    Buffer {
        #[command(subcommand)]
        command: buffer_cmd::BufferCommand,
    },
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config } => {
            let cfg = config::load_file(&config)?;
            crate::telemetry::init(&cfg.log);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("conduit")
                .build()?;
            rt.block_on(crate::app::run(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { config } => {
            let cfg = config::load_file(&config)?;
            if let Some(t) = &cfg.sources.http.token {
                t.resolve("sources.http.token")?;
            }
            println!("config OK: {}", config.display());
            println!("  enabled        {}", cfg.enabled);
            println!("  cic_server     {}", cfg.cic_server);
            println!("  listen         {}", cfg.server.listen);
            println!(
                "  organization   {} ({}, api {})",
                cfg.organization.short_name,
                cfg.organization.region,
                cfg.organization.api_base()
            );
            println!(
                "  buffer         {} (persist {:?}, cap {} bytes, when full {:?})",
                cfg.buffer.data_dir.display(),
                cfg.buffer.persist,
                cfg.buffer.max_bytes,
                cfg.buffer.when_full
            );
            println!(
                "  push source    {}",
                if cfg.sources.http.enabled {
                    "enabled (token set)"
                } else {
                    "disabled"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Buffer { command } => buffer_cmd::run(command),
    }
}
