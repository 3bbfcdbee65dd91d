//! `cic-conduit sim cloud`: the Genesys Cloud simulator as a process.

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
}

/// `sim cloud` options.
#[derive(Debug, Args)]
pub struct CloudArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
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
    let SimCommand::Cloud(a) = cmd;
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
