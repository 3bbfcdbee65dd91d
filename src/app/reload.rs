//! What a reload (`SIGHUP`; `systemctl reload cic-conduit`) changes in a running conduit: the
//! log level, the Interaction Administrator switch (`enabled`) and the journey sink's share of
//! the OAuth client's rate limit (`sinks.journey.rate_limit_share`, the pacing of every sink of
//! that client). These are safe to change under load: nothing in flight depends on them.
//! Everything else in the file takes effect at the next restart; a reload never stops the
//! process, and a file that does not load (or validate) changes nothing.

use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::dispatch::gate::Gate;
use crate::metrics::Metrics;
use crate::switch::Switch;

/// The running conduit's reloadable parts.
pub struct Reloader {
    /// The settings in force.
    current: Mutex<Reloadable>,
    enabled: Switch,
    /// The OAuth client's gate, when this process delivers.
    gate: Option<Arc<Gate>>,
    metrics: Arc<Metrics>,
    /// Whether the ICWS source runs (it was not started when the conduit started switched off).
    icws_started: bool,
    icws_configured: bool,
}

/// The settings a reload can change.
#[derive(Debug, Clone, PartialEq)]
struct Reloadable {
    level: String,
    enabled: bool,
    share: Option<f64>,
}

impl Reloadable {
    fn of(c: &Config) -> Self {
        Reloadable {
            level: c.log.level.clone(),
            enabled: c.enabled,
            share: c.sinks.journey.as_ref().map(|j| j.rate_limit_share),
        }
    }
}

impl Reloader {
    /// The reloadable parts of a conduit started with `config`.
    pub(super) fn new(
        config: &Config,
        enabled: Switch,
        gate: Option<Arc<Gate>>,
        metrics: Arc<Metrics>,
        icws_started: bool,
    ) -> Self {
        Reloader {
            current: Mutex::new(Reloadable::of(config)),
            enabled,
            gate,
            metrics,
            icws_started,
            icws_configured: config.sources.icws.enabled && config.role.ingests(),
        }
    }

    /// Applies what can change of `new`, a config loaded and validated; returns what changed,
    /// as `key = value` lines (empty when nothing did).
    pub fn apply(&self, new: &Config) -> Vec<String> {
        let mut next = Reloadable::of(new);
        let mut cur = crate::locks::lock(&self.current);
        let mut changed = Vec::new();
        if next.level != cur.level {
            match crate::telemetry::set_level(&next.level) {
                Ok(()) => changed.push(format!("log.level = {:?}", next.level)),
                Err(e) => {
                    tracing::warn!(error = %e, "log.level not changed");
                    next.level = cur.level.clone();
                }
            }
        }
        if next.enabled != cur.enabled {
            self.enabled.set(next.enabled);
            self.metrics.enabled.set(i64::from(next.enabled));
            changed.push(format!("enabled = {}", next.enabled));
            if next.enabled && self.icws_configured && !self.icws_started {
                tracing::warn!(
                    "the ICWS source was not started (the conduit started with enabled = false): it starts at the next restart"
                );
            }
        }
        if next.share != cur.share
            && let (Some(share), Some(gate)) = (next.share, &self.gate)
        {
            gate.set_share(share);
            changed.push(format!("sinks.journey.rate_limit_share = {share}"));
        }
        *cur = next;
        changed
    }
}
