//! The integration-health document served at `GET /health`.
//!
//! One JSON object an operator (or a load balancer) reads at a glance: whether ingesting is
//! switched on, the buffer's state and backlog, each destination's state (ok, retrying, paused
//! until, auth failing) with its last error and correlation id, and the ICWS source's CIC
//! connection (host, server, pair, session age, last message, last error). Never contains a
//! secret. `status` is `degraded` while a destination is not ok, the ICWS source has no
//! session, or the buffer is not ok (a write error such as a full disk, recovering from one,
//! records lost to on-disk damage within the last hour, or at its size cap), with the buffer's
//! `reason`. The HTTP status is 200 while the process can work (or is deliberately disabled)
//! and 503 once the buffer has failed for good (the process is then exiting).

use std::time::Instant;

use serde::Serialize;

use crate::buffer::BufferStats;
use crate::config::PersistPolicy;
use crate::dispatch::gate::{DestState, DestinationHealth};

/// The whole document.
#[derive(Debug, Serialize)]
pub struct Health {
    /// `ok`, `degraded`, `disabled` or `failing`.
    pub status: &'static str,
    /// The Interaction Administrator switch.
    pub enabled: bool,
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
}

/// How long damage found in the buffer keeps `/health` degraded.
pub const DAMAGE_SHOWN_SECS: u64 = 3600;

/// The buffer's part.
#[derive(Debug, Serialize)]
pub struct BufferHealth {
    /// `ok`, `full` (at the size cap), `write_error` (the last write failed: a full disk, say),
    /// `recovering` (putting the log back after a failed write; appends refused), `damaged`
    /// (records lost to on-disk damage within the last hour) or `failed` (for good: exiting).
    pub state: &'static str,
    /// Why the state is not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Records lost to on-disk damage since start.
    pub damaged_records: u64,
    /// `fsync` or `flush`.
    pub persist: PersistPolicy,
    /// Records waiting for delivery.
    pub backlog_records: u64,
    /// Bytes used on disk.
    pub bytes: u64,
    /// The size cap.
    pub max_bytes: u64,
    /// Percentage of the cap in use.
    pub used_percent: f64,
    /// Segment files.
    pub segments: usize,
}

impl Health {
    /// Builds the document.
    pub fn build(
        enabled: bool,
        cic_server: &str,
        started: Instant,
        persist: PersistPolicy,
        b: BufferStats,
        destinations: Vec<DestinationHealth>,
    ) -> Self {
        let used_percent = if b.max_bytes == 0 {
            0.0
        } else {
            (b.bytes as f64 * 1000.0 / b.max_bytes as f64).round() / 10.0
        };
        let (state, reason) = buffer_state(&b, used_percent);
        let status = if state == "failed" {
            "failing"
        } else if !enabled {
            "disabled"
        } else if state != "ok" || destinations.iter().any(|d| d.state != DestState::Ok) {
            "degraded"
        } else {
            "ok"
        };
        Health {
            status,
            enabled,
            version: env!("CARGO_PKG_VERSION"),
            cic_server: cic_server.to_string(),
            uptime_secs: started.elapsed().as_secs(),
            buffer: BufferHealth {
                state,
                reason,
                damaged_records: b.damaged_records,
                persist,
                backlog_records: b.backlog_records,
                bytes: b.bytes,
                max_bytes: b.max_bytes,
                used_percent,
                segments: b.segments,
            },
            destinations,
            cic: None,
        }
    }

    /// Whether the HTTP status should be 200.
    pub fn is_up(&self) -> bool {
        self.status != "failing"
    }
}

/// The buffer's state and why, most serious first.
fn buffer_state(b: &BufferStats, used_percent: f64) -> (&'static str, Option<String>) {
    if let Some(why) = &b.fatal {
        return ("failed", Some(why.clone()));
    }
    if b.failed {
        let why = b.write_error.clone().unwrap_or_default();
        return (
            "recovering",
            Some(format!(
                "putting the log back after a failed write ({why}); appends are refused meanwhile"
            )),
        );
    }
    if let Some(e) = &b.write_error {
        return ("write_error", Some(format!("the last write failed: {e}")));
    }
    if b.damage_secs_ago.is_some_and(|s| s < DAMAGE_SHOWN_SECS) {
        return (
            "damaged",
            Some(format!(
                "{} record(s) lost to on-disk damage since start; run `cic-conduit buffer verify`",
                b.damaged_records
            )),
        );
    }
    if used_percent >= 99.0 {
        return ("full", Some("at buffer.max_bytes: senders are held back".into()));
    }
    ("ok", None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(b: BufferStats) -> Health {
        Health::build(true, "cic", Instant::now(), PersistPolicy::Fsync, b, Vec::new())
    }

    #[test]
    fn buffer_trouble_degrades_with_a_reason() {
        let ok = build(BufferStats {
            max_bytes: 100,
            ..Default::default()
        });
        assert_eq!((ok.status, ok.buffer.state), ("ok", "ok"));
        let disk_full = build(BufferStats {
            max_bytes: 100,
            write_error: Some("No space left on device (os error 28)".into()),
            ..Default::default()
        });
        assert_eq!((disk_full.status, disk_full.buffer.state), ("degraded", "write_error"));
        assert!(disk_full.buffer.reason.unwrap().contains("No space left"));
        let damaged = build(BufferStats {
            max_bytes: 100,
            damaged_records: 3,
            damage_secs_ago: Some(10),
            ..Default::default()
        });
        assert_eq!((damaged.status, damaged.buffer.state), ("degraded", "damaged"));
        let old_damage = build(BufferStats {
            max_bytes: 100,
            damaged_records: 3,
            damage_secs_ago: Some(DAMAGE_SHOWN_SECS),
            ..Default::default()
        });
        assert_eq!(old_damage.status, "ok");
        assert_eq!(old_damage.buffer.damaged_records, 3);
        let full = build(BufferStats {
            max_bytes: 100,
            bytes: 100,
            ..Default::default()
        });
        assert_eq!((full.status, full.buffer.state), ("degraded", "full"));
        let recovering = build(BufferStats {
            max_bytes: 100,
            failed: true,
            ..Default::default()
        });
        assert_eq!((recovering.status, recovering.buffer.state), ("degraded", "recovering"));
        assert!(recovering.is_up());
        let fatal = build(BufferStats {
            max_bytes: 100,
            failed: true,
            fatal: Some("gave up".into()),
            ..Default::default()
        });
        assert_eq!((fatal.status, fatal.buffer.state), ("failing", "failed"));
        assert!(!fatal.is_up());
    }
}
