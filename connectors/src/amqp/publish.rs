//! Publishing: one channel per connector in confirm mode, shared by the routes' `to` steps and
//! the bus. Every message is persistent and `mandatory`: a publish returns once RabbitMQ
//! confirmed it, and fails when it was nacked or returned (no queue is bound to its routing
//! key: a confirm alone would ack a message RabbitMQ dropped).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use junction_engine::Message;
use junction_engine::connector::{Bus, ConnectorError, Consumer, Endpoint, PublishError};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{Channel, Confirmation};
use tokio::sync::Mutex;

use super::consume::AmqpConsumer;
use super::link::{Link, LinkError};
use super::wire;

/// Why the topology could not be declared when the connector started. Not fatal: consumers
/// declare their queues again when they connect.
#[derive(Debug, thiserror::Error)]
pub(super) enum DeclareError {
    /// The publishing channel could not be opened: RabbitMQ is down or refuses the connection.
    #[error(transparent)]
    Channel(#[from] PublishError),
    /// A consumer's queue could not be declared or bound.
    #[error(transparent)]
    Queue(#[from] LinkError),
}

/// The connector as the project's bus, and what its endpoints and consumers go through.
pub(super) struct AmqpBus {
    pub(super) link: Arc<Link>,
    /// The confirm-mode channel publishes go through; opened again when it broke.
    channel: Mutex<Option<Channel>>,
    /// How long a publish waits for RabbitMQ's confirm.
    timeout: Duration,
    pub(super) prefetch: Option<u16>,
    /// Queues of the consumers built so far, declared when the connector starts, so a message
    /// published before a consumer connected has a queue to go to.
    pub(super) groups: std::sync::Mutex<BTreeSet<(String, String, bool)>>,
}

impl AmqpBus {
    pub(super) fn new(link: Arc<Link>, timeout: Duration, prefetch: Option<u16>) -> Self {
        Self { link, channel: Mutex::new(None), timeout, prefetch, groups: std::sync::Mutex::default() }
    }

    /// The publishing channel, opened (in confirm mode) if there is none or it broke.
    async fn channel(&self) -> Result<Channel, PublishError> {
        let mut slot = self.channel.lock().await;
        if let Some(channel) = slot.as_ref().filter(|c| c.status().connected()) {
            return Ok(channel.clone());
        }
        let channel = self.link.channel().await.map_err(|e| PublishError::Unavailable(e.to_string()))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| PublishError::Unavailable(format!("cannot turn on publisher confirms: {e}")))?;
        *slot = Some(channel.clone());
        Ok(channel)
    }

    /// Publishes `msg` to `exchange` under `routing_key`; returns once RabbitMQ confirmed it
    /// and routed it to at least one queue.
    pub(super) async fn publish_to(
        &self,
        exchange: &str,
        routing_key: &str,
        msg: &Message,
    ) -> Result<(), PublishError> {
        let names = ShortString::try_new(exchange).and_then(|e| Ok((e, ShortString::try_new(routing_key)?)));
        let (exchange_name, key) =
            names.map_err(|_| PublishError::Invalid("exchange and routing key names are at most 255 bytes".into()))?;
        let channel = self.channel().await?;
        let (payload, properties) = wire::properties_of(msg);
        let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
        let confirmed = async { channel.basic_publish(exchange_name, key, options, &payload, properties).await?.await };
        let confirmation = match tokio::time::timeout(self.timeout, confirmed).await {
            Ok(Ok(confirmation)) => confirmation,
            Ok(Err(e)) => return Err(PublishError::Unavailable(format!("RabbitMQ did not take the message: {e}"))),
            Err(_) => {
                return Err(PublishError::Unavailable(format!("RabbitMQ did not confirm within {:?}", self.timeout)));
            }
        };
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                Err(PublishError::Unavailable(format!(
                    "no queue is bound to `{routing_key}` on exchange `{exchange}` (RabbitMQ returned the message: {} {})",
                    returned.reply_code, returned.reply_text
                )))
            }
            Confirmation::Nack(None) => Err(PublishError::Unavailable(format!(
                "RabbitMQ refused the message for `{routing_key}` on exchange `{exchange}` (nack)"
            ))),
            Confirmation::NotRequested => Ok(()),
        }
    }

    /// Declares the connector's topology (opening the publishing channel) and the queues of
    /// the consumers built so far.
    pub(super) async fn declare(&self) -> Result<(), DeclareError> {
        let channel = self.channel().await?;
        let groups = self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        for (topic, group, single_active) in groups {
            self.link.topology.declare_group(&channel, &topic, &group, single_active).await?;
        }
        Ok(())
    }

    pub(super) fn consumer_with(&self, source: super::consume::Source, prefetch: Option<u16>) -> Arc<dyn Consumer> {
        if let super::consume::Source::Topics { topics, group, single_active } = &source {
            let mut groups = self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for topic in topics {
                groups.insert((topic.clone(), group.clone(), *single_active));
            }
        }
        Arc::new(AmqpConsumer { link: self.link.clone(), source, prefetch: prefetch.or(self.prefetch) })
    }
}

#[async_trait]
impl Bus for AmqpBus {
    /// A topic is a routing key on the connector's exchange.
    async fn publish(&self, topic: &str, message: &Message) -> Result<(), PublishError> {
        if topic.is_empty() {
            return Err(PublishError::Invalid("a topic name cannot be empty".into()));
        }
        self.publish_to(&self.link.topology.exchange, topic, message).await
    }

    fn consumer(&self, topics: Vec<String>, group: String) -> Arc<dyn Consumer> {
        self.consumer_with(super::consume::Source::Topics { topics, group, single_active: false }, None)
    }

    fn describe(&self) -> String {
        format!("amqp exchange {}", self.link.topology.exchange)
    }
}

/// `to: { connector: rabbit, exchange: orders, routing_key: created }`: a publish to any
/// exchange, not only the bus's.
pub(super) struct ExchangeEndpoint {
    pub(super) bus: Arc<AmqpBus>,
    pub(super) exchange: String,
    pub(super) routing_key: String,
}

#[async_trait]
impl Endpoint for ExchangeEndpoint {
    async fn send(&self, msg: &Message) -> Result<(), ConnectorError> {
        Ok(self.bus.publish_to(&self.exchange, &self.routing_key, msg).await?)
    }

    async fn request(&self, _msg: &Message) -> Result<Message, ConnectorError> {
        Err(ConnectorError::permanent("RabbitMQ has no request/reply here; use `to` to publish"))
    }

    fn describe(&self) -> String {
        format!("exchange {} by {}", self.exchange, self.routing_key)
    }
}
