//! Every endpoint a step uses, counted, timed and traced under its connector's name by the
//! engine: `junction_connector_calls_total{connector, outcome}`,
//! `junction_connector_call_duration_seconds{connector}`, and, when spans are exported, a
//! CLIENT span per call (`send <connector>` / `request <connector>`, under the step making
//! it), whatever the kind. A kind adds what only it knows to that span
//! ([`crate::telemetry::otlp::call`]: an HTTP call's method, URL and status), never these.
//! Calls also pass the connector's [`Guard`] (its `limits` and `breaker`) when it has one, and
//! each is audited (`connector.request` / `connector.send` by `route:<id>`, its connector and
//! operation, how it ended), but those to the bus and the log.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::guard::{Outcome, Permit};
use super::{ConnectorError, Endpoint, Guard};
use crate::gateway::AuditSink;
use crate::message::Message;
use crate::store::AuditEntry;
use crate::telemetry::ConnectorMetrics;
use crate::telemetry::otlp::{self, Kind, Span};

pub(crate) struct Measured {
    inner: Arc<dyn Endpoint>,
    /// The connector's limits and breaker, when its options have them.
    guard: Option<Arc<Guard>>,
    connector: String,
    /// Shared by every endpoint of the connector, whichever route uses it.
    metrics: ConnectorMetrics,
    /// Where its calls are audited, and as what (`<connector>: <operation>`); `None` for the
    /// bus and the log, and outside `junction run`.
    audit: Option<(AuditSink, String)>,
}

/// How much of a failed call's message the audit keeps.
const AUDIT_DETAIL_CHARS: usize = 300;

impl Measured {
    pub(crate) fn wrap(
        connector: &str,
        guard: Option<Arc<Guard>>,
        inner: Arc<dyn Endpoint>,
        audit: Option<AuditSink>,
    ) -> Arc<dyn Endpoint> {
        let audit = audit.map(|sink| (sink, format!("{connector}: {}", inner.describe())));
        Arc::new(Self {
            inner,
            guard,
            connector: connector.to_owned(),
            metrics: ConnectorMetrics::new(connector),
            audit,
        })
    }

    /// The sink a connector's calls are audited in: every connector's but the bus's (its
    /// messages are the routes' own traffic) and the log's.
    pub(crate) fn audit_of(name: &str, kind: &str, sink: Option<&AuditSink>) -> Option<AuditSink> {
        (name != "bus" && kind != "log").then(|| sink.cloned()).flatten()
    }

    /// Records the call: who (the route), what (the connector's operation), how it ended.
    async fn audit<T>(&self, op: &str, msg: &Message, result: &Result<T, ConnectorError>) {
        let Some((sink, target)) = &self.audit else { return };
        let (outcome, detail) = match result {
            Ok(_) => ("ok", None),
            Err(ConnectorError::Rejected { message }) => ("refused", Some(message.as_str())),
            Err(e) => ("failed", Some(e.message())),
        };
        sink.record(AuditEntry {
            actor: format!("route:{}", msg.meta.route),
            actor_kind: "route".to_owned(),
            action: format!("connector.{op}"),
            target: Some(target.clone()),
            outcome: outcome.to_owned(),
            status: None,
            request_id: Some(msg.id.clone()),
            detail: detail.map(|d| d.chars().take(AUDIT_DETAIL_CHARS).collect()),
        })
        .await;
    }

    /// Waits until the guard lets the call go (a token, a slot, a breaker not open).
    async fn enter(&self) -> Result<Option<Permit>, ConnectorError> {
        match &self.guard {
            Some(guard) => guard.enter().await.map(Some),
            None => Ok(None),
        }
    }

    async fn leave<T>(&self, permit: Option<Permit>, result: &Result<T, ConnectorError>) {
        if let (Some(guard), Some(permit)) = (&self.guard, permit) {
            guard.leave(permit, Outcome::of(result)).await;
        }
    }

    /// The call's span when spans are exported and the message is in a trace, and the
    /// message as the kind sees it then: naming that span as its parent.
    fn traced(&self, op: &str, msg: &Message) -> Option<(Span, Message)> {
        let span = self.span(op, msg)?;
        let mut traced = msg.clone();
        traced.meta.parent_span_id = Some(span.id().to_owned());
        Some((span, traced))
    }

    /// The call's span when spans are exported and the message is in a trace.
    fn span(&self, op: &str, msg: &Message) -> Option<Span> {
        let trace = msg.meta.trace_id.as_deref()?;
        let mut span = Span::start(
            trace,
            msg.meta.parent_span_id.as_deref(),
            Kind::Client,
            format_args!("{op} {}", self.connector),
        )?;
        span.set("junction.connector", self.connector.as_str());
        Some(span)
    }
}

/// Runs a traced call as the call of `span`, and ends the span with what the kind added.
async fn in_span<T>(
    mut span: Span,
    call: impl Future<Output = Result<T, ConnectorError>>,
) -> Result<T, ConnectorError> {
    let (result, added) = otlp::call::within(span.id().to_owned(), call).await;
    if let Some(name) = added.name {
        span.rename(name);
    }
    for (key, value) in added.attributes {
        span.set(key, value);
    }
    span.end(result.as_ref().err().map(ConnectorError::message));
    result
}

#[async_trait]
impl Endpoint for Measured {
    async fn send(&self, msg: &Message) -> Result<(), ConnectorError> {
        let permit = self.enter().await?;
        let started = Instant::now();
        let result = match self.traced("send", msg) {
            None => self.inner.send(msg).await,
            Some((span, traced)) => in_span(span, self.inner.send(&traced)).await,
        };
        self.metrics.record(result.is_ok(), started.elapsed());
        self.leave(permit, &result).await;
        self.audit("send", msg, &result).await;
        result
    }

    async fn request(&self, msg: &Message) -> Result<Message, ConnectorError> {
        let permit = self.enter().await?;
        let started = Instant::now();
        let result = match self.traced("request", msg) {
            None => self.inner.request(msg).await,
            Some((span, traced)) => in_span(span, self.inner.request(&traced)).await,
        };
        self.metrics.record(result.is_ok(), started.elapsed());
        self.leave(permit, &result).await;
        self.audit("request", msg, &result).await;
        result
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}
