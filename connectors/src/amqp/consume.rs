//! A route's RabbitMQ consumer: one channel reading the route's queues.
//!
//! - RabbitMQ sends at most `prefetch` unacknowledged messages (default: as many as the route
//!   runs at once); a message is acked only after the route finished it (delivered or
//!   dead-lettered by the engine, whose retries run in the process). It is never nacked with
//!   requeue, which would loop.
//! - Messages with one key (`junction-key`) run one after another, others side by side; with a
//!   single-active-consumer queue that is order per key across every instance.
//! - A broken connection or channel is opened again with backoff and the queues consumed
//!   anew; the old channel's delivery tags are dropped (RabbitMQ redelivers those messages),
//!   never acked on the new one.
//! - On stop the consumer is cancelled, the running messages finish and are acked, and the
//!   channel closes before `run` returns: what was received and not started goes back to its
//!   queue for the successor.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::SelectAll;
use junction_engine::Message;
use junction_engine::connector::{Consumer, Delivery, Inbox, slept, stopped};
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Acker, Channel};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::link::{Link, LinkError, group_queue};
use super::wire;

/// What a route reads.
#[derive(Debug, Clone)]
pub(super) enum Source {
    /// Topics of the bus as a consumer group: one queue per topic, `<topic>.<group>`.
    Topics { topics: Vec<String>, group: String, single_active: bool },
    /// A queue as it is (declared by the connector's `queues:` or by someone else).
    Queue(String),
}

pub(super) struct AmqpConsumer {
    pub(super) link: Arc<Link>,
    pub(super) source: Source,
    pub(super) prefetch: Option<u16>,
}

/// A message received and not started yet.
struct Pending {
    msg: Message,
    acker: Acker,
}

/// Why a route could not start consuming; it tries again, with backoff.
#[derive(Debug, thiserror::Error)]
enum OpenError {
    /// No channel, or the route's queues could not be declared.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// RabbitMQ refused the prefetch: lower the route's `prefetch`.
    #[error("cannot set the prefetch: {0}")]
    Prefetch(#[source] lapin::Error),
    /// A queue name longer than AMQP allows: shorten it.
    #[error("`{queue}` is longer than 255 bytes")]
    Name { queue: String },
    /// RabbitMQ refused the consumer: the queue does not exist (declare it under `queues:`), or
    /// another consumer holds it exclusively.
    #[error("cannot consume queue `{queue}`: {source}")]
    Consume { queue: String, source: lapin::Error },
}

/// How often a route that had no room is offered its pending messages again.
const RETRY_EVERY: Duration = Duration::from_millis(50);

/// A queue's consumer as a stream of (queue, delivery).
type Deliveries =
    SelectAll<futures_util::stream::BoxStream<'static, (String, lapin::Result<lapin::message::Delivery>)>>;

#[async_trait]
impl Consumer for AmqpConsumer {
    async fn run(&self, inbox: Arc<dyn Inbox>, stop: watch::Receiver<bool>) {
        let depth = tokio::spawn(report_depth(self.link.clone(), self.queues(), inbox.route().to_owned()));
        self.consume(inbox, stop).await;
        depth.abort();
    }

    fn describe(&self) -> String {
        match &self.source {
            Source::Topics { topics, group, .. } => format!("amqp {} as group {group}", topics.join(", ")),
            Source::Queue(queue) => format!("amqp queue {queue}"),
        }
    }

    fn groups(&self) -> Vec<(String, String)> {
        match &self.source {
            Source::Topics { topics, group, .. } => topics.iter().map(|t| (t.clone(), group.clone())).collect(),
            Source::Queue(queue) => vec![(queue.clone(), queue.clone())],
        }
    }
}

impl AmqpConsumer {
    async fn consume(&self, inbox: Arc<dyn Inbox>, mut stop: watch::Receiver<bool>) {
        let route = inbox.route().to_owned();
        let prefetch = self.prefetch.unwrap_or_else(|| u16::try_from(inbox.max_in_flight()).unwrap_or(u16::MAX)).max(1);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Option<String>>();
        let mut running = JoinSet::new();
        let mut busy: HashSet<String> = HashSet::new();
        let mut wait = Duration::from_millis(200);
        loop {
            let (channel, tags, mut deliveries) = match self.open(&route, prefetch).await {
                Ok(opened) => opened,
                Err(e) => {
                    tracing::error!(route, error = %e, "cannot consume from RabbitMQ; retrying");
                    if !slept(wait, &mut stop).await {
                        break;
                    }
                    wait = (wait * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            wait = Duration::from_millis(200);
            tracing::info!(route, queues = %tags.iter().map(|(q, _)| q.as_str()).collect::<Vec<_>>().join(", "), "consuming from RabbitMQ");
            let mut pending: VecDeque<Pending> = VecDeque::new();
            let mut retry = tokio::time::interval(RETRY_EVERY);
            retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let stopping = loop {
                dispatch(&mut pending, &mut busy, &inbox, &done_tx, &mut running);
                tokio::select! {
                    biased;
                    () = stopped(&mut stop) => break true,
                    Some(key) = done_rx.recv() => release(&mut busy, key),
                    _ = retry.tick() => {}
                    next = deliveries.next() => match next {
                        Some((queue, Ok(delivery))) => {
                            let msg = wire::message_of(&queue, &delivery);
                            pending.push_back(Pending { msg, acker: delivery.acker });
                        }
                        Some((queue, Err(e))) => {
                            tracing::warn!(route, queue, error = %e, "RabbitMQ consumer failed; consuming again");
                            break false;
                        }
                        None => {
                            tracing::warn!(route, "RabbitMQ cancelled the consumer; consuming again");
                            break false;
                        }
                    },
                    Some(_) = running.join_next() => {}
                }
            };
            // Received and not started: not acked, so RabbitMQ gives them to the next consumer.
            drop(pending);
            if stopping {
                for (queue, tag) in &tags {
                    if let Err(e) = channel.basic_cancel(tag.clone(), BasicCancelOptions::default()).await {
                        tracing::debug!(route, queue, error = %e, "cannot cancel the consumer");
                    }
                }
                drain(&mut running).await;
                let _ = channel.close(200, "route stopped".into()).await;
                return;
            }
            let _ = channel.close(200, "consuming again".into()).await;
            if !slept(wait, &mut stop).await {
                break;
            }
        }
        drain(&mut running).await;
    }

    /// Each queue the route reads, with the topic (or queue) its depth is reported under.
    fn queues(&self) -> Vec<(String, String)> {
        match &self.source {
            Source::Topics { topics, group, .. } => topics.iter().map(|t| (group_queue(t, group), t.clone())).collect(),
            Source::Queue(queue) => vec![(queue.clone(), queue.clone())],
        }
    }

    /// A channel with `prefetch`, the queues declared, and a consumer on each.
    async fn open(
        &self,
        route: &str,
        prefetch: u16,
    ) -> Result<(Channel, Vec<(String, ShortString)>, Deliveries), OpenError> {
        let channel = self.link.channel().await?;
        channel.basic_qos(prefetch, BasicQosOptions::default()).await.map_err(OpenError::Prefetch)?;
        let queues = match &self.source {
            Source::Topics { topics, group, single_active } => {
                let mut queues = Vec::with_capacity(topics.len());
                for topic in topics {
                    queues.push(self.link.topology.declare_group(&channel, topic, group, *single_active).await?);
                }
                queues
            }
            Source::Queue(queue) => vec![queue.clone()],
        };
        let mut tags = Vec::with_capacity(queues.len());
        let mut deliveries = SelectAll::new();
        for queue in queues {
            let name = ShortString::try_new(queue.as_str()).map_err(|_| OpenError::Name { queue: queue.clone() })?;
            let tag: ShortString = format!("{route} {}", junction_engine::trace::new_span_id()).into();
            let consumer = channel
                .basic_consume(name, tag.clone(), BasicConsumeOptions::default(), FieldTable::default())
                .await
                .map_err(|source| OpenError::Consume { queue: queue.clone(), source })?;
            let q = queue.clone();
            deliveries.push(consumer.map(move |d| (q.clone(), d)).boxed());
            tags.push((queue, tag));
        }
        Ok((channel, tags, deliveries))
    }
}

/// Starts every pending message whose key is free, while the route has room.
fn dispatch(
    pending: &mut VecDeque<Pending>,
    busy: &mut HashSet<String>,
    inbox: &Arc<dyn Inbox>,
    done_tx: &mpsc::UnboundedSender<Option<String>>,
    running: &mut JoinSet<()>,
) {
    let mut waiting: HashSet<String> = HashSet::new();
    let mut i = 0;
    while i < pending.len() {
        let key = pending[i].msg.meta.key.clone();
        if let Some(key) = key.as_ref().filter(|k| busy.contains(*k) || waiting.contains(*k)) {
            // An earlier message of this key is running or waiting: this one follows it.
            waiting.insert(key.clone());
            i += 1;
            continue;
        }
        let Some(admission) = inbox.try_admit() else { return };
        let Some(Pending { msg, acker }) = pending.remove(i) else { return };
        if let Some(key) = &key {
            busy.insert(key.clone());
        }
        let (inbox, done_tx) = (inbox.clone(), done_tx.clone());
        running.spawn(async move {
            match inbox.deliver(msg, admission).await {
                Delivery::Settled => ack(&acker).await,
                Delivery::Left => requeue(&acker).await,
            }
            let _ = done_tx.send(key);
        });
    }
}

/// Acks a finished message on the channel it came from. A channel that broke since cannot
/// take the ack: RabbitMQ redelivers the message (at least once), and its tag is dropped.
async fn ack(acker: &Acker) {
    match acker.ack(BasicAckOptions::default()).await {
        Ok(true) => {}
        Ok(false) => tracing::debug!("a RabbitMQ delivery tag of a closed channel dropped; the message is redelivered"),
        Err(e) => tracing::warn!(error = %e, "cannot ack a RabbitMQ message; it is redelivered"),
    }
}

/// Gives back a message a stop left undelivered: RabbitMQ hands it to the queue's next
/// consumer (this one is cancelled). Should that fail, closing the channel requeues it too.
async fn requeue(acker: &Acker) {
    if let Err(e) = acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await {
        tracing::debug!(error = %e, "cannot requeue a RabbitMQ message; closing the channel requeues it");
    }
}

fn release(busy: &mut HashSet<String>, key: Option<String>) {
    if let Some(key) = key {
        busy.remove(&key);
    }
}

/// How often the depth of a route's queues is measured.
const DEPTH_EVERY: Duration = Duration::from_secs(5);

/// Sets `junction_consumer_lag{route, topic, partition="0"}` to the messages ready in each of
/// the route's queues (received by no consumer yet), asked of RabbitMQ by a passive declare
/// every five seconds, until aborted.
async fn report_depth(link: Arc<Link>, queues: Vec<(String, String)>, route: String) {
    let gauges: Vec<_> =
        queues.iter().map(|(_, topic)| junction_engine::telemetry::consumer_lag(&route, topic, "0")).collect();
    let mut channel: Option<Channel> = None;
    let mut every = tokio::time::interval(DEPTH_EVERY);
    loop {
        every.tick().await;
        for ((queue, _), gauge) in queues.iter().zip(&gauges) {
            if channel.as_ref().is_none_or(|c| !c.status().connected()) {
                channel = link.channel().await.ok();
            }
            let Some(open) = &channel else { break };
            let Ok(name) = ShortString::try_new(queue.as_str()) else { continue };
            let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
            match open.queue_declare(name, passive, FieldTable::default()).await {
                Ok(q) => gauge.set(f64::from(q.message_count())),
                // Not declared yet (the consumer declares it) or the channel broke: next time.
                Err(e) => {
                    tracing::debug!(route, queue, error = %e, "cannot measure a RabbitMQ queue's depth");
                    channel = None;
                }
            }
        }
    }
}

/// Waits for the running messages to finish (and be acked).
async fn drain(running: &mut JoinSet<()>) {
    while running.join_next().await.is_some() {}
}
