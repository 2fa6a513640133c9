//! Every endpoint a step uses, counted and timed under its connector's name by the engine:
//! `junction_connector_calls_total{connector, outcome}` and
//! `junction_connector_call_duration_seconds{connector}`, whatever the kind. A kind adds
//! what only it knows (an HTTP call's span with its method and status), never these.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::{ConnectorError, Endpoint};
use crate::message::Message;
use crate::telemetry::ConnectorMetrics;

pub(crate) struct Measured {
    inner: Arc<dyn Endpoint>,
    /// Shared by every endpoint of the connector, whichever route uses it.
    metrics: ConnectorMetrics,
}

impl Measured {
    pub(crate) fn wrap(connector: &str, inner: Arc<dyn Endpoint>) -> Arc<dyn Endpoint> {
        Arc::new(Self { inner, metrics: ConnectorMetrics::new(connector) })
    }
}

#[async_trait]
impl Endpoint for Measured {
    async fn send(&self, msg: &Message) -> Result<(), ConnectorError> {
        let started = Instant::now();
        let result = self.inner.send(msg).await;
        self.metrics.record(result.is_ok(), started.elapsed());
        result
    }

    async fn request(&self, msg: &Message) -> Result<Message, ConnectorError> {
        let started = Instant::now();
        let result = self.inner.request(msg).await;
        self.metrics.record(result.is_ok(), started.elapsed());
        result
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}
