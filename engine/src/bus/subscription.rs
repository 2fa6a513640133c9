//! A consumer group's subscription to a topic, and the deliveries it hands out.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::ack::{AckTracker, run_committer};
use super::log::{self, Record};
use super::{BusError, EmbeddedBus};
use crate::message::Message;
use crate::store::Store;

/// How often a waiting subscription looks at the log anyway, to see messages published by
/// other processes sharing the store (this process's publishes wake it at once).
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How many messages one read of the log fetches ahead of delivery.
const READ_BATCH: i64 = 100;

/// Messages of one topic for one consumer group, in offset order, at least once.
///
/// Acks are committed by a background task moments after they happen; [`Subscription::flush`]
/// commits them at once, e.g. before a graceful shutdown. Every open subscription of a
/// group reads the whole topic: run one per group and topic, as the bus source does.
#[derive(Debug)]
pub struct Subscription {
    store: Store,
    signal: Arc<Notify>,
    in_flight: Arc<Semaphore>,
    tracker: Arc<AckTracker>,
    /// The last offset read from the log, delivered or still buffered.
    read_through: i64,
    buffered: VecDeque<Record>,
}

impl Subscription {
    pub(super) async fn start(
        bus: &EmbeddedBus,
        group: &str,
        topic: &str,
        max_in_flight: usize,
    ) -> Result<Subscription, BusError> {
        // A commit of offset 0 records the group without moving it: retention keeps what a
        // subscribed group has not processed, even before its first commit.
        log::commit(&bus.store, group, topic, 0).await?;
        let committed = log::committed(&bus.store, group, topic).await?;
        let (tracker, acked_through) = AckTracker::new(group, topic, committed);
        tokio::spawn(run_committer(bus.store.clone(), group.to_owned(), topic.to_owned(), acked_through, committed));
        Ok(Subscription {
            store: bus.store.clone(),
            signal: bus.signal(topic),
            in_flight: Arc::new(Semaphore::new(max_in_flight.min(Semaphore::MAX_PERMITS))),
            tracker: Arc::new(tracker),
            read_through: committed,
            buffered: VecDeque::new(),
        })
    }

    /// The next message, waiting for one to be published and, while `max_in_flight`
    /// deliveries are unacked, for an ack. Cancel-safe: dropping the future loses nothing.
    pub async fn recv(&mut self) -> Result<Delivery, BusError> {
        let permit =
            Arc::clone(&self.in_flight).acquire_owned().await.expect("the in-flight semaphore is never closed");
        let record = self.next_record().await?;
        self.tracker.delivered(record.offset);
        Ok(Delivery {
            message: record.message,
            topic: self.tracker.topic.clone(),
            offset: record.offset,
            handle: AckHandle {
                tracker: Arc::clone(&self.tracker),
                offset: record.offset,
                acked: false,
                _permit: permit,
            },
        })
    }

    /// Commits the acked offsets now rather than moments later, so a subscription opened
    /// after this returns does not get them again.
    pub async fn flush(&self) -> Result<(), BusError> {
        let through = self.tracker.acked_through();
        log::commit(&self.store, &self.tracker.group, &self.tracker.topic, through).await?;
        Ok(())
    }

    async fn next_record(&mut self) -> Result<Record, BusError> {
        loop {
            if let Some(record) = self.buffered.pop_front() {
                return Ok(record);
            }
            // Listen before reading: a publish landing between the read and the wait
            // still wakes us.
            let mut published = pin!(self.signal.notified());
            published.as_mut().enable();
            let batch = log::read_after(&self.store, &self.tracker.topic, self.read_through, READ_BATCH).await?;
            if let Some(last) = batch.last() {
                self.read_through = last.offset;
                self.buffered.extend(batch);
                continue;
            }
            tokio::select! {
                () = published => {}
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }
}

/// One message handed to a consumer. [`Delivery::ack`] it once processed; dropping it
/// unacked keeps it uncommitted, so the group's next subscription gets it again.
#[derive(Debug)]
pub struct Delivery {
    pub message: Message,
    pub topic: String,
    pub offset: i64,
    handle: AckHandle,
}

impl Delivery {
    /// Marks the message processed; it is committed once every earlier one is too.
    pub fn ack(mut self) {
        self.handle.ack();
    }
}

#[derive(Debug)]
struct AckHandle {
    tracker: Arc<AckTracker>,
    offset: i64,
    acked: bool,
    /// Holds one of the subscription's `max_in_flight` slots until acked or dropped.
    _permit: OwnedSemaphorePermit,
}

impl AckHandle {
    fn ack(&mut self) {
        self.tracker.ack(self.offset);
        self.acked = true;
    }
}

impl Drop for AckHandle {
    fn drop(&mut self) {
        if !self.acked {
            tracing::warn!(
                group = self.tracker.group,
                topic = self.tracker.topic,
                offset = self.offset,
                "bus delivery dropped without ack: the group's commits stop before it, and \
                 its next subscription gets it again"
            );
        }
    }
}
