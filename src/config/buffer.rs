//! `[buffer]`: which durable buffer keeps what was accepted, and how.
//!
//! The section is tagged: `type = "disk"` is the embedded disk log, under the top-level
//! `data_dir`; `type = "kafka"` is a Kafka topic, set in `[buffer.kafka]`. Before the tag,
//! `data_dir` was a key of this section; that form is refused with a message showing the new one
//! (see [`super::load`]).

use std::collections::BTreeMap;
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
    /// A Kafka topic (`[buffer.kafka]`).
    Kafka,
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
    /// With `type = "kafka"`: the cluster and the topic.
    #[serde(default)]
    pub kafka: Option<KafkaConfig>,
}

/// `[buffer.kafka]`: the buffer is a Kafka topic. Records are keyed (an interaction, a user), so
/// each key stays in one partition, in order; an append counts as accepted once every broker in
/// sync has it (`acks=all`, idempotent producer); dispatchers consume the topic as one consumer
/// group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: `host:port` of one or more brokers, comma-separated.
    pub brokers: String,
    /// The topic.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// The dispatchers' consumer group.
    #[serde(default = "default_group")]
    pub group: String,
    /// Partitions of the topic `setup` creates: the most dispatchers that share the work.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// Replicas of each partition of the topic `setup` creates.
    #[serde(default = "default_replication")]
    pub replication_factor: u16,
    /// How long an append may wait for the brokers' acknowledgement (`message.timeout.ms`)
    /// before its source is told to retry.
    #[serde(default = "default_produce_timeout_ms")]
    pub produce_timeout_ms: u64,
    /// Records waiting for an acknowledgement at most (`queue.buffering.max.messages`); when
    /// reached, appends wait up to `buffer.block_timeout_ms`, then sources are told to retry.
    #[serde(default = "default_max_queued")]
    pub max_queued_records: u32,
    /// When the group takes partitions away, how long the records read from them and still in
    /// flight may take to be confirmed before the partitions go.
    #[serde(default = "default_revoke_timeout_ms")]
    pub revoke_timeout_ms: u64,
    /// Any other librdkafka property, passed through (`"security.protocol" = "ssl"`,
    /// `"compression.type" = "zstd"`, ...). The properties the guarantee rests on
    /// (`acks`, idempotence, offset commits) are refused.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Properties whose values are secrets (`"sasl.password" = { env = "KAFKA_PASSWORD" }`).
    #[serde(default)]
    pub secret_properties: BTreeMap<String, super::SecretSource>,
}

fn default_topic() -> String {
    "cic-conduit-events".into()
}
fn default_group() -> String {
    "cic-conduit-dispatch".into()
}
fn default_partitions() -> u32 {
    12
}
fn default_replication() -> u16 {
    3
}
fn default_produce_timeout_ms() -> u64 {
    10_000
}
fn default_max_queued() -> u32 {
    100_000
}
fn default_revoke_timeout_ms() -> u64 {
    10_000
}

/// librdkafka properties the conduit sets itself: its guarantee rests on them.
pub const KAFKA_OWNED_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "acks",
    "request.required.acks",
    "enable.idempotence",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "queue.buffering.max.messages",
    "isolation.level",
];

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
            kafka: None,
        }
    }

    /// `block_timeout_ms` as a duration.
    pub fn block_timeout(&self) -> Duration {
        Duration::from_millis(self.block_timeout_ms)
    }
}
