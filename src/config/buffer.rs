//! `[buffer]`: which durable buffer keeps what was accepted, and how.
//!
//! The section is tagged: `type = "disk"` is the embedded disk log, under the top-level
//! `data_dir`. Before the tag, `data_dir` was a key of this section; that form is refused with a
//! message showing the new one (see [`super::load`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// When an append finds the buffer at its size cap.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait for room (up to `block_timeout_ms`), then tell the source to retry later.
    Block,
    /// Drop the new records and count them in `conduit_buffer_dropped_total`.
    DropNewest,
}

/// How far an append goes before it counts as accepted.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PersistPolicy {
    /// On disk: `fdatasync` before the caller is answered (group commit). Survives power loss.
    Fsync,
    /// In the OS page cache: survives a crash of the process, not of the machine.
    Flush,
}

/// Which buffer.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferType {
    /// The embedded segmented log under `<data_dir>/buffer/`.
    Disk,
}

/// The durable buffer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// `type`: which buffer (`"disk"`, the default).
    #[serde(rename = "type", default = "default_type")]
    pub kind: BufferType,
    /// The data directory: not a key of this section but the top-level `data_dir`, copied here
    /// when the config is loaded (the disk log lives under `<data_dir>/buffer/`).
    #[serde(skip)]
    pub data_dir: PathBuf,
    /// `fsync` (default) or `flush`.
    #[serde(default = "default_persist")]
    pub persist: PersistPolicy,
    /// Size at which a segment file is sealed and a new one started.
    #[serde(default = "default_segment_max_bytes")]
    pub segment_max_bytes: u64,
    /// Cap on the buffer's size on disk.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// `block` (default) or `drop_newest`.
    #[serde(default = "default_when_full")]
    pub when_full: WhenFull,
    /// With `block`: how long an append waits for room before the source is told to back off.
    #[serde(default = "default_block_timeout_ms")]
    pub block_timeout_ms: u64,
    /// Largest single record accepted.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: u32,
}

fn default_type() -> BufferType {
    BufferType::Disk
}
fn default_persist() -> PersistPolicy {
    PersistPolicy::Fsync
}
fn default_segment_max_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_max_bytes() -> u64 {
    10 * 1024 * 1024 * 1024
}
fn default_when_full() -> WhenFull {
    WhenFull::Block
}
fn default_block_timeout_ms() -> u64 {
    5_000
}
fn default_max_record_bytes() -> u32 {
    1024 * 1024
}

impl Default for BufferConfig {
    /// The disk log with every default (its `data_dir` is filled in from the top-level key).
    fn default() -> Self {
        BufferConfig::with_dir(PathBuf::new())
    }
}

impl BufferConfig {
    /// Defaults for a data dir (used by the tools and tests).
    pub fn with_dir(data_dir: impl Into<PathBuf>) -> Self {
        BufferConfig {
            kind: BufferType::Disk,
            data_dir: data_dir.into(),
            persist: default_persist(),
            segment_max_bytes: default_segment_max_bytes(),
            max_bytes: default_max_bytes(),
            when_full: default_when_full(),
            block_timeout_ms: default_block_timeout_ms(),
            max_record_bytes: default_max_record_bytes(),
        }
    }

    /// `block_timeout_ms` as a duration.
    pub fn block_timeout(&self) -> Duration {
        Duration::from_millis(self.block_timeout_ms)
    }
}
