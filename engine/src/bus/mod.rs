//! The embedded event bus: durable topics in the store, consumer groups with acks.
//!
//! Semantics follow a Kafka log: a topic is append-only, each consumer group keeps a
//! committed offset per topic, delivery is at-least-once and in offset order. Offsets
//! increase within a topic but are not contiguous (one sequence serves every topic). A
//! group subscribing for the first time starts at the beginning of the topic. Retention
//! ([`EmbeddedBus::purge`]) removes old messages once every group reading their topic has
//! processed them. A topic holds at most `max_backlog` messages its slowest group has not
//! processed ([`EmbeddedBus::with_max_backlog`]): past it a publish is refused with
//! [`BusError::Full`], so a consumer that stopped cannot make the store grow without end.
//!
//! - `log`: the tables and the SQL, including how Postgres keeps offsets in order.
//! - `subscription`: reading, waiting, back-pressure and deliveries.
//! - `ack`: turning out-of-order acks into commits.
//! - `connector`: the bus as the project's `bus` connector (`bus: embedded`), started with the store.
//! - `consumer`: a route's consumer of one or several topics as a group.

mod ack;
mod connector;
mod consumer;
mod log;
mod subscription;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::message::Message;
use crate::store::{Store, StoreError};

pub use connector::Embedded;
pub use subscription::{Delivery, Subscription};

/// How long processed messages are kept unless `bus_retention` says otherwise.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Unprocessed messages a topic may hold unless `bus_max_backlog` says otherwise.
pub const DEFAULT_MAX_BACKLOG: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(transparent)]
    Store(#[from] StoreError),

    #[error("the bus {what} name is empty: give every topic and consumer group a name")]
    EmptyName { what: &'static str },

    #[error("max_in_flight is 0, so nothing could ever be delivered: allow at least 1")]
    NoInFlight,

    #[error(
        "topic `{topic}` holds {backlog} messages its consumers have not processed, as many as \
         bus_max_backlog ({limit}) allows: try again once they catch up"
    )]
    Full { topic: String, backlog: u64, limit: u64 },
}

/// A consumer group's place on a topic, as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupState {
    pub topic: String,
    pub group: String,
    /// Every offset up to this one is processed.
    pub committed: i64,
    /// Messages of the topic after `committed`.
    pub backlog: u64,
    /// When the committed offset last moved (unix milliseconds).
    pub updated_at: i64,
}

/// How long a topic found full stays full before the store is asked again.
const RECOUNT_AFTER: Duration = Duration::from_millis(250);

/// The bus over one store. Clone it to share it: clones wake each other's subscribers at
/// once, while other processes (and separately created buses) are seen by polling.
#[derive(Debug, Clone)]
pub struct EmbeddedBus {
    store: Store,
    signals: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
    max_backlog: u64,
    backlogs: Arc<Mutex<HashMap<String, Backlog>>>,
}

/// A topic's backlog as this process knows it without asking the store: a count, plus this
/// process's publishes since. Between counts it only grows, so for one process it can say
/// full too early but never too late (concurrent publishers overshoot by at most their number);
/// the store is counted again only when it says full. Other processes' publishes are seen at
/// the next count.
#[derive(Debug)]
struct Backlog {
    estimate: u64,
    counted: Instant,
}

impl EmbeddedBus {
    /// A bus whose topics hold at most [`DEFAULT_MAX_BACKLOG`]
    /// unprocessed messages each.
    pub fn new(store: Store) -> Self {
        EmbeddedBus { store, signals: Arc::default(), max_backlog: DEFAULT_MAX_BACKLOG, backlogs: Arc::default() }
    }

    /// At most `max` messages per topic that its slowest consumer group (or, for a topic no
    /// group reads, anyone) has not processed.
    pub fn with_max_backlog(mut self, max: u64) -> Self {
        self.max_backlog = max;
        self
    }

    /// Appends `message` to `topic` and returns its offset once it is durable in the store.
    /// [`BusError::Full`] when the topic's backlog is at `max_backlog`.
    pub async fn publish(&self, topic: &str, message: &Message) -> Result<i64, BusError> {
        named("topic", topic)?;
        self.admit(topic).await?;
        let offset = log::append(&self.store, topic, message).await?;
        if let Some(backlog) = self.backlogs().get_mut(topic) {
            backlog.estimate += 1;
        }
        self.signal(topic).notify_waiters();
        Ok(offset)
    }

    /// Whether `topic` has room for one more message; counts its backlog in the store the
    /// first time, and again when the estimate says full.
    async fn admit(&self, topic: &str) -> Result<(), BusError> {
        let full = |backlog| BusError::Full { topic: topic.to_owned(), backlog, limit: self.max_backlog };
        match self.backlogs().get(topic) {
            Some(b) if b.estimate < self.max_backlog => return Ok(()),
            Some(b) if b.counted.elapsed() < RECOUNT_AFTER => return Err(full(b.estimate)),
            _ => {}
        }
        let estimate = log::backlog(&self.store, topic).await?;
        self.backlogs().insert(topic.to_owned(), Backlog { estimate, counted: Instant::now() });
        if estimate >= self.max_backlog {
            return Err(full(estimate));
        }
        Ok(())
    }

    fn backlogs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Backlog>> {
        // Plain counters updated in single steps: a poisoned lock is still good to use.
        self.backlogs.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// Every consumer group on every topic, with its backlog.
    pub async fn groups(&self) -> Result<Vec<GroupState>, BusError> {
        Ok(log::groups(&self.store).await?)
    }

    /// Forgets `group` on `topic`: retention and the backlog bound stop waiting for it, and
    /// should it subscribe again it starts from the oldest message kept. For a group whose
    /// consumer is gone for good. Whether the group was there.
    pub async fn forget_group(&self, group: &str, topic: &str) -> Result<bool, BusError> {
        let forgot = log::forget(&self.store, group, topic).await?;
        // The backlog may have shrunk: count it again at the next publish.
        self.backlogs().remove(topic);
        Ok(forgot)
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
