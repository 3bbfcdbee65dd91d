//! `cic-conduit demo`: the whole pipeline on one machine, with no outside service.
//!
//! It starts the Genesys Cloud simulator and the CIC (ICWS) simulator on loopback, runs `setup`
//! against the cloud, starts the conduit on a temporary data dir reading the CIC simulator over
//! ICWS, and lets the CIC simulator generate interaction traffic ([`crate::sim::traffic`]) for
//! the chosen time — and its users' statuses and directory changing ([`CicSim::run_people`]),
//! synced as users and presence — showing a live progress line. Then it stops generating, waits
//! for the backlog to drain, and prints a summary: delivered, duplicates, dead-lettered,
//! accept-to-confirm latency, 429s, users synced and statuses delivered. The exit status is 0 only when every accepted event was
//! confirmed.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use prometheus::Histogram;
use prometheus::core::Metric;

use crate::config;
use crate::shutdown::Shutdown;
use crate::sim::cic::{CicSim, CicSimConfig};
use crate::sim::cloud::{CloudSim, FaultUpdate, SimConfig};
use crate::sim::traffic::WORKGROUPS;

const PUSH_TOKEN: &str = "demo-push-token-0123456789";
const CIC_PASSWORD: &str = "demo-cic-password";

/// `demo` options.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// How long to generate traffic, seconds.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Interaction changes generated per second, in the long run (the first seconds ramp up:
    /// the interactions arriving have yet to go through their states).
    #[arg(long, default_value_t = 150.0)]
    pub rate: f64,
    /// The simulated organization's rate limit (requests a minute per OAuth client).
    #[arg(long, default_value_t = 300)]
    pub requests_per_minute: u64,
    /// Fraction of cloud requests failing with a 5xx.
    #[arg(long, default_value_t = 0.0)]
    pub error_fraction: f64,
    /// Fraction of entities the cloud returns as unprocessed (retryable).
    #[arg(long, default_value_t = 0.0)]
    pub reject_fraction: f64,
    /// Longest wait for the backlog to drain after generating stops, seconds.
    #[arg(long, default_value_t = 120)]
    pub drain_timeout: u64,
    /// CIC user status changes generated per second (with now and then a user edited, added or
    /// removed).
    #[arg(long, default_value_t = 2.0)]
    pub statuses: f64,
    /// Keep the data directory (printed at the end) instead of deleting it.
    #[arg(long)]
    pub keep_data: bool,
    /// No live progress line (for logs and CI).
    #[arg(long)]
    pub quiet: bool,
}

/// Estimates quantile `q` of a histogram by linear interpolation within its buckets.
pub fn quantile(h: &Histogram, q: f64) -> Option<f64> {
    let m = h.metric();
    let hist = m.get_histogram();
    let buckets: Vec<(f64, f64)> = hist
        .get_bucket()
        .iter()
        .map(|b| (b.upper_bound(), b.cumulative_count() as f64))
        .collect();
    crate::metrics::bucket_quantile(&buckets, hist.get_sample_count() as f64, q)
}

/// The sum of a counter over all its label values.
pub fn sum(c: &prometheus::IntCounterVec) -> u64 {
    use prometheus::core::Collector;
    c.collect()
        .iter()
        .flat_map(|f| f.get_metric())
        .map(|m| m.get_counter().value() as u64)
        .sum()
}

fn demo_config(
    data_dir: &std::path::Path,
    sim: std::net::SocketAddr,
    cic: std::net::SocketAddr,
    configuration_id: &str,
    presence_source_id: &str,
) -> String {
    let workgroups: Vec<String> = WORKGROUPS.iter().map(|w| format!("\"{w}\"")).collect();
    format!(
        r#"
cic_server = "cic-demo"
data_dir = '{dir}'
[server]
listen = "127.0.0.1:0"
[log]
level = "warn"
[organization]
short_name = "demo"
region = "us-east-1"
api_base_url = "http://{sim}"
login_base_url = "http://{sim}"
client_id = "sim-client"
client_secret = "sim-secret"
[normalize]
default_country_code = "1"
[sources.http]
token = "{PUSH_TOKEN}"
[sources.icws]
enabled = true
hosts = ["http://{cic}"]
password = "{CIC_PASSWORD}"
workgroups = [{workgroups}]
[sinks.journey]
configuration_id = "{configuration_id}"
external_source_id = "cic-demo"
[users]
enabled = true
presence_source_id = "{presence_source_id}"
"#,
        dir = data_dir.display(),
        workgroups = workgroups.join(", ")
    )
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let shutdown = Shutdown::new();
    let sim = CloudSim::new(SimConfig {
        requests_per_minute: args.requests_per_minute,
        ..SimConfig::default()
    });
    sim.set_faults(&FaultUpdate {
        error_fraction: Some(args.error_fraction),
        reject_fraction: Some(args.reject_fraction),
        retryable_fraction: Some(1.0),
        ..FaultUpdate::default()
    });
    let sim_addr = sim.spawn("127.0.0.1:0".parse()?, shutdown.clone()).await?;
    let cic = CicSim::new(CicSimConfig {
        server: "cic-demo".into(),
        users: vec![("PureCloudAdmin".into(), CIC_PASSWORD.into())],
        pair: vec!["127.0.0.1".into()],
        ..CicSimConfig::default()
    });
    let cic_addr = cic.spawn("127.0.0.1:0".parse()?, shutdown.clone()).await?;
    let data_dir = std::env::temp_dir().join(format!(
        "cic-conduit-demo-{}-{}",
        std::process::id(),
        crate::timefmt::now_ms()
    ));
    std::fs::create_dir_all(&data_dir)?;
    // Set-up runs against the simulator exactly as against an organization.
    let pre = config::load_str(
        &demo_config(&data_dir, sim_addr, cic_addr, "pending", "pending"),
        std::iter::empty(),
    )?;
    crate::telemetry::init(&pre.log);
    let setup = crate::app::setup(&pre, crate::sink::setup::DEFAULT_CONFIGURATION_NAME, "PureConnect").await?;
    let cfg = config::load_str(
        &demo_config(
            &data_dir,
            sim_addr,
            cic_addr,
            &setup.configuration_id,
            setup.presence_source.as_ref().map_or("", |(id, _)| id.as_str()),
        ),
        std::iter::empty(),
    )?;
    let running = crate::app::start(cfg).await.context("starting the conduit")?;
    let metrics = running.metrics.clone();
    let buffer = running.buffer.clone();
    eprintln!(
        "cic-conduit demo: CIC (ICWS) simulator on http://{cic_addr}/icws, Genesys Cloud simulator on http://{sim_addr} ({} requests/min), conduit on http://{}, data in {}",
        args.requests_per_minute,
        running.addr,
        data_dir.display()
    );
    eprintln!(
        "generating {} interaction changes/s for {} s ...",
        args.rate, args.duration
    );

    let stop_gen = Shutdown::new();
    let generator = tokio::spawn(cic.clone().run_traffic(args.rate, 0.1, stop_gen.clone()));
    let people = tokio::spawn(cic.clone().run_people(args.statuses, stop_gen.clone()));
    let generated = || cic.report().changes;

    let delivered =
        |m: &crate::metrics::Metrics| m.sink.delivered.with_label_values(&[crate::sink::journey::NAME]).get();
    let started = Instant::now();
    let gen_end = started + Duration::from_secs(args.duration);
    let mut drain_end = None;
    let mut last_delivered = 0;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let now = Instant::now();
        let d = delivered(&metrics);
        let backlog = buffer.stats().backlog_records;
        if !args.quiet {
            eprint!(
                "\r[{:>4}s] generated {:>7}  accepted {:>7}  delivered {:>7}  backlog {:>6}  rate {:>5}/s   ",
                started.elapsed().as_secs(),
                generated(),
                metrics.buffer.appended.get(),
                d,
                backlog,
                d - last_delivered
            );
            let _ = std::io::stderr().flush();
        }
        last_delivered = d;
        if drain_end.is_none() && now >= gen_end {
            stop_gen.trigger();
            drain_end = Some(now + Duration::from_secs(args.drain_timeout));
            if !args.quiet {
                eprintln!();
                eprintln!("generating stopped; draining the backlog ...");
            }
        }
        if let Some(end) = drain_end
            && (backlog == 0 || now >= end)
        {
            break;
        }
    }
    let _ = generator.await;
    let _ = people.await;
    if !args.quiet {
        eprintln!();
    }
    let accepted = metrics.buffer.appended.get();
    let backlog = buffer.stats().backlog_records;
    running.stop().await?;
    let report = sim.report();
    shutdown.trigger();
    let dead = sum(&metrics.sink.dead_lettered);
    let received_429 = metrics
        .sink
        .requests
        .with_label_values(&[crate::sink::journey::NAME, "429"])
        .get();
    let p50 = quantile(&metrics.sink.accept_to_confirm, 0.5);
    let p99 = quantile(&metrics.sink.accept_to_confirm, 0.99);
    let fmt = |v: Option<f64>| v.map(|s| format!("{:.0} ms", s * 1000.0)).unwrap_or_else(|| "-".into());
    println!("summary");
    println!("  interaction changes in CIC   {}", generated());
    println!("  records accepted             {accepted}  (events and statuses)");
    println!("  events delivered (unique)    {}", report.unique_ids);
    println!("  duplicates                   {}", report.duplicates);
    println!("  dead-lettered                {dead}");
    println!("  left in the buffer           {backlog}");
    println!("  accept-to-confirm            p50 {}  p99 {}", fmt(p50), fmt(p99));
    println!(
        "  requests                     {}  (429s received: {received_429})",
        report.event_requests + report.rate_limited
    );
    let presence = metrics
        .sink
        .delivered
        .with_label_values(&[crate::sink::presence::NAME])
        .get();
    let presence_unique = report.presence_events_accepted - report.presence_duplicates;
    let users = |state: &str| metrics.users.users.with_label_values(&[state]).get();
    println!(
        "  CIC users                    {} synced, {} not synced, {} in error, {} removed  (cloud users: {})",
        users("synced"),
        users("not_synced"),
        users("error"),
        users("removed"),
        sim.scim_users().len()
    );
    println!(
        "  user writes                  {} created, {} patched  (in CIC: {} directory changes)",
        report.scim_users_created,
        report.scim_users_patched,
        cic.report().user_changes
    );
    println!("  statuses as presence         {presence} delivered ({presence_unique} unique)");
    let ok = backlog == 0 && report.unique_ids + presence_unique + dead >= accepted;
    if args.keep_data {
        println!("  data kept in                 {}", data_dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    if ok {
        println!("OK: every accepted event and status was confirmed by Genesys Cloud (or dead-lettered, as counted)");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "NOT OK: {} accepted events were not confirmed",
            accepted.saturating_sub(report.unique_ids + dead)
        );
        Ok(ExitCode::FAILURE)
    }
}
