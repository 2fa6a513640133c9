//! `bus: embedded` (the default): the embedded bus as the project's `bus` connector. Built
//! without the store, so `junction check` needs none; started with it. Routes publish with
//! `to: { connector: bus, topic: … }` and read with `from: { bus: { topic: … } }`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;

use super::consumer::EmbeddedConsumer;
use super::{BusError, EmbeddedBus};
use crate::config::node::{Node, NodeError};
use crate::connector::{
    BuildCx, Bus, Connector, ConnectorError, Consumer, Endpoint, Publish, PublishError, Role, StartCx, Task, TopicsSpec,
};
use crate::message::Message;

/// The embedded bus, once started.
type Started = Arc<OnceLock<EmbeddedBus>>;

/// The `bus` connector of a project whose `bus:` is `embedded`.
pub struct Embedded {
    started: Started,
    retention: Duration,
    max_backlog: u64,
}

impl Embedded {
    /// `retention` and `max_backlog` come from junction.yaml's `bus_retention` and `bus_max_backlog`.
    pub fn new(retention: Duration, max_backlog: u64) -> Self {
        Self { started: Arc::default(), retention, max_backlog }
    }

    fn handle(&self) -> Arc<dyn Bus> {
        Arc::new(Handle(self.started.clone()))
    }
}

#[async_trait]
impl Connector for Embedded {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn endpoint(&self, role: Role, options: &Node, cx: &BuildCx<'_>) -> Result<Arc<dyn Endpoint>, NodeError> {
        Publish::from_options(self.handle(), role, options, cx)
    }

    fn consumer(&self, route: &str, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Consumer>, NodeError> {
        let (topics, group) = options.parse::<TopicsSpec>()?.resolve(route, options.pos)?;
        Ok(self.handle().consumer(topics, group))
    }

    fn bus(&self) -> Option<Arc<dyn Bus>> {
        Some(self.handle())
    }

    async fn start(&self, cx: &StartCx) -> Result<(), ConnectorError> {
        // A connector is started once; should it be asked again, the first bus stays.
        let _ = self.started.set(EmbeddedBus::new(cx.store.clone()).with_max_backlog(self.max_backlog));
        Ok(())
    }

    fn tasks(&self) -> Vec<Task> {
        let (started, retention) = (self.started.clone(), self.retention);
        vec![Task {
            name: "bus.retention".into(),
            // Purging twice removes nothing twice: every instance may run it.
            once: false,
            run: Arc::new(move |stop| {
                let bus = started.get().cloned();
                Box::pin(async move {
                    if let Some(bus) = bus {
                        apply_retention(bus, retention, stop).await;
                    }
                })
            }),
        }]
    }
}

/// Applies the bus's retention now and then (a tenth of it, at most hourly) until the stop.
async fn apply_retention(bus: EmbeddedBus, retention: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut every = tokio::time::interval((retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600)));
    loop {
        tokio::select! {
            _ = every.tick() => match bus.purge(retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "processed bus messages past their retention removed"),
                Err(e) => tracing::warn!(error = %e, "bus retention could not run"),
            },
            () = crate::connector::stopped(&mut stop) => return,
        }
    }
}

/// The bus as other parts of the engine use it: the gateway's async routes, dead letters,
/// outbox relays.
struct Handle(Started);

#[async_trait]
impl Bus for Handle {
    async fn publish(&self, topic: &str, message: &Message) -> Result<(), PublishError> {
        let bus = self.0.get().ok_or_else(|| PublishError::Unavailable("the embedded bus is not started".into()))?;
        bus.publish(topic, message).await.map(|_| ()).map_err(|e| match e {
            BusError::Full { topic, backlog, limit } => {
                PublishError::Full { topic, backlog, limit, setting: "bus_max_backlog" }
            }
            BusError::Store(e) => PublishError::Unavailable(e.to_string()),
            e @ (BusError::EmptyName { .. } | BusError::NoInFlight) => PublishError::Invalid(e.to_string()),
        })
    }

    fn consumer(&self, topics: Vec<String>, group: String) -> Arc<dyn Consumer> {
        Arc::new(EmbeddedConsumer { bus: self.0.clone(), topics, group })
    }

    fn describe(&self) -> String {
        "embedded".into()
    }
}
