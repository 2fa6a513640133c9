//! A route's consumer of the embedded bus: one subscription per topic, all in one group.
//! Each message is acked once the route delivered it; acks commit in offset order.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::EmbeddedBus;
use crate::connector::{Consumer, Inbox};

pub(super) struct EmbeddedConsumer {
    pub(super) bus: Arc<OnceLock<EmbeddedBus>>,
    pub(super) topics: Vec<String>,
    pub(super) group: String,
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    async fn run(&self, inbox: Arc<dyn Inbox>, stop: watch::Receiver<bool>) {
        let Some(bus) = self.bus.get() else {
            tracing::error!(route = inbox.route(), "the embedded bus is not started; nothing is consumed");
            return;
        };
        let mut topics = JoinSet::new();
        for topic in &self.topics {
            let (bus, topic, group) = (bus.clone(), topic.clone(), self.group.clone());
            topics.spawn(consume(bus, topic, group, inbox.clone(), stop.clone()));
        }
        topics.spawn(report_lag(bus.clone(), self.groups(), inbox.route().to_owned(), stop));
        while topics.join_next().await.is_some() {}
    }

    fn describe(&self) -> String {
        format!("bus {} as group {}", self.topics.join(", "), self.group)
    }

    /// Every subscription of a group reads the whole topic: one instance reads it at a time.
    fn exclusive(&self) -> bool {
        true
    }

    fn groups(&self) -> Vec<(String, String)> {
        self.topics.iter().map(|t| (t.clone(), self.group.clone())).collect()
    }
}

/// How often a consumer's lag is measured (a count in the store).
const LAG_EVERY: Duration = Duration::from_secs(5);

/// Sets `junction_consumer_lag` for each of the group's topics (the embedded bus has one
/// partition per topic, `0`) until `stop`.
async fn report_lag(bus: EmbeddedBus, groups: Vec<(String, String)>, route: String, mut stop: watch::Receiver<bool>) {
    let gauges: Vec<_> = groups.iter().map(|(topic, _)| crate::telemetry::consumer_lag(&route, topic, "0")).collect();
    let mut every = tokio::time::interval(LAG_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = crate::connector::stopped(&mut stop) => return,
        }
        let Ok(all) = bus.groups().await else { continue };
        for ((topic, group), gauge) in groups.iter().zip(&gauges) {
            if let Some(state) = all.iter().find(|g| &g.topic == topic && &g.group == group) {
                gauge.set(state.backlog as f64);
            }
        }
    }
}

async fn consume(
    bus: EmbeddedBus,
    topic: String,
    group: String,
    inbox: Arc<dyn Inbox>,
    mut stop: watch::Receiver<bool>,
) {
    let route = inbox.route().to_owned();
    let mut subscription = loop {
        match bus.subscribe(&group, &topic, inbox.max_in_flight()).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::error!(route, topic, error = %e, "cannot subscribe; retrying");
                if !crate::connector::slept(Duration::from_secs(1), &mut stop).await {
                    return;
                }
            }
        }
    };
    let mut in_flight = JoinSet::new();
    loop {
        let delivery = tokio::select! {
            d = subscription.recv() => d,
            () = crate::connector::stopped(&mut stop) => break,
        };
        let delivery = match delivery {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(route, topic, error = %e, "bus receive failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        // Admitted once it is here, not before: a route paused while this one was awaited
        // holds it. A stop meanwhile leaves it unacked, so it is delivered again later.
        let Some(admission) = inbox.admit(&mut stop).await else { break };
        let inbox = inbox.clone();
        in_flight.spawn(async move {
            let mut msg = delivery.message.clone();
            msg.meta.source.insert("topic".into(), delivery.topic.clone().into());
            msg.meta.source.insert("offset".into(), delivery.offset.into());
            if inbox.deliver(msg, admission).await.settled() {
                delivery.ack();
            }
        });
        while in_flight.try_join_next().is_some() {}
    }
    // Stopping: let the messages in flight finish, then commit their acks before going.
    while in_flight.join_next().await.is_some() {}
    if let Err(e) = subscription.flush().await {
        tracing::warn!(route, topic, error = %e, "cannot commit acks on stop; those messages will be redelivered");
    }
}
