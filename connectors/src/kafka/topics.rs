//! Topics are created before their first use, through the admin API: brokers need not create
//! them on their own (many are set not to, tansu never does), and the implicit ones (an async
//! route's queue, `dlq.*`, `masterdeal.*`) are nowhere else declared.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// Why topics could not be made sure of. Publishes fail and consumers retry until it works.
#[derive(Debug, thiserror::Error)]
pub(super) enum TopicsError {
    /// The admin client could not be made from the connector's options: check `options`.
    #[error("cannot create the Kafka admin client: {0}")]
    Admin(#[source] KafkaError),
    /// The brokers did not answer the request: check they are up and reachable.
    #[error("cannot create topics: {0}")]
    Request(#[source] KafkaError),
    /// The brokers refused one topic (an invalid name, more replicas than brokers, no right to
    /// create): fix `partitions`, `replication` or the broker's ACLs, or create it by hand.
    #[error("cannot create topic `{topic}`: {code}")]
    Refused { topic: String, code: RDKafkaErrorCode },
}

pub(super) struct Topics {
    client: ClientConfig,
    create: bool,
    partitions: i32,
    replication: i32,
    admin: OnceLock<AdminClient<DefaultClientContext>>,
    /// Topics known to exist (created here, or found existing).
    known: Mutex<HashSet<String>>,
}

impl Topics {
    pub(super) fn new(client: ClientConfig, create: bool, partitions: i32, replication: i32) -> Self {
        Self { client, create, partitions, replication, admin: OnceLock::new(), known: Mutex::default() }
    }

    /// Makes sure each of `topics` exists, creating the missing ones (when the connector may).
    pub(super) async fn ensure(&self, topics: &[&str]) -> Result<(), TopicsError> {
        if !self.create {
            return Ok(());
        }
        let missing: Vec<&str> = {
            let known = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            topics.iter().copied().filter(|t| !known.contains(*t)).collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let admin = match self.admin.get() {
            Some(admin) => admin,
            None => {
                let admin = self.client.create().map_err(TopicsError::Admin)?;
                self.admin.get_or_init(|| admin)
            }
        };
        let new: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|t| NewTopic::new(t, self.partitions, TopicReplication::Fixed(self.replication)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin.create_topics(&new, &options).await.map_err(TopicsError::Request)?;
        let mut known = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for result in results {
            match result {
                Ok(topic) | Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    known.insert(topic);
                }
                Err((topic, code)) => return Err(TopicsError::Refused { topic, code }),
            }
        }
        Ok(())
    }
}
