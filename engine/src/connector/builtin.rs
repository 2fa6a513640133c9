//! The connectors every project has without declaring them: `bus` (the configured event
//! bus) and `log` (writes messages to the log).

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::{BuildCx, Connector, ConnectorError, ConnectorKind, Endpoint, Role};
use crate::bus::EmbeddedBus;
use crate::config::node::{Node, NodeError};
use crate::message::Message;

/// The embedded bus; Kafka and RabbitMQ take the same name when `bus:` points at them.
pub(crate) struct BusKind;

impl ConnectorKind for BusKind {
    fn name(&self) -> &'static str {
        "bus"
    }

    fn build(&self, _name: &str, options: &Node, cx: &BuildCx<'_>) -> Result<Arc<dyn Connector>, NodeError> {
        let _: NoOptions = options.parse()?;
        Ok(Arc::new(BusConnector { bus: cx.resources.bus.clone() }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoOptions {}

struct BusConnector {
    bus: Option<EmbeddedBus>,
}

/// `to: { connector: bus, topic: … }`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BusEndpointSpec {
    /// The topic to publish to.
    topic: String,
}

impl Connector for BusConnector {
    fn kind(&self) -> &'static str {
        "bus"
    }

    fn endpoint(&self, role: Role, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Endpoint>, NodeError> {
        let spec: BusEndpointSpec = options.parse()?;
        if role == Role::Request {
            return Err(NodeError {
                message: "the bus has no request/reply; use `to` to publish".into(),
                pos: Some(options.pos),
            });
        }
        Ok(Arc::new(BusEndpoint { bus: self.bus.clone(), topic: spec.topic }))
    }
}

struct BusEndpoint {
    bus: Option<EmbeddedBus>,
    topic: String,
}

#[async_trait]
impl Endpoint for BusEndpoint {
    async fn send(&self, msg: &Message) -> Result<(), ConnectorError> {
        let bus = self.bus.as_ref().ok_or_else(|| ConnectorError::fatal("the bus is not running"))?;
        bus.publish(&self.topic, msg).await.map(|_| ()).map_err(|e| {
            // A full topic frees up as its consumers catch up: the retries wait a moment.
            let pause = matches!(e, crate::bus::BusError::Full { .. }).then_some(std::time::Duration::from_secs(1));
            ConnectorError::retryable(e.to_string()).with_retry_after(pause)
        })
    }

    async fn request(&self, _msg: &Message) -> Result<Message, ConnectorError> {
        Err(ConnectorError::fatal("the bus has no request/reply"))
    }

    fn describe(&self) -> String {
        format!("topic {}", self.topic)
    }
}

/// Writes each message it is sent to the log, at info level.
pub(crate) struct LogKind;

impl ConnectorKind for LogKind {
    fn name(&self) -> &'static str {
        "log"
    }

    fn build(&self, name: &str, options: &Node, cx: &BuildCx<'_>) -> Result<Arc<dyn Connector>, NodeError> {
        let _: NoOptions = options.parse()?;
        Ok(Arc::new(LogConnector { name: name.to_owned(), redact: cx.redact.clone() }))
    }
}

struct LogConnector {
    name: String,
    redact: crate::redact::Redact,
}

impl Connector for LogConnector {
    fn kind(&self) -> &'static str {
        "log"
    }

    fn endpoint(&self, _role: Role, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Endpoint>, NodeError> {
        let _: NoOptions = options.parse()?;
        Ok(Arc::new(LogEndpoint { name: self.name.clone(), redact: self.redact.clone() }))
    }
}

struct LogEndpoint {
    name: String,
    redact: crate::redact::Redact,
}

#[async_trait]
impl Endpoint for LogEndpoint {
    async fn send(&self, msg: &Message) -> Result<(), ConnectorError> {
        let body = msg.body.to_json();
        tracing::info!(connector = %self.name, message_id = %msg.id, body = %self.redact.value(&body), "message");
        Ok(())
    }

    async fn request(&self, msg: &Message) -> Result<Message, ConnectorError> {
        self.send(msg).await?;
        Ok(msg.clone())
    }

    fn describe(&self) -> String {
        "log".into()
    }
}
