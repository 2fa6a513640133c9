//! The connection to RabbitMQ: opened on first use, opened again when it broke, and the
//! topology (exchanges, queues, bindings) declared on it.
//!
//! Queues the connector declares itself are durable quorum queues with a delivery limit and a
//! dead-letter exchange: a message redelivered that often (a process that keeps dying on it)
//! goes to `<exchange>.dead-letters` instead of looping. Dead-lettering is at-least-once
//! (`x-dead-letter-strategy`), so RabbitMQ keeps the message until the dead-letter queue has it.
//!
//! The bus's exchange has an alternate exchange: a message on a topic no group reads yet is
//! kept in `<exchange>.unrouted` rather than dropped (Kafka would keep it in its topic).

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::Mutex;

use super::wire::long_string;
use super::{BindingSpec, ExchangeSpec, ExchangeType, QueueSpec, QueueType};

/// How long opening a connection may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why RabbitMQ could not be reached, or would not take the topology. Consumers try again
/// with backoff, and publishes fail (to be retried), until it works.
#[derive(Debug, thiserror::Error)]
pub(super) enum LinkError {
    /// RabbitMQ did not answer in time: check it is up, and the URL's host and port.
    #[error("no answer from RabbitMQ within {CONNECT_TIMEOUT:?}")]
    Timeout,
    /// The connection was refused: check the URL's credentials and virtual host.
    #[error("cannot connect to RabbitMQ: {0}")]
    Connect(#[source] lapin::Error),
    /// No channel could be opened on the connection (it closed, or has as many as it may).
    #[error("cannot open a channel: {0}")]
    Channel(#[source] lapin::Error),
    /// An exchange, queue or routing key longer than AMQP allows: shorten it.
    #[error("`{name}` is longer than AMQP's 255 bytes")]
    Name { name: String },
    /// RabbitMQ refused an exchange: one of that name exists with other arguments.
    #[error(
        "cannot declare exchange `{name}`: {source} (an exchange that exists with other arguments has to be deleted \
         first, or named differently)"
    )]
    Exchange { name: String, source: lapin::Error },
    /// RabbitMQ refused a queue: one of that name exists with other arguments.
    #[error(
        "cannot declare queue `{name}`: {source} (a queue that exists with other arguments has to be deleted \
         first, or named differently)"
    )]
    Queue { name: String, source: lapin::Error },
    /// RabbitMQ refused a binding: check the queue and the exchange are the ones meant.
    #[error("cannot bind queue `{queue}` to `{exchange}` by `{routing_key}`: {source}")]
    Bind { queue: String, exchange: String, routing_key: String, source: Box<lapin::Error> },
}

pub(super) struct Link {
    url: String,
    /// Shown in RabbitMQ's connection list: `junction <connector> <pid>`.
    connection_name: String,
    connection: Mutex<Option<Arc<Connection>>>,
    pub(super) topology: Topology,
}

impl Link {
    pub(super) fn new(url: String, connector: &str, topology: Topology) -> Self {
        let connection_name = format!("junction {connector} {}", std::process::id());
        Self { url, connection_name, connection: Mutex::new(None), topology }
    }

    /// A new channel on a live connection. Connects again when the connection broke, and
    /// declares the topology on each new connection (a restarted broker may have lost it)
    /// before anyone uses it.
    pub(super) async fn channel(&self) -> Result<Channel, LinkError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref().filter(|c| c.status().connected()) {
            match connection.create_channel().await {
                Ok(channel) => return Ok(channel),
                Err(e) => tracing::warn!(error = %e, "cannot open a RabbitMQ channel; connecting again"),
            }
        }
        *slot = None;
        let properties =
            ConnectionProperties::default().with_connection_name(LongString::from(self.connection_name.clone()));
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(&self.url, properties))
            .await
            .map_err(|_| LinkError::Timeout)?
            .map_err(LinkError::Connect)?;
        let open = || async { connection.create_channel().await.map_err(LinkError::Channel) };
        // A refused declaration closes its channel: the topology gets one of its own.
        let declaring = open().await?;
        if let Err(e) = self.topology.declare(&declaring).await {
            let _ = connection.close(200, "topology refused".into()).await;
            return Err(e);
        }
        let _ = declaring.close(200, "declared".into()).await;
        let channel = open().await?;
        *slot = Some(Arc::new(connection));
        Ok(channel)
    }

    /// Closes the connection (and every channel on it).
    pub(super) async fn close(&self) {
        if let Some(connection) = self.connection.lock().await.take()
            && connection.status().connected()
        {
            let _ = connection.close(200, "junction stopped".into()).await;
        }
    }
}

/// What the connector declares: the bus's exchange, the dead-letter exchange and queue, and
/// what its options list.
pub(super) struct Topology {
    /// The exchange the bus's topics are routing keys on.
    pub(super) exchange: String,
    pub(super) delivery_limit: u32,
    pub(super) single_active_consumer: bool,
    pub(super) exchanges: Vec<ExchangeSpec>,
    pub(super) queues: Vec<QueueSpec>,
    pub(super) bindings: Vec<BindingSpec>,
}

impl Topology {
    fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.exchange)
    }

    /// The queue RabbitMQ dead-letters to: every message past its delivery limit.
    pub(super) fn dead_letter_queue(&self) -> String {
        format!("{}.dead-letters", self.exchange)
    }

    /// Where the bus's messages that no queue is bound for are kept.
    pub(super) fn unrouted_queue(&self) -> String {
        format!("{}.unrouted", self.exchange)
    }

    /// Declares the bus's exchange and dead-letter queue, then the exchanges, queues and
    /// bindings the options list.
    async fn declare(&self, channel: &Channel) -> Result<(), LinkError> {
        // The ends of the line: no limit and no dead-lettering of their own.
        let unrouted = self.unrouted_queue();
        exchange(channel, &unrouted, ExchangeType::Fanout, FieldTable::default()).await?;
        queue(channel, &unrouted, quorum_arguments(None, None, false)).await?;
        bind(channel, &unrouted, &unrouted, "").await?;
        let mut alternate = FieldTable::default();
        alternate.insert("alternate-exchange".into(), long_string(&unrouted));
        exchange(channel, &self.exchange, ExchangeType::Topic, alternate).await?;
        let (dlx, dead) = (self.dead_letter_exchange(), self.dead_letter_queue());
        exchange(channel, &dlx, ExchangeType::Topic, FieldTable::default()).await?;
        queue(channel, &dead, quorum_arguments(None, None, false)).await?;
        bind(channel, &dead, &dlx, "#").await?;
        for e in &self.exchanges {
            exchange(channel, &e.name, e.kind, FieldTable::default()).await?;
        }
        for q in &self.queues {
            let arguments = match q.kind {
                QueueType::Quorum => quorum_arguments(
                    Some(q.delivery_limit.unwrap_or(self.delivery_limit)),
                    Some(q.dead_letter_exchange.clone().unwrap_or_else(|| self.dead_letter_exchange())),
                    q.single_active_consumer,
                ),
                QueueType::Classic => {
                    let mut a = FieldTable::default();
                    a.insert("x-queue-type".into(), long_string("classic"));
                    if let Some(dlx) = &q.dead_letter_exchange {
                        a.insert("x-dead-letter-exchange".into(), long_string(dlx));
                    }
                    if q.single_active_consumer {
                        a.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
                    }
                    a
                }
            };
            queue(channel, &q.name, arguments).await?;
        }
        for b in &self.bindings {
            bind(channel, &b.queue, &b.exchange, &b.routing_key).await?;
        }
        Ok(())
    }

    /// Declares the queue consumer group `group` reads `topic` from, `<topic>.<group>`, bound to
    /// the bus's exchange by the topic; returns its name.
    pub(super) async fn declare_group(
        &self,
        channel: &Channel,
        topic: &str,
        group: &str,
        single_active_consumer: bool,
    ) -> Result<String, LinkError> {
        let name = group_queue(topic, group);
        let arguments = quorum_arguments(
            Some(self.delivery_limit),
            Some(self.dead_letter_exchange()),
            single_active_consumer || self.single_active_consumer,
        );
        queue(channel, &name, arguments).await?;
        bind(channel, &name, &self.exchange, topic).await?;
        Ok(name)
    }
}

/// The queue a group reads a topic from.
pub(super) fn group_queue(topic: &str, group: &str) -> String {
    format!("{topic}.{group}")
}

fn quorum_arguments(delivery_limit: Option<u32>, dead_letters: Option<String>, single_active: bool) -> FieldTable {
    let mut a = FieldTable::default();
    a.insert("x-queue-type".into(), long_string("quorum"));
    if let Some(limit) = delivery_limit {
        a.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(i64::from(limit)));
    }
    if let Some(dlx) = dead_letters {
        a.insert("x-dead-letter-exchange".into(), long_string(&dlx));
        // RabbitMQ keeps a message until the dead-letter queue confirmed it (needs reject-publish).
        a.insert("x-dead-letter-strategy".into(), long_string("at-least-once"));
        a.insert("x-overflow".into(), long_string("reject-publish"));
    }
    if single_active {
        a.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    }
    a
}

fn short(name: &str) -> Result<ShortString, LinkError> {
    ShortString::try_new(name).map_err(|_| LinkError::Name { name: name.to_owned() })
}

async fn exchange(channel: &Channel, name: &str, kind: ExchangeType, arguments: FieldTable) -> Result<(), LinkError> {
    let kind = match kind {
        ExchangeType::Direct => ExchangeKind::Direct,
        ExchangeType::Fanout => ExchangeKind::Fanout,
        ExchangeType::Topic => ExchangeKind::Topic,
        ExchangeType::Headers => ExchangeKind::Headers,
    };
    let options = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    channel
        .exchange_declare(short(name)?, kind, options, arguments)
        .await
        .map_err(|source| LinkError::Exchange { name: name.to_owned(), source })
}

async fn queue(channel: &Channel, name: &str, arguments: FieldTable) -> Result<(), LinkError> {
    let options = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    channel
        .queue_declare(short(name)?, options, arguments)
        .await
        .map(|_| ())
        .map_err(|source| LinkError::Queue { name: name.to_owned(), source })
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, routing_key: &str) -> Result<(), LinkError> {
    channel
        .queue_bind(
            short(queue)?,
            short(exchange)?,
            short(routing_key)?,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| LinkError::Bind {
            queue: queue.to_owned(),
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
            source: Box::new(source),
        })
}
