//! A connector's source role: a consumer takes messages from the outside (a topic, a queue,
//! an API walked page by page) and hands each to the route's [`Inbox`], acknowledging it only
//! once the inbox has delivered it. The inbox is the engine's: it bounds what is in flight,
//! holds back while the route is paused, and runs each message with the same metrics, spans,
//! logs, retries and dead letters whatever the source.

use async_trait::async_trait;
use tokio::sync::{OwnedSemaphorePermit, watch};

use crate::message::Message;

/// What reads messages for one route.
#[async_trait]
pub trait Consumer: Send + Sync {
    /// Takes messages until `stop` turns true and hands each to `inbox`, asking
    /// [`Inbox::admit`] (or [`Inbox::try_admit`]) once it has the message, not before (a place
    /// taken while waiting for one would let it run after an admin paused the route). A message is
    /// acknowledged (committed, acked) only after [`Inbox::deliver`] returned
    /// [`Delivery::Settled`] for it and for every message before it that the backend orders
    /// with it; one [`Delivery::Left`] is never acknowledged, nor anything committed past it. Returns once the messages in
    /// flight are delivered and their acknowledgements committed, so a successor started
    /// afterwards in the same group gets none of them again.
    async fn run(&self, inbox: std::sync::Arc<dyn Inbox>, stop: watch::Receiver<bool>);

    /// `topics a, b as group g`, for `junction routes`, the graph and the admin API.
    fn describe(&self) -> String;

    /// Whether one instance at a time may run this consumer (its backend cannot share a group
    /// among processes, as the embedded bus cannot): the engine then runs it under a lease,
    /// and another instance takes over when its holder stops or dies. Brokers that balance a
    /// group themselves (Kafka, RabbitMQ) say false.
    fn exclusive(&self) -> bool {
        false
    }

    /// The (topic, group) pairs this consumer reads as a consumer group. One group's offsets
    /// can follow one route only: two routes in one group would each skip the other's messages.
    fn groups(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// Where a consumer hands its messages: one route.
#[async_trait]
pub trait Inbox: Send + Sync {
    /// The route's id.
    fn route(&self) -> &str;

    /// How many messages the route takes at once; a consumer reads ahead no further.
    fn max_in_flight(&self) -> usize;

    /// Room for one more message: waits for it, and while the route is paused. `None` once
    /// `stop` turned true.
    async fn admit(&self, stop: &mut watch::Receiver<bool>) -> Option<Admission>;

    /// Room for one more message now, or `None` (full or paused). For consumers that must
    /// keep polling while they hold back, like Kafka's (which pause their partitions).
    fn try_admit(&self) -> Option<Admission>;

    /// Runs `msg` through the route to its end: done, or dead-lettered where it can be
    /// replayed. Never fails; only a stop of the process can leave the message undelivered.
    async fn deliver(&self, msg: Message, admission: Admission) -> Delivery;
}

/// How [`Inbox::deliver`] ended: whether the consumer may acknowledge the message.
#[must_use = "a message is acknowledged only when it is settled"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Done, or dead-lettered where it can be replayed: acknowledge it.
    Settled,
    /// The process is stopping and the message was waiting to be retried: leave it
    /// unacknowledged (commit nothing past it), to be delivered again after the restart.
    Left,
}

impl Delivery {
    pub fn settled(self) -> bool {
        self == Self::Settled
    }
}

/// A place in a route, held from [`Inbox::admit`] until the message it was taken for is
/// delivered.
#[derive(Debug)]
pub struct Admission {
    _permit: OwnedSemaphorePermit,
}

impl Admission {
    pub(crate) fn new(permit: OwnedSemaphorePermit) -> Self {
        Self { _permit: permit }
    }
}
