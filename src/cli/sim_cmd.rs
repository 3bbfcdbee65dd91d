//! `cic-conduit sim cloud|cic`: the simulators as processes.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::shutdown::{OsSignals, Shutdown};
use crate::sim::cloud::{CloudSim, FaultUpdate, SimConfig};

/// Simulators.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Serve a simulated Genesys Cloud organization (OAuth, journey external events, rate
    /// limits, faults) until SIGTERM or Ctrl-C. Bind it to loopback: `/sim/*` needs no token.
    Cloud(CloudArgs),
    /// Serve a simulated CIC server's ICWS API (login, sessions, queue subscriptions, messages)
    /// with generated interaction traffic, until SIGTERM or Ctrl-C.
    Cic(CicArgs),
}

/// `sim cic` options.
#[derive(Debug, Args)]
pub struct CicArgs {
    /// Address to listen on (ICWS's HTTP port is 8018, its HTTPS port 8019).
    #[arg(long, default_value = "127.0.0.1:8018")]
    listen: SocketAddr,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The certificate's PEM private key (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// This server's name.
    #[arg(long, default_value = "cic-sim")]
    server: String,
    /// The user that may log in.
    #[arg(long, default_value = "PureCloudAdmin")]
    user: String,
    /// Its password.
    #[arg(
        long,
        env = "CIC_CONDUIT_SIM_CIC_PASSWORD",
        default_value = "sim-password",
        hide_env_values = true
    )]
    password: String,
    /// Interaction changes generated per second (0: none).
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Interaction durations are multiplied by this (1: real time).
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// User status changes generated per second among the directory's users, with now and then
    /// a user edited, added or removed (0: none).
    #[arg(long, default_value_t = 1.0)]
    statuses: f64,
    /// The hosts of the switchover pair, in order (default: this server alone).
    #[arg(long, value_delimiter = ',')]
    pair: Vec<String>,
    /// Start as the backup of the pair (logins get 503).
    #[arg(long)]
    backup: bool,
    /// Play this scenario file (JSON lines: interaction changes, user statuses, switchovers);
    /// use `--rate 0` to play it alone.
    #[arg(long)]
    scenario: Option<std::path::PathBuf>,
}

/// `sim cloud` options.
#[derive(Debug, Args)]
pub struct CloudArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    listen: SocketAddr,
    /// The OAuth client id it accepts.
    #[arg(long, default_value = "sim-client")]
    client_id: String,
    /// The OAuth client secret it accepts.
    #[arg(
        long,
        env = "CIC_CONDUIT_SIM_CLIENT_SECRET",
        default_value = "sim-secret",
        hide_env_values = true
    )]
    client_secret: String,
    /// Lifetime of issued tokens, seconds.
    #[arg(long, default_value_t = 86_400)]
    token_lifetime_secs: u64,
    /// API requests allowed per OAuth client per minute.
    #[arg(long, default_value_t = 300)]
    requests_per_minute: u64,
    /// Fraction of API requests answered with a 5xx.
    #[arg(long, default_value_t = 0.0)]
    error_fraction: f64,
    /// Delay added to every answer, ms.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Fraction of entities returned in unprocessedEntities.
    #[arg(long, default_value_t = 0.0)]
    reject_fraction: f64,
    /// Of those, the fraction marked retryable.
    #[arg(long, default_value_t = 1.0)]
    retryable_fraction: f64,
}

/// Runs a simulator.
pub fn run(cmd: SimCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SimCommand::Cloud(a) => run_cloud(a),
        SimCommand::Cic(a) => run_cic(a),
    }
}

fn run_cic(a: CicArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let mut signals = OsSignals::install()?;
        let pair = if a.pair.is_empty() {
            vec![a.server.clone()]
        } else {
            a.pair.clone()
        };
        let sim = crate::sim::cic::CicSim::new(crate::sim::cic::CicSimConfig {
            server: a.server.clone(),
            users: vec![(a.user.clone(), a.password.clone())],
            pair,
            backup: a.backup,
            ..crate::sim::cic::CicSimConfig::default()
        });
        let steps = match &a.scenario {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("cannot read scenario {}: {e}", p.display()))?;
                crate::sim::cic::scenario::parse(&text).map_err(|e| anyhow::anyhow!("scenario {}: {e}", p.display()))?
            }
            None => Vec::new(),
        };
        let shutdown = Shutdown::new();
        let (addr, scheme) = match (&a.tls_cert, &a.tls_key) {
            (Some(cert), Some(key)) => {
                let tls = crate::sim::tls::server_config(cert, key)?;
                (sim.spawn_tls(a.listen, tls, shutdown.clone()).await?, "https")
            }
            _ => (sim.spawn(a.listen, shutdown.clone()).await?, "http"),
        };
        if !steps.is_empty() {
            tokio::spawn(sim.clone().play(steps, shutdown.clone()));
        }
        if a.rate > 0.0 {
            tokio::spawn(sim.clone().run_traffic(a.rate, a.time_scale, shutdown.clone()));
        }
        if a.statuses > 0.0 {
            tokio::spawn(sim.clone().run_people(a.statuses, shutdown.clone()));
        }
        println!(
            "CIC (ICWS) simulator {} listening on {scheme}://{addr}/icws (user {})",
            a.server, a.user
        );
        signals.recv().await;
        shutdown.trigger();
        println!("{}", serde_json::to_string_pretty(&sim.report())?);
        Ok(ExitCode::SUCCESS)
    })
}

fn run_cloud(a: CloudArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let mut signals = OsSignals::install()?;
        let mut cfg = SimConfig {
            clients: vec![(a.client_id.clone(), a.client_secret.clone())],
            token_lifetime: Duration::from_secs(a.token_lifetime_secs.max(1)),
            requests_per_minute: a.requests_per_minute,
            ..SimConfig::default()
        };
        cfg.faults.apply(
            &FaultUpdate {
                error_fraction: Some(a.error_fraction),
                latency_ms: Some(a.latency_ms),
                reject_fraction: Some(a.reject_fraction),
                retryable_fraction: Some(a.retryable_fraction),
                ..FaultUpdate::default()
            },
            std::time::Instant::now(),
        );
        let sim = CloudSim::new(cfg);
        let shutdown = Shutdown::new();
        let addr = sim.spawn(a.listen, shutdown.clone()).await?;
        println!(
            "Genesys Cloud simulator listening on http://{addr} (client id {})",
            a.client_id
        );
        signals.recv().await;
        shutdown.trigger();
        let r = sim.report();
        println!("{}", serde_json::to_string_pretty(&r)?);
        Ok(ExitCode::SUCCESS)
    })
}
