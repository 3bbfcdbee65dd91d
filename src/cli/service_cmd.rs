//! `cic-conduit service install | uninstall | run` (Windows): see [`crate::service`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::service;

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Register the conduit as a Windows service (automatic start, restarted on failure); the
    /// config is checked first. Run from an administrator's prompt.
    Install {
        /// The config file [default: %ProgramData%\cic-conduit\cic-conduit.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The service's name (one service per CIC server on a machine).
        #[arg(long, default_value = service::DEFAULT_NAME)]
        name: String,
    },
    /// Stop the service (gracefully) and remove it. The data directory is left as it is.
    Uninstall {
        /// The service's name.
        #[arg(long, default_value = service::DEFAULT_NAME)]
        name: String,
    },
    /// Ask the running service to reload its config (log.level, enabled, the rate-limit share),
    /// as `sc control <name> paramchange` does.
    Reload {
        /// The service's name.
        #[arg(long, default_value = service::DEFAULT_NAME)]
        name: String,
    },
    /// Run as the service (what the Service Control Manager starts; not for a console).
    Run {
        /// The config file [default: %ProgramData%\cic-conduit\cic-conduit.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The service's name.
        #[arg(long, default_value = service::DEFAULT_NAME)]
        name: String,
    },
}

pub fn run(command: ServiceCommand) -> anyhow::Result<ExitCode> {
    match command {
        ServiceCommand::Install { config, name } => {
            let installed = service::install(&name, &config.unwrap_or_else(service::default_config))?;
            println!("installed the service {name} (automatic start, restarted on failure)");
            println!("  config  {}", installed.config.display());
            println!(
                "  log     {} (unless log.file is set)",
                service::default_log_file(&installed.config).display()
            );
            for w in &installed.warnings {
                println!("  warning: not set: {w}");
            }
            println!("start it now with: sc start {name}");
            Ok(ExitCode::SUCCESS)
        }
        ServiceCommand::Uninstall { name } => {
            service::uninstall(&name)?;
            println!("stopped and removed the service {name}; its data directory is left as it is");
            Ok(ExitCode::SUCCESS)
        }
        ServiceCommand::Reload { name } => {
            service::reload(&name)?;
            println!("asked {name} to reload; its log says what changed");
            Ok(ExitCode::SUCCESS)
        }
        ServiceCommand::Run { config, name } => {
            service::run(&name, &config.unwrap_or_else(service::default_config))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
