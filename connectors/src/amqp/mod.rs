//! `kind: amqp`: RabbitMQ (AMQP 0-9-1) through lapin. One connector offers every role:
//!
//! - operations: `to: { connector: rabbit, topic: deals, key: "body.deal_id" }` publishes to the
//!   connector's exchange by routing key, `to: { connector: rabbit, exchange: x, routing_key: k }`
//!   to any exchange; persistent, `mandatory`, and confirmed by RabbitMQ ([`publish`]);
//! - a source: `from: { connector: rabbit, topics: [a, b], group: g }` reads the bus's topics as a
//!   consumer group (a quorum queue `<topic>.<group>` each), `from: { connector: rabbit, queue: q }`
//!   reads a queue as it is; acked after the route finished ([`consume`]);
//! - the bus: `bus: rabbit` (or `bus: amqp://user:pass@host:5672/%2f`) carries async HTTP routes,
//!   dead letters and the outbox relay.
//!
//! Exchanges, queues and bindings listed in the options are declared when the connector starts;
//! the queues of consumer groups when their consumer starts (and, for the consumers known then,
//! at start too, so a publish finds its queue).
//!
//! - `link`: the connection (opened again when it breaks) and the topology.
//! - `wire`: a [`Message`](junction_engine::Message) as an AMQP message and back.
//! - `publish`: the publishing channel, the endpoints and the bus.
//! - `consume`: the consumer (per-key lanes, ack after the route, reconnect).

mod consume;
mod link;
mod publish;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use junction_engine::config::duration::ConfigDuration;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::{
    BuildCx, Bus, Connector, ConnectorError, Consumer, Endpoint, Kind, Publish, Role, StartCx, TopicsSpec,
};
use serde::Deserialize;

use consume::Source;
use link::{Link, Topology};
use publish::{AmqpBus, ExchangeEndpoint};

pub struct AmqpKind;

/// An AMQP connector's options in `junction.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    /// `amqp://user:password@host:5672/%2f` (`%2f` is the default virtual host `/`), or `amqps://`.
    url: String,
    /// The exchange the bus's topics are routing keys on: a durable `topic` exchange the
    /// connector declares (default `junction`). Its dead-letter exchange is `<exchange>.dlx`,
    /// with the queue `<exchange>.dead-letters`.
    #[serde(default = "default_exchange")]
    exchange: String,
    /// How many unacknowledged messages a route's consumer may hold (default: as many as the
    /// route runs at once, its `max_in_flight`).
    #[serde(default)]
    prefetch: Option<u16>,
    /// Deliveries of one message before RabbitMQ dead-letters it, on the quorum queues the
    /// connector declares (default 20): a message that keeps killing its consumer stops looping.
    #[serde(default = "default_delivery_limit")]
    delivery_limit: u32,
    /// Whether the queues of consumer groups have a single active consumer (default false):
    /// one instance at a time reads each, which keeps one key's messages in order across
    /// instances, at the price of spreading the load.
    #[serde(default)]
    single_active_consumer: bool,
    /// How long a publish waits for RabbitMQ's confirm (default 30s).
    #[serde(default)]
    publish_timeout: Option<ConfigDuration>,
    /// Exchanges to declare: `[{ name: orders, type: topic }]`.
    #[serde(default)]
    exchanges: Vec<ExchangeSpec>,
    /// Queues to declare: `[{ name: orders.billing, type: quorum, delivery_limit: 5 }]`.
    #[serde(default)]
    queues: Vec<QueueSpec>,
    /// Bindings to declare: `[{ queue: orders.billing, exchange: orders, routing_key: "order.*" }]`.
    #[serde(default)]
    bindings: Vec<BindingSpec>,
}

fn default_exchange() -> String {
    "junction".into()
}

fn default_delivery_limit() -> u32 {
    20
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExchangeSpec {
    name: String,
    /// `direct`, `fanout`, `topic` (default) or `headers`.
    #[serde(rename = "type", default)]
    kind: ExchangeType,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ExchangeType {
    Direct,
    Fanout,
    #[default]
    Topic,
    Headers,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueueSpec {
    name: String,
    /// `quorum` (default: replicated, with a delivery limit) or `classic`.
    #[serde(rename = "type", default)]
    kind: QueueType,
    /// Deliveries before dead-lettering (quorum queues; default the connector's).
    #[serde(default)]
    delivery_limit: Option<u32>,
    /// Where RabbitMQ dead-letters (default the connector's `<exchange>.dlx` for quorum queues).
    #[serde(default)]
    dead_letter_exchange: Option<String>,
    /// One consumer at a time reads the queue, in order (default false).
    #[serde(default)]
    single_active_consumer: bool,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum QueueType {
    #[default]
    Quorum,
    Classic,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BindingSpec {
    queue: String,
    exchange: String,
    /// The routing key or pattern (`order.*`, `#`); empty for fanout exchanges.
    #[serde(default)]
    routing_key: String,
}

/// `from: { connector: rabbit, topics: [a, b], group: g }` or `from: { connector: rabbit, queue: q }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceSpec {
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    group: Option<String>,
    /// A queue to read as it is, instead of topics.
    #[serde(default)]
    queue: Option<String>,
    /// Unacknowledged messages this consumer may hold (default the connector's).
    #[serde(default)]
    prefetch: Option<u16>,
    /// The group's queues have a single active consumer (default the connector's setting).
    #[serde(default)]
    single_active_consumer: bool,
}

/// `to: { connector: rabbit, exchange: orders, routing_key: created }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangePublishSpec {
    exchange: String,
    #[serde(default)]
    routing_key: String,
}

impl Kind for AmqpKind {
    const NAME: &'static str = "amqp";
    const SCHEMES: &'static [&'static str] = &["amqp", "amqps"];
    type Config = AmqpConfig;

    fn build(
        &self,
        name: &str,
        config: AmqpConfig,
        options: &Node,
        _cx: &BuildCx<'_>,
    ) -> Result<Arc<dyn Connector>, NodeError> {
        let at = |key: &str| Some(options.get(key).map_or(options.pos, |n| n.pos));
        let error = |key: &str, message: String| NodeError { message, pos: at(key) };
        config.url.parse::<lapin::uri::AMQPUri>().map_err(|e| error("url", format!("not an AMQP URL: {e}")))?;
        let mut names = vec![("exchange", config.exchange.as_str())];
        names.extend(config.exchanges.iter().map(|e| ("exchanges", e.name.as_str())));
        names.extend(config.queues.iter().map(|q| ("queues", q.name.as_str())));
        for (key, value) in names {
            if value.is_empty() || value.len() > 200 {
                return Err(error(key, format!("`{value}`: a name is 1 to 200 bytes")));
            }
        }
        if config.delivery_limit == 0 {
            return Err(error("delivery_limit", "`delivery_limit` is at least 1".into()));
        }
        if config.prefetch == Some(0) {
            return Err(error("prefetch", "`prefetch` is at least 1".into()));
        }
        let topology = Topology {
            exchange: config.exchange,
            delivery_limit: config.delivery_limit,
            single_active_consumer: config.single_active_consumer,
            exchanges: config.exchanges,
            queues: config.queues,
            bindings: config.bindings,
        };
        let link = Arc::new(Link::new(config.url, name, topology));
        let timeout = config.publish_timeout.map_or(Duration::from_secs(30), |d| d.0);
        Ok(Arc::new(AmqpConnector {
            name: name.to_owned(),
            bus: Arc::new(AmqpBus::new(link, timeout, config.prefetch)),
        }))
    }

    /// `amqp://user:pass@host:5672/%2f[?exchange=x&single_active_consumer=true]`; other query
    /// parameters (`heartbeat`, `frame_max`, …) are the AMQP URI's own.
    fn config_from_url(&self, url: &str) -> Result<AmqpConfig, String> {
        let mut config = AmqpConfig {
            url: String::new(),
            exchange: default_exchange(),
            prefetch: None,
            delivery_limit: default_delivery_limit(),
            single_active_consumer: false,
            publish_timeout: None,
            exchanges: Vec::new(),
            queues: Vec::new(),
            bindings: Vec::new(),
        };
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=').unwrap_or((pair, "")) {
                ("exchange", value) => config.exchange = value.to_owned(),
                ("single_active_consumer", value) => {
                    config.single_active_consumer =
                        value.parse().map_err(|_| format!("`single_active_consumer` in `{url}` is true or false"))?;
                }
                _ => rest.push(pair),
            }
        }
        config.url = if rest.is_empty() { base.to_owned() } else { format!("{base}?{}", rest.join("&")) };
        Ok(config)
    }
}

struct AmqpConnector {
    name: String,
    bus: Arc<AmqpBus>,
}

#[async_trait]
impl Connector for AmqpConnector {
    fn kind(&self) -> &'static str {
        "amqp"
    }

    /// `to: { connector: rabbit, topic: deals }` as on every bus, or
    /// `to: { connector: rabbit, exchange: orders, routing_key: created }`.
    fn endpoint(&self, role: Role, options: &Node, cx: &BuildCx<'_>) -> Result<Arc<dyn Endpoint>, NodeError> {
        if options.get("exchange").is_none() {
            return Publish::from_options(self.bus.clone(), role, options, cx);
        }
        let spec: ExchangePublishSpec = options.parse()?;
        if role == Role::Request {
            return Err(NodeError {
                message: "RabbitMQ has no request/reply here; use `to` to publish".into(),
                pos: Some(options.pos),
            });
        }
        Ok(Arc::new(ExchangeEndpoint { bus: self.bus.clone(), exchange: spec.exchange, routing_key: spec.routing_key }))
    }

    fn consumer(&self, route: &str, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Consumer>, NodeError> {
        let spec: SourceSpec = options.parse()?;
        if spec.prefetch == Some(0) {
            return Err(NodeError {
                message: "`prefetch` is at least 1".into(),
                pos: options.get("prefetch").map(|n| n.pos),
            });
        }
        let source = match spec.queue {
            Some(queue) => {
                if spec.topic.is_some()
                    || !spec.topics.is_empty()
                    || spec.group.is_some()
                    || spec.single_active_consumer
                {
                    return Err(NodeError {
                        message: "read either a `queue` as it is, or `topics` as a `group`, not both".into(),
                        pos: options.get("queue").map(|n| n.pos),
                    });
                }
                Source::Queue(queue)
            }
            None => {
                let (topics, group) = TopicsSpec { topic: spec.topic, topics: spec.topics, group: spec.group }
                    .resolve(route, options.pos)?;
                Source::Topics { topics, group, single_active: spec.single_active_consumer }
            }
        };
        Ok(self.bus.consumer_with(source, spec.prefetch))
    }

    fn bus(&self) -> Option<Arc<dyn Bus>> {
        Some(self.bus.clone())
    }

    /// Declares the topology. RabbitMQ being down is not fatal: consumers connect with
    /// backoff and publishes fail (and are retried) until it is back.
    async fn start(&self, _cx: &StartCx) -> Result<(), ConnectorError> {
        if let Err(e) = self.bus.declare().await {
            tracing::warn!(connector = self.name, error = %e, "cannot declare the RabbitMQ topology yet; consumers retry");
        }
        Ok(())
    }

    async fn stop(&self) {
        self.bus.link.close().await;
    }
}

#[cfg(test)]
mod tests;
