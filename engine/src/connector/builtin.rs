//! The connector every project has without declaring it: `log` (writes messages to the log).

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::{BuildCx, Connector, ConnectorError, Endpoint, Kind, Role};
use crate::config::node::{Node, NodeError};
use crate::message::Message;

/// Writes each message it is sent to the log, at info level.
pub(crate) struct LogKind;

/// `log` takes no options.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoOptions {}

impl Kind for LogKind {
    const NAME: &'static str = "log";
    type Config = NoOptions;

    fn build(&self, name: &str, _: NoOptions, _: &Node, cx: &BuildCx<'_>) -> Result<Arc<dyn Connector>, NodeError> {
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
