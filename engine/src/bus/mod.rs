//! The embedded event bus: durable topics in the store, consumer groups with acks.
//!
//! Semantics follow a Kafka log: a topic is append-only, each consumer group keeps a
//! committed offset per topic, delivery is at-least-once and in offset order. Offsets
//! increase within a topic but are not contiguous (one sequence serves every topic). A
//! group subscribing for the first time starts at the beginning of the topic. Retention
//! ([`EmbeddedBus::purge`]) removes old messages once every group reading their topic has
//! processed them.
//!
//! - `log`: the tables and the SQL, including how Postgres keeps offsets in order.
//! - `subscription`: reading, waiting, back-pressure and deliveries.
//! - `ack`: turning out-of-order acks into commits.

mod ack;
mod log;
mod subscription;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use crate::message::Message;
use crate::store::{Store, StoreError};

pub use subscription::{Delivery, Subscription};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(transparent)]
    Store(#[from] StoreError),

    #[error("the bus {what} name is empty: give every topic and consumer group a name")]
    EmptyName { what: &'static str },

    #[error("max_in_flight is 0, so nothing could ever be delivered: allow at least 1")]
    NoInFlight,
}

/// The bus over one store. Clone it to share it: clones wake each other's subscribers at
/// once, while other processes (and separately created buses) are seen by polling.
#[derive(Debug, Clone)]
pub struct EmbeddedBus {
    store: Store,
    signals: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl EmbeddedBus {
    pub fn new(store: Store) -> Self {
        EmbeddedBus { store, signals: Arc::default() }
    }

    /// Appends `message` to `topic` and returns its offset once it is durable in the store.
    pub async fn publish(&self, topic: &str, message: &Message) -> Result<i64, BusError> {
        named("topic", topic)?;
        let offset = log::append(&self.store, topic, message).await?;
        self.signal(topic).notify_waiters();
        Ok(offset)
    }

    /// Subscribes `group` to `topic`, from the group's committed offset. At most
    /// `max_in_flight` deliveries are outstanding (unacked) at once; `recv` waits for an ack
    /// beyond that.
    pub async fn subscribe(&self, group: &str, topic: &str, max_in_flight: usize) -> Result<Subscription, BusError> {
        named("consumer group", group)?;
        named("topic", topic)?;
        if max_in_flight == 0 {
            return Err(BusError::NoInFlight);
        }
        Subscription::start(self, group, topic, max_in_flight).await
    }

    /// Retention: deletes the messages older than `age` that every consumer group of their
    /// topic has processed, and says how many. Nothing a group still has to process goes,
    /// however old; a group subscribing for the first time starts at the oldest message kept.
    pub async fn purge(&self, age: std::time::Duration) -> Result<u64, BusError> {
        let age = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        Ok(log::purge(&self.store, crate::store::now_millis().saturating_sub(age)).await?)
    }

    /// The wake-up publishers of `topic` send to its waiting subscribers in this process.
    fn signal(&self, topic: &str) -> Arc<Notify> {
        // Only inserts happen under this lock, so a panic cannot leave the map half-changed.
        let mut signals = self.signals.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(signals.entry(topic.to_owned()).or_default())
    }
}

fn named(what: &'static str, name: &str) -> Result<(), BusError> {
    if name.is_empty() {
        return Err(BusError::EmptyName { what });
    }
    Ok(())
}
