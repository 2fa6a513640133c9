//! The outbox relay: publishes MasterDeal's committed events to the embedded bus, on the
//! topic named by each event's type. One per process, since two relays would publish every
//! event twice; a config reload builds the connector again but keeps the running relay.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use junction_engine::bus::EmbeddedBus;
use junction_engine::store::Store;
use junction_engine::{Body, Message};
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::store::{self, OutboxEvent};

const TICK: Duration = Duration::from_millis(200);

static STARTED: AtomicBool = AtomicBool::new(false);

/// Starts the relay unless this process already has one. Outside a Tokio runtime there is
/// nothing to run it on, and nothing running to publish for.
pub(super) fn start_once(store: Store, bus: EmbeddedBus, migrated: Arc<OnceCell<()>>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    if STARTED.swap(true, Ordering::SeqCst) {
        return;
    }
    runtime.spawn(run(store, bus, migrated));
}

async fn run(store: Store, bus: EmbeddedBus, migrated: Arc<OnceCell<()>>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = migrated.get_or_try_init(|| store::migrate(&store)).await {
            tracing::warn!(error = %e, "masterdeal outbox relay: migrations failed; retrying");
            continue;
        }
        let publisher = bus.clone();
        if let Err(e) = store::relay_once(&store, move |event: &OutboxEvent| publish(publisher.clone(), event)).await {
            tracing::warn!(error = %e, "masterdeal outbox relay failed; retrying");
        }
    }
}

/// Builds the message now and returns a future owning all it needs: one that borrowed the
/// event could not be proven `Send` for every lifetime `relay_once` may call it with.
fn publish(
    bus: EmbeddedBus,
    event: &OutboxEvent,
) -> impl Future<Output = Result<(), junction_engine::bus::BusError>> + Send + use<> {
    let mut msg = Message::with_id(event.event_id.to_string(), Body::Json(event.payload.clone()));
    msg.headers.insert("event_id".into(), Value::String(event.event_id.to_string()));
    msg.headers.insert("aggregate_id".into(), Value::String(event.aggregate_id.clone()));
    msg.headers.insert("aggregate_seq".into(), Value::from(event.aggregate_seq));
    let topic = event.event_type.clone();
    async move { bus.publish(&topic, &msg).await.map(|_| ()) }
}
