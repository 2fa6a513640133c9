//! The event bus routes publish to and consume from. `bus:` in junction.yaml picks the
//! backend (the embedded one, Kafka, RabbitMQ); routes that say `bus` never change with it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{ConnectorError, Consumer};
use crate::config::node::{Node, NodeError};
use crate::message::Message;
use crate::script::{Script, ScriptEngine};

/// One bus backend.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Appends `message` to `topic`; returns once the backend holds it durably (stored,
    /// acknowledged by the brokers, confirmed).
    async fn publish(&self, topic: &str, message: &Message) -> Result<(), PublishError>;

    /// Reads `topics` as consumer group `group`: each message once per group, at least once,
    /// acknowledged only after the route finished it.
    fn consumer(&self, topics: Vec<String>, group: String) -> Arc<dyn Consumer>;

    /// The backend, for logs and the admin API: `embedded`, `kafka 127.0.0.1:9092`.
    fn describe(&self) -> String;
}

/// A publish as a value, for code that keeps or passes on its future.
pub type BoxedPublish = std::pin::Pin<Box<dyn Future<Output = Result<(), PublishError>> + Send>>;

/// Why a publish was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Back-pressure: the topic holds as much as the backend may keep unprocessed; its
    /// consumers have to catch up first.
    #[error(
        "topic `{topic}` holds {backlog} messages its consumers have not processed, as many as \
         {setting} ({limit}) allows: try again once they catch up"
    )]
    Full { topic: String, backlog: u64, limit: u64, setting: &'static str },

    /// The backend could not take the message now (store or broker unreachable, not started).
    #[error("the bus cannot take the message now: {0}")]
    Unavailable(String),

    /// Never accepted as it is (an empty or invalid topic name, a message too large).
    #[error("the bus refuses the message: {0}")]
    Invalid(String),
}

impl From<PublishError> for ConnectorError {
    fn from(e: PublishError) -> Self {
        match e {
            // A full topic frees up as its consumers catch up: the retries wait a moment.
            PublishError::Full { .. } => {
                ConnectorError::retryable(e.to_string()).with_retry_after(Some(Duration::from_secs(1)))
            }
            PublishError::Unavailable(_) => ConnectorError::unavailable(e.to_string()),
            PublishError::Invalid(_) => ConnectorError::permanent(e.to_string()),
        }
    }
}

/// `to: { connector: bus, topic: …, key: … }` on any backend: publishes each message to one
/// topic, under the key the expression gives (or the message's own `meta.key`).
pub struct Publish {
    bus: Arc<dyn Bus>,
    topic: String,
    key: Option<Script>,
    scripts: Arc<ScriptEngine>,
}

/// What `to: { connector: bus, … }` says.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishSpec {
    /// The topic to publish to.
    topic: String,
    /// An expression for the message's key (a partitioned bus keeps one key's messages in
    /// order); without one, the message keeps the key it came with, if any.
    #[serde(default)]
    key: Option<String>,
}

impl Publish {
    /// Reads a step's options (`topic`, `key`) into an endpoint that publishes on `bus`.
    pub fn from_options(
        bus: Arc<dyn Bus>,
        role: super::Role,
        options: &Node,
        cx: &super::BuildCx<'_>,
    ) -> Result<Arc<dyn super::Endpoint>, NodeError> {
        let spec: PublishSpec = options.parse()?;
        if role == super::Role::Request {
            return Err(NodeError {
                message: "the bus has no request/reply; use `to` to publish".into(),
                pos: Some(options.pos),
            });
        }
        let key = match &spec.key {
            Some(text) => Some(cx.scripts.compile_expression("key", text).map_err(|e| NodeError {
                message: format!("Rhai: {}", e.message),
                pos: options.get("key").map(|n| n.pos),
            })?),
            None => None,
        };
        Ok(Arc::new(Publish { bus, topic: spec.topic, key, scripts: cx.scripts.clone() }))
    }

    fn keyed<'m>(&self, msg: &'m Message) -> Result<std::borrow::Cow<'m, Message>, ConnectorError> {
        let Some(script) = &self.key else { return Ok(std::borrow::Cow::Borrowed(msg)) };
        let key = match self.scripts.eval_message(script, msg).map_err(|e| ConnectorError::permanent(e.to_string()))? {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s),
            other => Some(other.to_string()),
        };
        let mut keyed = msg.clone();
        keyed.meta.key = key;
        Ok(std::borrow::Cow::Owned(keyed))
    }
}

#[async_trait]
impl super::Endpoint for Publish {
    async fn send(&self, msg: &Message) -> Result<(), ConnectorError> {
        let msg = self.keyed(msg)?;
        Ok(self.bus.publish(&self.topic, &msg).await?)
    }

    async fn request(&self, _msg: &Message) -> Result<Message, ConnectorError> {
        Err(ConnectorError::permanent("the bus has no request/reply; use `to` to publish"))
    }

    fn describe(&self) -> String {
        format!("topic {}", self.topic)
    }
}

/// What a route reads from a bus: `from: { bus: { topic: a } }`, or
/// `from: { connector: events, topics: [a, b], group: g }`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsSpec {
    /// One topic to read.
    #[serde(default)]
    pub topic: Option<String>,
    /// Several topics to read, as one consumer group.
    #[serde(default)]
    pub topics: Vec<String>,
    /// The consumer group; defaults to the route id, so each route gets every message.
    #[serde(default)]
    pub group: Option<String>,
}

impl TopicsSpec {
    /// The topics and the group, checked: at least one topic, none empty.
    pub fn resolve(self, route: &str, at: crate::config::node::Pos) -> Result<(Vec<String>, String), NodeError> {
        let mut topics = self.topics;
        topics.extend(self.topic);
        let error = |message: &str| NodeError { message: message.into(), pos: Some(at) };
        if topics.is_empty() {
            return Err(error("name the topic to read: `topic: a` or `topics: [a, b]`"));
        }
        if topics.iter().any(String::is_empty) || self.group.as_ref().is_some_and(String::is_empty) {
            return Err(error("topic and group names cannot be empty"));
        }
        topics.dedup();
        Ok((topics, self.group.unwrap_or_else(|| route.to_owned())))
    }
}
