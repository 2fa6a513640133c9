//! Connectors: named, configured instances of a kind (`http`, `kafka`, `masterdeal`, …).
//! Steps and sources reach the outside world only through them, so a route test can swap
//! any of them for a recorder.
//!
//! A kind declares a typed `Config` ([`Kind`]) that the engine reads with positions; the
//! connector it builds offers any of these roles, each optional:
//!
//! - operations ([`Connector::endpoint`]): what `to:`, `request:`, `enrich:` and dead letters call;
//! - a consumer ([`Connector::consumer`]): what `from: { connector: X, … }` reads;
//! - the event bus ([`Connector::bus`]): when `bus:` names it;
//! - an HTTP API ([`Connector::http_api`]) the gateway mounts where `api:` says;
//! - background tasks ([`Connector::tasks`]): an outbox relay, a poller.
//!
//! Building is pure (no I/O), so `junction check` builds everything without touching the
//! network. The runtime [`start`](Connector::start)s a connector after the project validated,
//! runs its tasks, and [`stop`](Connector::stop)s it on shutdown and when a reload replaces it.
//!
//! - `error`: [`ConnectorError`], the kinds of failure retries and answers match on.
//! - `bus`: the [`Bus`] trait every bus backend implements.
//! - `consumer`: [`Consumer`], and the [`Inbox`] the engine hands each route's consumer.
//! - `api`: [`HttpApi`], served on the gateway.
//! - `measured`: every endpoint counted and timed by the engine, whatever its kind.
//! - `builtin`: `log`.

mod api;
mod builtin;
mod bus;
mod consumer;
mod error;
mod guard;
mod kind;
mod measured;
mod registry;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::config::node::{Node, NodeError};
use crate::message::Message;
use crate::script::ScriptEngine;
use crate::store::Store;

pub use api::{ApiResponse, HttpApi};
pub use bus::{BoxedPublish, Bus, Publish, PublishError, TopicsSpec};
pub use consumer::{Admission, Consumer, Delivery, Inbox};
pub use error::ConnectorError;
pub(crate) use guard::OPTIONS as GUARD_OPTIONS;
pub use guard::{Guard, Guards, Outcome, Permit};
pub use kind::{ConnectorKind, Kind};
pub(crate) use measured::Measured;
pub use registry::Registry;

/// What a step wants from an endpoint: a one-way send (`to`, `wire_tap`, dead letters) or a
/// call that continues with the reply (`request`, `enrich`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Send,
    Request,
}

/// Shared things a connector may need while it is built.
#[derive(Clone, Copy)]
pub struct BuildCx<'a> {
    pub scripts: &'a Arc<ScriptEngine>,
    pub resources: &'a Resources,
    /// Fields masked wherever a message is written to the log.
    pub redact: &'a crate::redact::Redact,
    /// The project's folder: files a kind reads belong to the project (prompt packages,
    /// certificates), not to wherever Junction was started.
    pub dir: &'a std::path::Path,
    /// Resolves `{ connector: NAME, … }` inside a connector's own step options to that
    /// connector's endpoint, as a step would (a hook: the `llm` kind's `validate`); `None` where
    /// no routes are compiled.
    pub endpoints: Option<&'a dyn Endpoints>,
}

/// See [`BuildCx::endpoints`].
pub trait Endpoints {
    fn endpoint(&self, role: Role, node: &Node) -> Result<Arc<dyn Endpoint>, NodeError>;
}

/// The running engine's store and cache, when a connector's API needs them while it is
/// built; empty while only checking a project.
#[derive(Clone, Default)]
pub struct Resources {
    pub store: Option<Store>,
    pub cache: Option<crate::cache::Cache>,
    /// The connectors' limits and breakers, kept across reloads.
    pub guards: Arc<Guards>,
    /// Where each call to an outside system is recorded (`junction run` only).
    pub audit: Option<crate::gateway::AuditSink>,
    /// Where routes record what their steps did, when they do (`junction run` only).
    pub provenance: Option<Arc<crate::provenance::Provenance>>,
}

/// What a connector is started with: the engine's own store, cache and bus.
#[derive(Clone)]
pub struct StartCx {
    pub store: Store,
    pub cache: crate::cache::Cache,
    /// The project's bus (the bus connector itself is started with its own handle, which it
    /// does not use before it is started).
    pub bus: Arc<dyn Bus>,
}

/// A future a background task runs until its stop signal.
pub type TaskFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Work a connector runs by itself while it lives: an outbox relay, a poller.
#[derive(Clone)]
pub struct Task {
    /// Unique in the project, e.g. `masterdeal.outbox`: names its lease, logs and metrics.
    pub name: String,
    /// Runs in one instance at a time, under a lease in the store, and moves to another
    /// instance when its holder dies. Otherwise every instance runs it.
    pub once: bool,
    /// Runs until the receiver turns true (or its sender is gone); may be run again later,
    /// when a lease comes back.
    pub run: Arc<dyn Fn(watch::Receiver<bool>) -> TaskFuture + Send + Sync>,
}

/// A configured connector instance.
#[async_trait]
pub trait Connector: Send + Sync {
    fn kind(&self) -> &'static str;

    /// Reads what a step asks of this connector (the step's mapping without `connector`).
    fn endpoint(&self, role: Role, options: &Node, cx: &BuildCx<'_>) -> Result<Arc<dyn Endpoint>, NodeError> {
        let _ = (role, cx);
        Err(refused(self.kind(), "operations (`to`, `request`)", options))
    }

    /// Reads what a route's `from: { connector: …, … }` asks (its mapping without `connector`).
    /// `route` is the route's id (a consumer group defaults to it).
    fn consumer(&self, route: &str, options: &Node, cx: &BuildCx<'_>) -> Result<Arc<dyn Consumer>, NodeError> {
        let _ = (route, cx);
        Err(refused(self.kind(), "source (`from`)", options))
    }

    /// The event bus this connector is, when `bus:` names it. Usable once started.
    fn bus(&self) -> Option<Arc<dyn Bus>> {
        None
    }

    /// The HTTP API this connector can serve on the gateway, mounted where its `api:` says.
    fn http_api(&self) -> Option<Arc<dyn HttpApi>> {
        None
    }

    /// Opens what the connector needs (clients, pools); called once, after the project
    /// validated and before any route uses it.
    async fn start(&self, cx: &StartCx) -> Result<(), ConnectorError> {
        let _ = cx;
        Ok(())
    }

    /// The background tasks to run while the connector lives.
    fn tasks(&self) -> Vec<Task> {
        Vec::new()
    }

    /// Closes what `start` opened, once no route uses the connector any more: flushes what
    /// it buffered, so nothing it accepted is lost.
    async fn stop(&self) {}

    /// In a route test: this connector run for real, its calls to the outside answered from
    /// recordings in `replay.dir` (or, recording, made for real and kept there), instead of a
    /// recorder with canned replies. `None` (most kinds): the recorder stands in.
    fn replaying(&self, replay: &Replay) -> Option<Arc<dyn Connector>> {
        let _ = replay;
        None
    }
}

/// Where a route test's recordings are, whether they are being made (`junction test
/// --record`), and the store the test file runs on.
#[derive(Clone)]
pub struct Replay {
    pub dir: std::path::PathBuf,
    pub record: bool,
    /// A throw-away SQLite store of the test file's own, so that what a connector keeps in the
    /// store (the `llm` kind's budgets) works as in production, shared by the file's cases.
    pub store: Store,
}

/// Resolves once `stop` turns true (or its sender is gone): how a task learns it should end.
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps `wait` unless `stop` turns true first (or already is): whether the whole wait
/// passed. How a task waits between tries without holding up a stop.
pub async fn slept(wait: std::time::Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => true,
        () = stopped(stop) => false,
    }
}

fn refused(kind: &str, role: &str, options: &Node) -> NodeError {
    NodeError { message: format!("a `{kind}` connector offers no {role}"), pos: Some(options.pos) }
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

impl Broken {
    fn error(&self, options: &Node) -> NodeError {
        NodeError {
            message: format!("connector `{}` has errors in junction.yaml (listed there)", self.name),
            pos: Some(options.pos),
        }
    }
}

impl Connector for Broken {
    fn kind(&self) -> &'static str {
        "broken"
    }

    fn endpoint(&self, _role: Role, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Endpoint>, NodeError> {
        Err(self.error(options))
    }

    fn consumer(&self, _route: &str, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Consumer>, NodeError> {
        Err(self.error(options))
    }
}
