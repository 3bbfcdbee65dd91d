//! The `cic-conduit` command line. `anyhow` lives here, at the binary's edge, and nowhere else.

mod buffer_cmd;
mod dead_letter_cmd;
#[cfg(windows)]
mod service_cmd;
mod sim_cmd;
mod users_cmd;

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
    /// List or replay the events Genesys Cloud refused for good.
    DeadLetter {
        #[command(subcommand)]
        command: dead_letter_cmd::DeadLetterCommand,
    },
    /// Every CIC user's sync status with the organization.
    Users {
        #[command(subcommand)]
        command: users_cmd::UsersCommand,
    },
    /// Create (once) the external-events schema and configuration (and, with `users.statuses`,
    /// the presence source) in the organization and print their ids. Running it again changes
    /// nothing.
    Setup {
        /// The config file (its [organization] section, with client_id and client_secret).
        #[arg(long, short)]
        config: PathBuf,
        /// Name of the external-events configuration.
        #[arg(long, default_value = crate::sink::setup::DEFAULT_CONFIGURATION_NAME)]
        name: String,
        /// The configuration's `source`.
        #[arg(long, default_value = "PureConnect")]
        source: String,
    },
    /// Run the whole pipeline on this machine: a simulated Genesys Cloud, the conduit on a
    /// temporary data dir, and generated CIC interactions; then report what was delivered.
    Demo(crate::demo::DemoArgs),
    /// Run a simulator of an outside service.
    Sim {
        #[command(subcommand)]
        command: sim_cmd::SimCommand,
    },
    /// Install, remove or run the conduit as a Windows service.
    #[cfg(windows)]
    Service {
        #[command(subcommand)]
        command: service_cmd::ServiceCommand,
    },
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    crate::private_fs::restrict_umask();
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
            log_warnings(&cfg);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("conduit")
                .build()?;
            rt.block_on(crate::app::run(cfg, &config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { config } => {
            // What `run` checks before it starts: the same settings, the same secrets.
            let settings = crate::settings::Settings::from_config(config::load_file(&config)?)?;
            let cfg = &settings.config;
            for w in &cfg.warnings {
                eprintln!("warning: {w}");
            }
            println!("config OK: {}", config.display());
            println!("  enabled        {}", cfg.enabled);
            println!("  role           {}", settings.role().label());
            println!("  cic_server     {}", cfg.cic_server);
            println!("  listen         {}", cfg.server.listen);
            println!(
                "  organization   {} ({}, api {})",
                cfg.organization.short_name,
                cfg.organization.region,
                cfg.organization.api_base()
            );
            // The clients as `run` builds them: the proxies and CA files are checked too.
            crate::app::http_client(&cfg.organization, std::time::Duration::from_secs(30))?;
            println!(
                "  cloud via      {}{}",
                crate::outbound::describe_proxy(
                    cfg.organization.proxy.as_ref(),
                    "organization.proxy",
                    &cfg.organization.api_base()
                ),
                cfg.organization
                    .ca_file
                    .as_ref()
                    .map(|f| format!(", also trusting {}", f.display()))
                    .unwrap_or_default()
            );
            let icws = &cfg.sources.icws;
            if icws.enabled {
                crate::source::icws::client::http_client(icws.ca_file.as_deref(), icws.proxy.as_ref())?;
                println!(
                    "  ICWS via       {}",
                    crate::outbound::describe_proxy(
                        icws.proxy.as_ref(),
                        "sources.icws.proxy",
                        icws.hosts.first().map_or("", String::as_str)
                    )
                );
            }
            match &cfg.buffer.kafka {
                Some(k) => println!(
                    "  buffer         kafka topic {} on {} (group {}, {} properties passed through, {} secret)",
                    k.topic,
                    k.brokers,
                    k.group,
                    k.properties.len(),
                    k.secret_properties.len()
                ),
                None => println!(
                    "  buffer         {} (persist {:?}, cap {} bytes, when full {:?})",
                    cfg.data_dir.display(),
                    cfg.buffer.persist,
                    cfg.buffer.max_bytes,
                    cfg.buffer.when_full
                ),
            }
            println!(
                "  push source    {}",
                if cfg.sources.http.enabled {
                    "enabled (token set)"
                } else {
                    "disabled"
                }
            );
            match &cfg.sinks.journey {
                Some(j) if j.enabled => println!(
                    "  journey sink   configuration {} (batches of {}, max age {} ms, {} in flight, client {})",
                    j.configuration_id,
                    j.max_events,
                    j.max_age_ms,
                    j.concurrency,
                    cfg.organization.client_id.as_deref().unwrap_or("-")
                ),
                _ => println!("  journey sink   disabled: events stay in the buffer"),
            }
            let u = &cfg.users;
            if u.enabled {
                println!(
                    "  user sync      on (reconcile every {} s, removed users: {:?}); statuses {}",
                    u.reconcile_interval_ms / 1000,
                    u.removed,
                    match (&u.statuses, &u.presence_source_id) {
                        (true, Some(id)) =>
                            format!("as presence from source {id} ({} mapped here)", u.status_map.len()),
                        _ => "off".to_string(),
                    }
                );
            } else {
                println!("  user sync      off");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Buffer { command } => buffer_cmd::run(command),
        Command::DeadLetter { command } => dead_letter_cmd::run(command),
        Command::Users { command } => users_cmd::run(command),
        Command::Sim { command } => sim_cmd::run(command),
        #[cfg(windows)]
        Command::Service { command } => service_cmd::run(command),
        Command::Demo(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(crate::demo::run(args))
        }
        Command::Setup { config, name, source } => {
            let cfg = config::load_file(&config)?;
            crate::telemetry::init(&cfg.log);
            log_warnings(&cfg);
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            #[cfg(all(feature = "kafka", not(windows)))]
            if let Some((topic, done)) = rt.block_on(crate::app::setup_topic(&cfg))? {
                let what = match done {
                    crate::buffer::kafka::setup::TopicSetup::Created(n) => format!("created with {n} partitions"),
                    crate::buffer::kafka::setup::TopicSetup::Exists => "already there".into(),
                };
                println!("topic          {topic} ({what})");
            }
            let r = rt.block_on(crate::app::setup(&cfg, &name, &source))?;
            println!(
                "schema         {} ({})",
                r.schema_id,
                if r.schema_created {
                    "created"
                } else if r.schema_updated {
                    "updated to this release's fields"
                } else {
                    "already there"
                }
            );
            println!(
                "configuration  {} ({}, division {})",
                r.configuration_id,
                if r.configuration_created {
                    "created"
                } else {
                    "already there"
                },
                r.division_id
            );
            if r.configuration_schema_differs {
                eprintln!(
                    "warning: the configuration \"{name}\" uses another schema than {}; events may be refused",
                    r.schema_id
                );
            }
            println!(
                "\nAdd to the config:\n\n[sinks.journey]\nconfiguration_id = \"{}\"",
                r.configuration_id
            );
            println!("external_source_id = \"<your external source id>\"");
            if let Some((id, created)) = &r.presence_source {
                println!(
                    "\npresence source {id} ({})\n\n[users]\npresence_source_id = \"{id}\"",
                    if *created { "created" } else { "already there" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn log_warnings(cfg: &config::Config) {
    for w in &cfg.warnings {
        tracing::warn!(warning = %w, "config");
    }
}
