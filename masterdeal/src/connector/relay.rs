//! The outbox relay: publishes MasterDeal's committed events to the project's bus in the order
//! they were committed, on one topic per aggregate type (`masterdeal.deal`,
//! `masterdeal.media_plan`, …) with the event's type in the `event_type` header and the
//! aggregate's id in `aggregate_id` and as the message key (which a partitioned bus keeps one
//! aggregate's events in order by). A background task of the connector that runs in one
//! instance at a time (under a lease): two relays would publish every event twice.

use std::sync::Arc;
use std::time::Duration;

use junction_engine::connector::Bus;
use junction_engine::store::Store;
use junction_engine::telemetry::OutboxMetrics;
use junction_engine::{Body, Message};
use serde_json::Value;
use tokio::sync::watch;

use crate::store::{self, Database, OutboxEvent};

const TICK: Duration = Duration::from_millis(200);
/// Ticks between two readings of the outbox's backlog for the metrics.
const MEASURE_EVERY: u32 = 25;

/// The relay as a connector's task.
pub(super) fn task(
    metrics: OutboxMetrics,
    database: Database,
    bus: Arc<dyn Bus>,
    stop: watch::Receiver<bool>,
) -> junction_engine::connector::TaskFuture {
    Box::pin(run(metrics, database, bus, stop))
}

/// Publishes what the outbox holds every tick, until `stop`.
async fn run(metrics: OutboxMetrics, database: Database, bus: Arc<dyn Bus>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u32;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = junction_engine::connector::stopped(&mut stop) => return,
        }
        let store = match database.get().await {
            Ok(store) => store,
            Err(e) => {
                tracing::warn!(error = %e, "masterdeal outbox relay: the database is not ready; retrying");
                continue;
            }
        };
        let publisher = bus.clone();
        if let Err(e) = store::relay_once(store, move |event: &OutboxEvent| publish(publisher.clone(), event)).await {
            tracing::warn!(error = %e, "masterdeal outbox relay failed; retrying");
        }
        ticks += 1;
        if ticks % MEASURE_EVERY == 1 {
            measure(&metrics, store).await;
        }
    }
}

/// Sets the outbox gauges: events waiting, and the age of the oldest.
async fn measure(metrics: &OutboxMetrics, store: &Store) {
    match store::backlog(store).await {
        Ok((pending, oldest)) => {
            metrics.pending.set(pending as f64);
            let age = oldest.map_or(0, |t| (chrono::Utc::now().timestamp_millis() - t).max(0));
            metrics.oldest_age.set(age as f64 / 1000.0);
        }
        Err(error) => tracing::warn!(%error, "cannot measure the masterdeal outbox"),
    }
}

/// Builds the message now and returns a boxed future owning all it needs: an opaque one, or
/// one that borrowed the event, could not be proven `Send` for every lifetime `relay_once`
/// may call it with.
fn publish(bus: Arc<dyn Bus>, event: &OutboxEvent) -> junction_engine::connector::BoxedPublish {
    let mut msg = Message::with_id(event.event_id.to_string(), Body::Json(event.payload.clone()));
    msg.headers.insert("event_id".into(), Value::String(event.event_id.to_string()));
    msg.headers.insert("event_type".into(), Value::String(event.event_type.clone()));
    msg.headers.insert("aggregate_id".into(), Value::String(event.aggregate_id.clone()));
    msg.headers.insert("aggregate_seq".into(), Value::from(event.aggregate_seq));
    msg.meta.key = Some(event.aggregate_id.clone());
    // In the trace the event was written in: what reacts to it continues that trace.
    msg.meta.trace_id = event.trace_id.clone();
    msg.meta.parent_span_id = event.parent_span_id.clone();
    let topic = topic_of(&event.event_type).to_owned();
    Box::pin(async move { bus.publish(&topic, &msg).await })
}

/// The topic of an event: its type without the change, `masterdeal.deal.created` →
/// `masterdeal.deal`.
fn topic_of(event_type: &str) -> &str {
    event_type.rsplit_once('.').map_or(event_type, |(topic, _)| topic)
}

#[cfg(test)]
mod tests {
    #[test]
    fn events_go_to_their_aggregates_topic() {
        assert_eq!(super::topic_of("masterdeal.deal.created"), "masterdeal.deal");
        assert_eq!(super::topic_of("masterdeal.campaign.stats_recorded"), "masterdeal.campaign");
        assert_eq!(super::topic_of("plain"), "plain");
    }
}
