//! `setup` for a Kafka buffer: the topic, created once with the configured partitions and
//! replicas (an existing topic is left as it is).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::client::KafkaSettings;

/// What `setup` did with the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicSetup {
    /// Created with this many partitions.
    Created(u32),
    /// It was there already.
    Exists,
}

/// Creates the topic unless it exists; the error says what the brokers answered.
pub async fn create_topic(settings: &KafkaSettings) -> Result<TopicSetup, String> {
    let cfg = &settings.config;
    let admin: AdminClient<DefaultClientContext> = settings
        .admin()
        .create()
        .map_err(|e| format!("kafka admin client: {e}"))?;
    let topic = NewTopic::new(
        &cfg.topic,
        cfg.partitions as i32,
        TopicReplication::Fixed(i32::from(cfg.replication_factor)),
    );
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(30)))
        .request_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&topic], &opts)
        .await
        .map_err(|e| format!("creating topic {}: {e}", cfg.topic))?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(TopicSetup::Created(cfg.partitions)),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(TopicSetup::Exists),
        Some(Err((name, code))) => Err(format!("creating topic {name}: {code}")),
        None => Err(format!("creating topic {}: no answer", cfg.topic)),
    }
}
