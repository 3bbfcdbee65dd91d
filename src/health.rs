//! The integration-health document served at `GET /health`.
//!
//! One JSON object an operator (or a load balancer) reads at a glance: whether ingesting is
//! switched on, the buffer's state and backlog, each destination's state (ok, retrying, paused
//! until, auth failing) with its last error and correlation id, and the ICWS source's CIC
//! connection (host, server, pair, session age, last message, last error). Never contains a
//! secret. `status` is `degraded` while a destination is not ok or the ICWS source has no
//! session. The HTTP status is 200 while the conduit can accept work (or is deliberately
//! disabled) and 503 when the buffer has failed.

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

/// The buffer's part.
#[derive(Debug, Serialize)]
pub struct BufferHealth {
    /// `ok`, `full` or `failed`.
    pub state: &'static str,
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
        let state = if b.failed {
            "failed"
        } else if used_percent >= 99.0 {
            "full"
        } else {
            "ok"
        };
        let status = if b.failed {
            "failing"
        } else if !enabled {
            "disabled"
        } else if destinations.iter().any(|d| d.state != DestState::Ok) {
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
