//! What `/health` and the page show of a Kafka buffer: plain data, in every build (the Kafka
//! buffer itself, `buffer::kafka`, comes with the `kafka` feature).

/// The figures `/health` shows for a Kafka buffer.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct KafkaStats {
    /// The topic.
    pub topic: String,
    /// The dispatchers' group (when this process consumes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Records produced and not yet acknowledged by the brokers.
    pub producing: u64,
    /// Each assigned partition: its lag and committed offset.
    pub partitions: Vec<PartitionStats>,
    /// The last error librdkafka reported (brokers unreachable, say), while nothing has worked
    /// since.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One assigned partition.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PartitionStats {
    /// The partition.
    pub partition: i32,
    /// Records not yet committed.
    pub lag: u64,
    /// The committed offset (-1 before the first commit).
    pub committed: i64,
}
