//! Publishing: one idempotent producer per connector (`acks=all`), shared by the routes' `to`
//! steps and by the bus; the record key is the message's `meta.key`. A publish returns once every in-sync replica has the record.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use junction_engine::Message;
use junction_engine::connector::{Bus, Consumer, PublishError};
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;

use super::consume::KafkaConsumer;
use super::topics::Topics;
use super::wire;

/// How long a publish waits for room in the producer's queue before it is refused.
const QUEUE_WAIT: Duration = Duration::from_secs(5);

pub(super) struct Producer {
    inner: FutureProducer,
    topics: Arc<Topics>,
}

impl Producer {
    pub(super) fn new(config: &ClientConfig, topics: Arc<Topics>) -> Result<Self, KafkaError> {
        Ok(Self { inner: config.create()?, topics })
    }

    pub(super) async fn publish(&self, topic: &str, key: Option<&str>, msg: &Message) -> Result<(), PublishError> {
        if topic.is_empty() {
            return Err(PublishError::Invalid("a topic name cannot be empty".into()));
        }
        self.topics.ensure(&[topic]).await.map_err(|e| PublishError::Unavailable(e.to_string()))?;
        let payload = msg.body.to_bytes();
        let mut record: FutureRecord<'_, str, [u8]> =
            FutureRecord::to(topic).payload(&payload[..]).headers(wire::headers_of(msg));
        if let Some(key) = key {
            record = record.key(key);
        }
        match self.inner.send(record, QUEUE_WAIT).await {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(refusal(topic, &e)),
        }
    }

    /// Waits up to `wait` for the records still queued to reach the brokers.
    pub(super) async fn flush(&self, wait: Duration) {
        let inner = self.inner.clone();
        let flushed = tokio::task::spawn_blocking(move || inner.flush(wait)).await;
        if let Ok(Err(e)) = flushed {
            tracing::warn!(error = %e, "the Kafka producer could not deliver everything it held before stopping");
        }
    }
}

/// What a failed publish means for the route: a message the brokers will never take is
/// invalid (dead-lettered at once); anything else may pass later (retried).
fn refusal(topic: &str, e: &KafkaError) -> PublishError {
    use RDKafkaErrorCode::{InvalidMessage, InvalidMessageSize, InvalidTopic, MessageSizeTooLarge};
    match e.rdkafka_error_code() {
        Some(InvalidTopic | MessageSizeTooLarge | InvalidMessageSize | InvalidMessage) => {
            PublishError::Invalid(format!("topic `{topic}`: {e}"))
        }
        _ => PublishError::Unavailable(format!("topic `{topic}`: {e}")),
    }
}

/// The connector as the project's bus, and what its endpoints and consumers publish and read
/// through.
pub(super) struct KafkaBus {
    pub(super) brokers: String,
    /// Set when the connector starts.
    pub(super) producer: OnceLock<Producer>,
    pub(super) consumer_config: ClientConfig,
    pub(super) commit_interval: Duration,
    pub(super) topics: Arc<Topics>,
    /// Before every topic and group name (`topic_prefix`), empty for none.
    pub(super) prefix: String,
}

impl KafkaBus {
    pub(super) fn consumer_with(
        &self,
        topics: Vec<String>,
        group: String,
        checkpoint_limit: usize,
    ) -> Arc<dyn Consumer> {
        Arc::new(KafkaConsumer {
            config: self.consumer_config.clone(),
            topics: topics.iter().map(|t| self.named(t).into_owned()).collect(),
            group: self.named(&group).into_owned(),
            checkpoint_limit,
            commit_interval: self.commit_interval,
            ensure: self.topics.clone(),
        })
    }

    /// A topic's (or group's) name on the brokers.
    fn named<'a>(&self, name: &'a str) -> Cow<'a, str> {
        if self.prefix.is_empty() { Cow::Borrowed(name) } else { Cow::Owned(format!("{}{name}", self.prefix)) }
    }
}

#[async_trait]
impl Bus for KafkaBus {
    async fn publish(&self, topic: &str, message: &Message) -> Result<(), PublishError> {
        let producer = self.producer.get().ok_or_else(|| PublishError::Unavailable("Kafka is not started".into()))?;
        producer.publish(&self.named(topic), message.meta.key.as_deref(), message).await
    }

    fn consumer(&self, topics: Vec<String>, group: String) -> Arc<dyn Consumer> {
        self.consumer_with(topics, group, super::DEFAULT_CHECKPOINT_LIMIT)
    }

    fn describe(&self) -> String {
        format!("kafka {}", self.brokers)
    }
}
