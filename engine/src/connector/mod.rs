//! Connectors: named, configured instances of a kind (`http`, `bus`, `kafka`, …). Steps reach
//! the outside world only through them, so a route test can swap any of them for a recorder.
//!
//! A kind reads its options from `junction.yaml` ([`ConnectorKind::build`]); a connector reads
//! what each step asks of it ([`Connector::endpoint`]). Both are pure: no I/O until a message
//! is sent, so `junction check` can build everything without touching the network.

mod builtin;
mod registry;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::bus::EmbeddedBus;
use crate::config::node::{Node, NodeError};
use crate::message::Message;
use crate::script::ScriptEngine;
use crate::store::Store;

pub use registry::Registry;

/// What a step wants from an endpoint: a one-way send (`to`, `wire_tap`, dead letters) or a
/// call that continues with the reply (`request`, `enrich`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Send,
    Request,
}

/// Shared things a connector may need while it is built.
pub struct BuildCx<'a> {
    pub scripts: &'a Arc<ScriptEngine>,
    pub resources: &'a Resources,
    /// Fields masked wherever a message is written to the log.
    pub redact: &'a crate::redact::Redact,
}

/// The running engine's shared resources; empty while only checking a project.
#[derive(Clone, Default)]
pub struct Resources {
    pub store: Option<Store>,
    pub bus: Option<EmbeddedBus>,
    pub cache: Option<crate::cache::Cache>,
}

/// A connector kind: one per file in the connectors crate, registered in one list.
pub trait ConnectorKind: Send + Sync + 'static {
    /// The `kind:` string, the file name and the Cargo feature.
    fn name(&self) -> &'static str;

    /// Reads a connector's options (its mapping in `junction.yaml`, without `kind`).
    fn build(&self, name: &str, options: &Node, cx: &BuildCx<'_>) -> Result<Arc<dyn Connector>, NodeError>;
}

/// A configured connector instance.
pub trait Connector: Send + Sync {
    fn kind(&self) -> &'static str;

    /// Reads what a step asks of this connector (the step's mapping without `connector`).
    fn endpoint(&self, role: Role, options: &Node, cx: &BuildCx<'_>) -> Result<Arc<dyn Endpoint>, NodeError>;

    /// The HTTP API this connector can serve on the gateway, mounted where its `api:` says.
    fn http_api(&self) -> Option<Arc<dyn crate::gateway::HttpApi>> {
        None
    }
}

/// One configured use of a connector by one step.
#[async_trait]
pub trait Endpoint: Send + Sync {
    /// A one-way send; returns once the other side has taken the message.
    async fn send(&self, msg: &Message) -> Result<(), ConnectorError>;

    /// A call whose reply continues down the route.
    async fn request(&self, msg: &Message) -> Result<Message, ConnectorError>;

    /// A short description for `junction graph` and logs, e.g. `topic masterdeal.deal.upserted`.
    fn describe(&self) -> String;
}

/// Stands in for a connector whose options have errors, so the routes that use it are not
/// also told it does not exist; their steps report where they use it.
pub struct Broken {
    pub name: String,
}

impl Connector for Broken {
    fn kind(&self) -> &'static str {
        "broken"
    }

    fn endpoint(&self, _role: Role, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Endpoint>, NodeError> {
        Err(NodeError {
            message: format!("connector `{}` has errors in junction.yaml (listed there)", self.name),
            pos: Some(options.pos),
        })
    }
}

/// A failed connector call, and whether trying again may help.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ConnectorError {
    pub retryable: bool,
    /// The other side refused this message for what it says (not found, a forbidden change,
    /// a stale version): the caller is told so (422), it is not an outage.
    pub rejected: bool,
    pub message: String,
    /// The other side asked us to wait this long (HTTP `Retry-After`).
    pub retry_after: Option<Duration>,
}

impl ConnectorError {
    /// The call may succeed later: a timeout, a refused connection, a 5xx, a 429.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self { retryable: true, rejected: false, message: message.into(), retry_after: None }
    }

    /// The call will not succeed as it is: a 4xx, a payload the other side rejects.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self { retryable: false, rejected: false, message: message.into(), retry_after: None }
    }

    /// The other side refused the message itself (never retried; 422 to an HTTP caller).
    pub fn rejected(message: impl Into<String>) -> Self {
        Self { retryable: false, rejected: true, message: message.into(), retry_after: None }
    }

    #[must_use]
    pub fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }
}
