//! `kind: kafka`: a Kafka cluster (any broker that speaks the Kafka protocol) through
//! librdkafka. One connector offers every role Kafka has:
//!
//! - operations: `to: { connector: events, topic: deals, key: "body.deal_id" }` publishes with
//!   an idempotent producer (`acks=all`), the key from an expression (or the message's own) and
//!   the message's headers as record headers;
//! - a source: `from: { connector: events, topics: [a, b], group: g }` reads as a consumer group
//!   and commits an offset only once the route finished that message and every one before it
//!   on its partition ([`consume`]);
//! - the bus: `bus: events` (or `bus: kafka://host:9092`) carries async HTTP routes, dead
//!   letters and the outbox relay.
//!
//! Brokers need not create topics on their own: the connector creates each topic it is about to
//! read or write through the admin API, with the `partitions` and `replication` it is given.
//!
//! - `wire`: a [`Message`](junction_engine::Message) as a record and back.
//! - `produce`: the producer, the publishing endpoint and the bus.
//! - `consume`: the consumer (per-key lanes, bounded per partition, commit after the route).
//! - `topics`: creating topics before their first use.

mod consume;
mod produce;
mod topics;
mod wire;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use junction_engine::config::duration::{ByteSize, ConfigDuration};
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::{
    BuildCx, Bus, Connector, ConnectorError, Consumer, Endpoint, Kind, Publish, Role, StartCx, TopicsSpec,
};
use rdkafka::ClientConfig;
use serde::Deserialize;

use produce::{KafkaBus, Producer};

pub struct KafkaKind;

/// A Kafka connector's options in `junction.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port`, comma-separated: `127.0.0.1:9092`.
    brokers: String,
    /// The client id brokers log and quota by (default `junction`).
    #[serde(default)]
    client_id: Option<String>,
    /// TLS to the brokers: `tls: {}` for the system's roots, or `tls: { ca: ca.pem }`.
    #[serde(default)]
    tls: Option<TlsConfig>,
    /// SASL authentication: `{ mechanism: SCRAM-SHA-512, username: …, password: … }`.
    #[serde(default)]
    sasl: Option<SaslConfig>,
    /// Partitions of the topics this connector creates (default 1).
    #[serde(default = "one")]
    partitions: i32,
    /// Replicas of the topics this connector creates (default 1).
    #[serde(default = "one")]
    replication: i32,
    /// Whether to create missing topics through the admin API before their first use (default
    /// true); with false, a missing topic is an error the route retries.
    #[serde(default = "yes")]
    create_topics: bool,
    #[serde(default)]
    producer: ProducerConfig,
    #[serde(default)]
    consumer: ConsumerConfig,
    /// Other librdkafka properties, passed on as they are (`fetch.max.bytes: "52428800"`).
    #[serde(default)]
    options: BTreeMap<String, String>,
    /// Put before the name of every topic and consumer group the connector uses (`staging.`):
    /// several environments, or test runs, share one cluster and never read each other's
    /// messages, while the routes keep their topic names.
    #[serde(default)]
    topic_prefix: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsConfig {
    /// A PEM file of the CA certificates to trust instead of the system's.
    #[serde(default)]
    ca: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SaslConfig {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    mechanism: String,
    username: String,
    password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProducerConfig {
    /// How long a batch waits for more messages before it is sent (default 5ms).
    #[serde(default)]
    linger: Option<ConfigDuration>,
    /// The most a batch to one partition holds (librdkafka's `batch.size`, default 1MiB).
    #[serde(default)]
    batch_size: Option<ByteSize>,
    /// `none` (default), `gzip`, `snappy` or `lz4`.
    #[serde(default)]
    compression: Option<String>,
    /// How long a publish may take, retries included, before it fails (default 30s).
    #[serde(default)]
    timeout: Option<ConfigDuration>,
    /// Idempotent producer (default true): a retried send is written once per partition.
    #[serde(default = "yes")]
    idempotent: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self { linger: None, batch_size: None, compression: None, timeout: None, idempotent: true }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumerConfig {
    /// How often finished offsets are committed while messages flow (default 1s); they are
    /// also committed on a rebalance and on stop.
    #[serde(default)]
    commit_interval: Option<ConfigDuration>,
    /// How long the group waits for a silent member before it hands its partitions on
    /// (librdkafka's `session.timeout.ms`, default 10s).
    #[serde(default)]
    session_timeout: Option<ConfigDuration>,
}

fn one() -> i32 {
    1
}

fn yes() -> bool {
    true
}

/// `from: { connector: events, topics: [a, b], group: g, checkpoint_limit: 1024 }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceSpec {
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    group: Option<String>,
    /// How many messages of one partition may be read and not yet committed; at this many the
    /// partition is paused until the route catches up (default 1024).
    #[serde(default)]
    checkpoint_limit: Option<usize>,
}

const DEFAULT_CHECKPOINT_LIMIT: usize = 1024;

impl Kind for KafkaKind {
    const NAME: &'static str = "kafka";
    const SCHEMES: &'static [&'static str] = &["kafka"];
    type Config = KafkaConfig;

    fn build(
        &self,
        name: &str,
        config: KafkaConfig,
        options: &Node,
        _cx: &BuildCx<'_>,
    ) -> Result<Arc<dyn Connector>, NodeError> {
        let at = |key: &str| Some(options.get(key).map_or(options.pos, |n| n.pos));
        let error = |key: &str, message: String| NodeError { message, pos: at(key) };
        if config.brokers.split(',').all(|b| b.trim().is_empty()) {
            return Err(error("brokers", "name at least one broker, `host:port`".into()));
        }
        if !config.topic_prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
            let message =
                format!("`{}`: a topic name takes only ASCII letters, digits, `.`, `_` and `-`", config.topic_prefix);
            return Err(error("topic_prefix", message));
        }
        if config.partitions < 1 || config.replication < 1 {
            let key = if config.partitions < 1 { "partitions" } else { "replication" };
            return Err(error(key, format!("`{key}` is at least 1")));
        }
        let client = client_config(name, &config).map_err(|m| error("options", m))?;
        let (producer_config, consumer_config) =
            (producer_config(&client, &config), consumer_config(&client, &config.consumer));
        // librdkafka checks each property's name and value as it reads it: reading them here
        // (no client, no connection) reports a bad option at `check`, not at start.
        for c in [&producer_config, &consumer_config] {
            c.create_native_config().map_err(|e| error("options", format!("librdkafka refuses these options: {e}")))?;
        }
        let bus = KafkaBus {
            brokers: config.brokers.clone(),
            producer: OnceLock::new(),
            consumer_config,
            commit_interval: config.consumer.commit_interval.map_or(Duration::from_secs(1), |d| d.0),
            prefix: config.topic_prefix.clone(),
            topics: Arc::new(topics::Topics::new(client, config.create_topics, config.partitions, config.replication)),
        };
        Ok(Arc::new(KafkaConnector { name: name.to_owned(), producer_config, bus: Arc::new(bus) }))
    }

    /// `kafka://host:9092[,host:9092][?partitions=6&replication=3&topic_prefix=staging.]`
    fn config_from_url(&self, url: &str) -> Result<KafkaConfig, String> {
        let rest = url.strip_prefix("kafka://").ok_or_else(|| format!("`{url}` is not a kafka:// URL"))?;
        let (brokers, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut config = KafkaConfig {
            brokers: brokers.trim_end_matches('/').to_owned(),
            client_id: None,
            tls: None,
            sasl: None,
            partitions: 1,
            replication: 1,
            create_topics: true,
            producer: ProducerConfig::default(),
            consumer: ConsumerConfig::default(),
            options: BTreeMap::new(),
            topic_prefix: String::new(),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let number = || value.parse::<i32>().map_err(|_| format!("`{key}` in `{url}` is not a number"));
            match key {
                "partitions" => config.partitions = number()?,
                "replication" => config.replication = number()?,
                "topic_prefix" => value.clone_into(&mut config.topic_prefix),
                "session_timeout" => {
                    config.consumer.session_timeout =
                        Some(ConfigDuration::parse(value).map_err(|e| format!("`session_timeout` in `{url}`: {e}"))?);
                }
                _ => {
                    return Err(format!(
                        "`{key}` is not a kafka:// URL option (partitions, replication, session_timeout, topic_prefix)"
                    ));
                }
            }
        }
        Ok(config)
    }
}

/// What every client of the connector shares: brokers, identity, security, raw options.
fn client_config(name: &str, config: &KafkaConfig) -> Result<ClientConfig, String> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", config.brokers.replace(' ', ""));
    c.set("client.id", config.client_id.clone().unwrap_or_else(|| format!("junction-{name}")));
    let protocol = match (&config.tls, &config.sasl) {
        (None, None) => "plaintext",
        (Some(_), None) => "ssl",
        (None, Some(_)) => "sasl_plaintext",
        (Some(_), Some(_)) => "sasl_ssl",
    };
    c.set("security.protocol", protocol);
    if let Some(ca) = config.tls.as_ref().and_then(|t| t.ca.as_ref()) {
        c.set("ssl.ca.location", ca);
    }
    if let Some(sasl) = &config.sasl {
        let mechanism = sasl.mechanism.to_ascii_uppercase();
        if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&mechanism.as_str()) {
            return Err(format!("`{}` is not a SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)", sasl.mechanism));
        }
        c.set("sasl.mechanism", mechanism);
        c.set("sasl.username", &sasl.username);
        c.set("sasl.password", &sasl.password);
    }
    for (key, value) in &config.options {
        c.set(key, value);
    }
    Ok(c)
}

fn producer_config(client: &ClientConfig, config: &KafkaConfig) -> ClientConfig {
    let p = &config.producer;
    let mut c = client.clone();
    c.set("acks", "all");
    c.set("enable.idempotence", p.idempotent.to_string());
    c.set("linger.ms", millis(p.linger.map_or(Duration::from_millis(5), |d| d.0)));
    c.set("message.timeout.ms", millis(p.timeout.map_or(Duration::from_secs(30), |d| d.0)));
    if let Some(size) = p.batch_size {
        c.set("batch.size", size.0.to_string());
    }
    if let Some(codec) = &p.compression {
        c.set("compression.type", codec);
    }
    c
}

fn consumer_config(client: &ClientConfig, config: &ConsumerConfig) -> ClientConfig {
    let mut c = client.clone();
    c.set("enable.auto.commit", "false");
    c.set("enable.auto.offset.store", "false");
    c.set("auto.offset.reset", "earliest");
    c.set("session.timeout.ms", millis(config.session_timeout.map_or(Duration::from_secs(10), |d| d.0)));
    // Consumer lag per partition comes with the statistics (`junction_consumer_lag`).
    c.set("statistics.interval.ms", "5000");
    c
}

fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

struct KafkaConnector {
    name: String,
    producer_config: ClientConfig,
    /// What the routes' endpoints and consumers publish and read through, and the bus.
    bus: Arc<KafkaBus>,
}

#[async_trait]
impl Connector for KafkaConnector {
    fn kind(&self) -> &'static str {
        "kafka"
    }

    /// `to: { connector: events, topic: deals, key: "body.deal_id" }`, as on every bus.
    fn endpoint(&self, role: Role, options: &Node, cx: &BuildCx<'_>) -> Result<Arc<dyn Endpoint>, NodeError> {
        Publish::from_options(self.bus.clone(), role, options, cx)
    }

    fn consumer(&self, route: &str, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Consumer>, NodeError> {
        let spec: SourceSpec = options.parse()?;
        let limit = spec.checkpoint_limit.unwrap_or(DEFAULT_CHECKPOINT_LIMIT);
        if limit == 0 {
            return Err(NodeError {
                message: "checkpoint_limit is at least 1".into(),
                pos: options.get("checkpoint_limit").map(|n| n.pos),
            });
        }
        let (topics, group) =
            TopicsSpec { topic: spec.topic, topics: spec.topics, group: spec.group }.resolve(route, options.pos)?;
        Ok(self.bus.consumer_with(topics, group, limit))
    }

    fn bus(&self) -> Option<Arc<dyn Bus>> {
        Some(self.bus.clone())
    }

    async fn start(&self, _cx: &StartCx) -> Result<(), ConnectorError> {
        if self.bus.producer.get().is_none() {
            let producer = Producer::new(&self.producer_config, self.bus.topics.clone()).map_err(|e| {
                ConnectorError::permanent(format!("connector `{}`: cannot create the Kafka producer: {e}", self.name))
            })?;
            let _ = self.bus.producer.set(producer);
        }
        Ok(())
    }

    /// Waits for what the producer still holds to reach the brokers.
    async fn stop(&self) {
        if let Some(producer) = self.bus.producer.get() {
            producer.flush(Duration::from_secs(10)).await;
        }
    }
}

#[cfg(test)]
mod tests;
