//! The integration-health document served at `GET /health`: every rule that decides it lives
//! here, so that any rendering (the JSON, a page) shows the same.
//!
//! One JSON object an operator (or a load balancer) reads at a glance: whether ingesting is
//! switched on, the buffer's state and backlog, each destination's state (ok, retrying, paused
//! until, auth failing) with its last error and correlation id, and the ICWS source's CIC
//! connection (host, server, pair, session age, last message, last error). Never contains a
//! secret. `status`, most serious first: `failing` once the process is stopping because a task
//! failed (`failure` says which and why) or the buffer failed for good; `disabled` when ingesting
//! is switched off; `degraded` while a destination is not ok, the buffer is not ok (a write error
//! such as a full disk, recovering from one, records lost to on-disk damage within the last hour,
//! or at its size cap, with the buffer's `reason`) or the ICWS source has no session; `standby`
//! while the own CIC server is the backup of its pair; else `ok`. The HTTP status is 200 while the
//! process can work (or is deliberately disabled) and 503 once it is `failing`.

use std::time::Instant;

use serde::Serialize;

use crate::buffer::BufferStats;
use crate::config::PersistPolicy;
use crate::dispatch::gate::{DestState, DestinationHealth};

/// The overall state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Overall {
    /// Everything works.
    Ok,
    /// Working, with something an operator should look at.
    Degraded,
    /// The own CIC server is the backup of its pair: reading nothing, draining the buffer.
    Standby,
    /// Ingesting is switched off (`enabled = false`).
    Disabled,
    /// The process is stopping (a task failed, or the buffer failed for good).
    Failing,
}

impl Overall {
    /// The label the document shows.
    pub fn label(self) -> &'static str {
        match self {
            Overall::Ok => "ok",
            Overall::Degraded => "degraded",
            Overall::Standby => "standby",
            Overall::Disabled => "disabled",
            Overall::Failing => "failing",
        }
    }
}

/// The buffer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferState {
    /// Taking appends.
    Ok,
    /// At the size cap: senders are held back.
    Full,
    /// The last write failed (a full disk, say).
    WriteError,
    /// Putting the log back after a failed write; appends refused meanwhile.
    Recovering,
    /// Records lost to on-disk damage within the last hour.
    Damaged,
    /// Failed for good: the process is exiting.
    Failed,
}

/// What the document is built from.
pub struct Inputs<'a> {
    /// The Interaction Administrator switch.
    pub enabled: bool,
    /// What this process does.
    pub role: crate::config::Role,
    /// The CIC server this sidecar serves.
    pub cic_server: &'a str,
    /// Process start.
    pub started: Instant,
    /// The persist policy.
    pub persist: PersistPolicy,
    /// The buffer's figures.
    pub buffer: BufferStats,
    /// Each destination.
    pub destinations: Vec<DestinationHealth>,
    /// The ICWS source's connection, when it runs.
    pub cic: Option<crate::source::icws::IcwsHealth>,
    /// Why the process is stopping, if a task failed (see [`crate::supervisor`]).
    pub failure: Option<String>,
    /// User sync's counts, when it runs.
    pub users: Option<crate::users::status::Summary>,
}

/// The whole document.
#[derive(Debug, Serialize)]
pub struct Health {
    /// See [`Overall`].
    pub status: Overall,
    /// Why the process is stopping, once a task failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// The Interaction Administrator switch.
    pub enabled: bool,
    /// What this process does (`ingest`, `dispatch`, `both`).
    pub role: crate::config::Role,
    /// This build's version.
    pub version: &'static str,
    /// The CIC server this sidecar serves.
    pub cic_server: String,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// The buffer.
    pub buffer: BufferHealth,
    /// Each destination (empty when none is enabled).
    pub destinations: Vec<DestinationHealth>,
    /// The CIC connection of the ICWS source, when it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cic: Option<crate::source::icws::IcwsHealth>,
    /// User sync, when it runs: users by state, the first few in error with why, and when the
    /// last full reconcile ended (`cic-conduit users status` lists every user).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<crate::users::status::Summary>,
}

/// How long damage found in the buffer keeps `/health` degraded.
pub const DAMAGE_SHOWN_SECS: u64 = 3600;

/// The buffer's part.
#[derive(Debug, Serialize)]
pub struct BufferHealth {
    /// See [`BufferState`].
    pub state: BufferState,
    /// Why the state is not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Records lost to on-disk damage since start.
    pub damaged_records: u64,
    /// `fsync` or `flush`.
    pub persist: PersistPolicy,
    /// Records waiting for delivery.
    pub backlog_records: u64,
    /// Seconds since the oldest record waiting was accepted, once the dispatcher has read it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_age_secs: Option<u64>,
    /// Bytes used on disk.
    pub bytes: u64,
    /// The size cap.
    pub max_bytes: u64,
    /// Percentage of the cap in use.
    pub used_percent: f64,
    /// Segment files.
    pub segments: usize,
    /// A Kafka buffer's topic, assigned partitions, lag and commit positions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka: Option<crate::buffer::KafkaStats>,
}

impl Health {
    /// Builds the document.
    pub fn build(i: Inputs<'_>) -> Self {
        let b = &i.buffer;
        let used_percent = if b.max_bytes == 0 {
            0.0
        } else {
            (b.bytes as f64 * 1000.0 / b.max_bytes as f64).round() / 10.0
        };
        let (state, reason) = buffer_state(b, used_percent);
        let cic_down = i
            .cic
            .as_ref()
            .is_some_and(|c| !c.connected && c.role != crate::source::icws::Role::Standby);
        let status = if state == BufferState::Failed || i.failure.is_some() {
            Overall::Failing
        } else if !i.enabled {
            Overall::Disabled
        } else if state != BufferState::Ok || i.destinations.iter().any(|d| d.state != DestState::Ok) || cic_down {
            Overall::Degraded
        } else if i
            .cic
            .as_ref()
            .is_some_and(|c| c.role == crate::source::icws::Role::Standby)
        {
            Overall::Standby
        } else {
            Overall::Ok
        };
        Health {
            status,
            failure: i.failure,
            enabled: i.enabled,
            role: i.role,
            version: env!("CARGO_PKG_VERSION"),
            cic_server: i.cic_server.to_string(),
            uptime_secs: i.started.elapsed().as_secs(),
            buffer: BufferHealth {
                state,
                reason,
                damaged_records: b.damaged_records,
                persist: i.persist,
                backlog_records: b.backlog_records,
                oldest_age_secs: b.oldest_accepted_ms.map(|_| b.oldest_age_secs().round() as u64),
                bytes: b.bytes,
                max_bytes: b.max_bytes,
                used_percent,
                segments: b.segments,
                kafka: b.kafka.clone(),
            },
            destinations: i.destinations,
            cic: i.cic,
            users: i.users,
        }
    }

    /// Whether the HTTP status should be 200.
    pub fn is_up(&self) -> bool {
        self.status != Overall::Failing
    }

    /// Whether the conduit takes work now (`/readyz`): it is not stopping, and its buffer takes
    /// appends (not at its size cap, not failing or recovering from a write). When not, why.
    pub fn readiness(&self) -> Result<(), String> {
        if self.status == Overall::Failing {
            return Err(format!(
                "stopping: {}",
                self.failure
                    .as_deref()
                    .or(self.buffer.reason.as_deref())
                    .unwrap_or("failing")
            ));
        }
        match self.buffer.state {
            BufferState::Ok | BufferState::Damaged => Ok(()),
            state => {
                let name = serde_json::to_value(state).ok();
                let name = name.as_ref().and_then(|v| v.as_str()).unwrap_or("not ok");
                Err(match &self.buffer.reason {
                    Some(why) => format!("buffer {name}: {why}"),
                    None => format!("buffer {name}"),
                })
            }
        }
    }
}

/// The buffer's state and why, most serious first.
fn buffer_state(b: &BufferStats, used_percent: f64) -> (BufferState, Option<String>) {
    if let Some(why) = &b.fatal {
        return (BufferState::Failed, Some(why.clone()));
    }
    if b.failed {
        let why = b.write_error.clone().unwrap_or_default();
        return (
            BufferState::Recovering,
            Some(format!(
                "putting the log back after a failed write ({why}); appends are refused meanwhile"
            )),
        );
    }
    if let Some(e) = &b.write_error {
        return (BufferState::WriteError, Some(format!("the last write failed: {e}")));
    }
    if b.damage_secs_ago.is_some_and(|s| s < DAMAGE_SHOWN_SECS) {
        return (
            BufferState::Damaged,
            Some(format!(
                "{} record(s) lost to on-disk damage since start; run `cic-conduit buffer verify`",
                b.damaged_records
            )),
        );
    }
    if used_percent >= 99.0 || b.at_cap {
        return (
            BufferState::Full,
            Some("at buffer.max_bytes: senders are held back".into()),
        );
    }
    (BufferState::Ok, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(b: BufferStats) -> Health {
        Health::build(Inputs {
            enabled: true,
            role: crate::config::Role::Both,
            cic_server: "cic",
            started: Instant::now(),
            persist: PersistPolicy::Fsync,
            buffer: b,
            destinations: Vec::new(),
            cic: None,
            failure: None,
            users: None,
        })
    }

    #[test]
    fn buffer_trouble_degrades_with_a_reason() {
        let ok = build(BufferStats {
            max_bytes: 100,
            ..Default::default()
        });
        assert_eq!((ok.status, ok.buffer.state), (Overall::Ok, BufferState::Ok));
        let disk_full = build(BufferStats {
            max_bytes: 100,
            write_error: Some("No space left on device (os error 28)".into()),
            ..Default::default()
        });
        assert_eq!(
            (disk_full.status, disk_full.buffer.state),
            (Overall::Degraded, BufferState::WriteError)
        );
        assert!(disk_full.buffer.reason.as_deref().unwrap().contains("No space left"));
        let damaged = build(BufferStats {
            max_bytes: 100,
            damaged_records: 3,
            damage_secs_ago: Some(10),
            ..Default::default()
        });
        assert_eq!(
            (damaged.status, damaged.buffer.state),
            (Overall::Degraded, BufferState::Damaged)
        );
        let old_damage = build(BufferStats {
            max_bytes: 100,
            damaged_records: 3,
            damage_secs_ago: Some(DAMAGE_SHOWN_SECS),
            ..Default::default()
        });
        assert_eq!(old_damage.status, Overall::Ok);
        assert_eq!(old_damage.buffer.damaged_records, 3);
        let full = build(BufferStats {
            max_bytes: 100,
            bytes: 100,
            ..Default::default()
        });
        assert_eq!((full.status, full.buffer.state), (Overall::Degraded, BufferState::Full));
        // Room left, but not for the appends that came: full until one is taken.
        let refused = build(BufferStats {
            max_bytes: 100,
            bytes: 60,
            at_cap: true,
            ..Default::default()
        });
        assert_eq!(refused.buffer.state, BufferState::Full);
        let recovering = build(BufferStats {
            max_bytes: 100,
            failed: true,
            ..Default::default()
        });
        assert_eq!(
            (recovering.status, recovering.buffer.state),
            (Overall::Degraded, BufferState::Recovering)
        );
        assert!(recovering.is_up());
        let fatal = build(BufferStats {
            max_bytes: 100,
            failed: true,
            fatal: Some("gave up".into()),
            ..Default::default()
        });
        assert_eq!(
            (fatal.status, fatal.buffer.state),
            (Overall::Failing, BufferState::Failed)
        );
        assert!(!fatal.is_up());
        // Ready while appends are taken (damage already done does not stop them).
        assert_eq!(ok.readiness(), Ok(()));
        assert_eq!(damaged.readiness(), Ok(()));
        assert!(full.readiness().unwrap_err().starts_with("buffer full"));
        assert!(
            disk_full
                .readiness()
                .unwrap_err()
                .starts_with("buffer write_error: the last write failed: No space left")
        );
        assert!(recovering.readiness().unwrap_err().starts_with("buffer recovering"));
        assert_eq!(fatal.readiness(), Err("stopping: gave up".to_string()));
    }

    #[test]
    fn a_failed_task_makes_it_failing_and_says_why() {
        let h = Health::build(Inputs {
            enabled: true,
            role: crate::config::Role::Both,
            cic_server: "cic",
            started: Instant::now(),
            persist: PersistPolicy::Fsync,
            buffer: BufferStats::default(),
            destinations: Vec::new(),
            cic: None,
            failure: Some("task dispatch.lane: it panicked: boom".into()),
            users: None,
        });
        assert_eq!(h.status, Overall::Failing);
        assert!(!h.is_up());
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(json["status"], "failing");
        assert_eq!(json["failure"], "task dispatch.lane: it panicked: boom");
    }
}
