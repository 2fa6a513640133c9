//! A route's Kafka consumer: one group member reading the route's topics.
//!
//! - Messages with one key run one after another (a lane per key); other keys, and messages
//!   without a key, run side by side, as many as the route takes at once.
//! - An offset is committed only once its message and every one before it on the partition
//!   are done (delivered or dead-lettered): periodically, on a rebalance, and on stop.
//! - A partition runs at most `checkpoint_limit` messages at once and holds about as many
//!   read and not committed (a few more may already be fetched); at that many it is paused (never by not polling, which would cost the group membership) and
//!   resumed once half of them are done. A route full or paused by an admin fills its
//!   partitions and so pauses them.
//! - On a revoke, what is done is committed synchronously and the revoked partitions' queued
//!   and running messages are forgotten: their new owner reads them again.
//! - On stop, fetching pauses, the running messages finish, their offsets are committed, and
//!   the member leaves the group before `run` returns: a successor never gets them twice.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use junction_engine::Message;
use junction_engine::connector::{Consumer, Inbox, slept, stopped};
use metrics::Gauge;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientConfig, ClientContext};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::topics::{Topics, TopicsError};
use super::wire;

pub(super) struct KafkaConsumer {
    pub(super) config: ClientConfig,
    pub(super) topics: Vec<String>,
    pub(super) group: String,
    pub(super) checkpoint_limit: usize,
    pub(super) commit_interval: Duration,
    pub(super) ensure: Arc<Topics>,
}

/// A topic and partition.
type Tp = (String, i32);

/// One message read and not started yet.
struct Queued {
    offset: i64,
    msg: Message,
}

/// What the consumer keeps of one assigned partition.
struct Partition {
    /// Which assignment this is: results of an earlier one (revoked since) are dropped.
    epoch: u64,
    /// Read and not started, in offset order.
    queued: VecDeque<Queued>,
    running: usize,
    /// Keys with a message running: the next message of such a key waits.
    busy: HashSet<String>,
    /// Offsets read and not committed, with whether each is done.
    offsets: BTreeMap<i64, bool>,
    /// The offset to commit next (the first not done), and the last committed.
    done_upto: Option<i64>,
    committed: Option<i64>,
    paused: bool,
}

impl Partition {
    fn new(epoch: u64) -> Self {
        Self {
            epoch,
            queued: VecDeque::new(),
            running: 0,
            busy: HashSet::new(),
            offsets: BTreeMap::new(),
            done_upto: None,
            committed: None,
            paused: false,
        }
    }

    fn held(&self) -> usize {
        self.queued.len() + self.running
    }

    /// The offset to commit now, if it moved: the first one not done.
    fn advance(&mut self) -> Option<i64> {
        while let Some((&offset, &done)) = self.offsets.first_key_value() {
            if !done {
                break;
            }
            self.offsets.pop_first();
            self.done_upto = Some(offset + 1);
        }
        self.done_upto.filter(|&next| self.committed.is_none_or(|c| next > c))
    }
}

/// The partitions this member holds now (in order, so they can take turns); shared with the
/// rebalance callbacks.
#[derive(Default)]
struct Assigned {
    partitions: BTreeMap<Tp, Partition>,
    next_epoch: u64,
}

type Shared = Arc<Mutex<Assigned>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Assigned> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Adds the partition's offset to commit to `list`, if it moved; returns it.
fn add_commit(list: &mut TopicPartitionList, (topic, partition): &Tp, p: &mut Partition) -> Option<i64> {
    let next = p.advance()?;
    list.add_partition_offset(topic, *partition, Offset::Offset(next)).ok()?;
    Some(next)
}

/// The offsets to commit, as a list (empty when nothing moved).
fn commit_list(assigned: &mut Assigned) -> (TopicPartitionList, Vec<(Tp, i64)>) {
    let mut list = TopicPartitionList::new();
    let mut moved = Vec::new();
    for (tp, p) in &mut assigned.partitions {
        if let Some(next) = add_commit(&mut list, tp, p) {
            moved.push((tp.clone(), next));
        }
    }
    (list, moved)
}

fn mark_committed(assigned: &mut Assigned, moved: Vec<(Tp, i64)>) {
    for (tp, next) in moved {
        if let Some(p) = assigned.partitions.get_mut(&tp) {
            p.committed = Some(next);
        }
    }
}

/// The consumer's callbacks: rebalances and statistics. They run inside `recv`, on the task
/// that polls.
struct Context {
    assigned: Shared,
    route: String,
    lag: Mutex<HashMap<Tp, Gauge>>,
}

impl ClientContext for Context {
    fn stats(&self, statistics: Statistics) {
        let mut gauges = self.lag.lock().unwrap_or_else(PoisonError::into_inner);
        for (topic, t) in &statistics.topics {
            for (&partition, p) in &t.partitions {
                // -1 is librdkafka's internal "unassigned" partition; lag is -1 until known.
                if partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                gauges
                    .entry((topic.clone(), partition))
                    .or_insert_with(|| {
                        junction_engine::telemetry::consumer_lag(&self.route, topic, &partition.to_string())
                    })
                    .set(p.consumer_lag as f64);
            }
        }
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else { return };
        let mut assigned = lock(&self.assigned);
        let mut list = TopicPartitionList::new();
        for e in revoked.elements() {
            if let Some((tp, mut p)) = assigned.partitions.remove_entry(&(e.topic().to_owned(), e.partition())) {
                add_commit(&mut list, &tp, &mut p);
            }
        }
        drop(assigned);
        if list.count() > 0
            && let Err(e) = consumer.commit(&list, CommitMode::Sync)
        {
            tracing::warn!(route = %self.route, error = %e, "cannot commit on revoke; those messages will be read again");
        }
        tracing::info!(route = %self.route, partitions = %names(revoked), "Kafka partitions revoked");
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(given) = rebalance else { return };
        // librdkafka keeps a partition's pause across a revoke and a new assignment, while its
        // state here starts unpaused: resumed now, it is paused again if it fills up.
        if let Err(e) = consumer.resume(given) {
            tracing::warn!(route = %self.route, error = %e, "cannot resume newly assigned partitions");
        }
        let mut assigned = lock(&self.assigned);
        for e in given.elements() {
            let epoch = assigned.next_epoch;
            assigned.next_epoch += 1;
            assigned.partitions.entry((e.topic().to_owned(), e.partition())).or_insert_with(|| Partition::new(epoch));
        }
        tracing::info!(route = %self.route, partitions = %names(given), "Kafka partitions assigned");
    }
}

/// `topic/0, topic/1`, for logs.
fn names(list: &TopicPartitionList) -> String {
    list.elements().iter().map(|e| format!("{}/{}", e.topic(), e.partition())).collect::<Vec<_>>().join(", ")
}

/// A message finished by the route.
struct Done {
    tp: Tp,
    epoch: u64,
    offset: i64,
    key: Option<String>,
    /// False when a stop left the message undelivered: its offset is not committed, nor any after it.
    settled: bool,
}

/// Why a route could not join its consumer group; it tries again, with backoff.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    /// Its topics could not be created.
    #[error(transparent)]
    Topics(#[from] TopicsError),
    /// The consumer could not be made from the connector's options: check `options` and `consumer`.
    #[error("cannot create the consumer: {0}")]
    Create(#[source] KafkaError),
    /// The subscription was refused: check the topic names.
    #[error("cannot subscribe to {topics}: {source}")]
    Subscribe { topics: String, source: KafkaError },
}

/// How often a route that had no room is offered its queued messages again (an admin resumed
/// it, another source freed a place).
const RETRY_EVERY: Duration = Duration::from_millis(50);

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn run(&self, inbox: Arc<dyn Inbox>, mut stop: watch::Receiver<bool>) {
        let route = inbox.route().to_owned();
        let Some(consumer) = self.connect(&route, &mut stop).await else { return };
        let assigned = consumer.context().assigned.clone();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let mut running = JoinSet::new();
        let mut retry = tokio::time::interval(RETRY_EVERY);
        let mut commit_every = tokio::time::interval(self.commit_interval);
        for timer in [&mut retry, &mut commit_every] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        let mut turn = 0usize;
        loop {
            turn = turn.wrapping_add(1);
            self.dispatch(&consumer, &assigned, &inbox, &done_tx, &mut running, turn);
            tokio::select! {
                biased;
                () = stopped(&mut stop) => break,
                Some(done) = done_rx.recv() => finish(&assigned, done),
                // The timers before the records: a busy topic must not starve the commits.
                _ = commit_every.tick() => commit(&consumer, &assigned, CommitMode::Async, &route),
                _ = retry.tick() => {}
                received = consumer.recv() => match received {
                    Ok(record) => self.queue(&consumer, &assigned, &record.detach()),
                    Err(e) => {
                        tracing::warn!(route, error = %e, "Kafka consumer error");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
            while running.try_join_next().is_some() {}
        }
        self.drain(consumer, &assigned, &mut done_rx, &mut running, &route).await;
    }

    fn describe(&self) -> String {
        format!("kafka {} as group {}", self.topics.join(", "), self.group)
    }

    fn groups(&self) -> Vec<(String, String)> {
        self.topics.iter().map(|t| (t.clone(), self.group.clone())).collect()
    }
}

impl KafkaConsumer {
    /// Creates the topics if need be, then joins the group; retried until it works or `stop`.
    async fn connect(&self, route: &str, stop: &mut watch::Receiver<bool>) -> Option<StreamConsumer<Context>> {
        let mut wait = Duration::from_millis(200);
        loop {
            match self.try_connect(route).await {
                Ok(consumer) => return Some(consumer),
                Err(e) => tracing::error!(route, error = %e, "cannot start the Kafka consumer; retrying"),
            }
            if !slept(wait, stop).await {
                return None;
            }
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    }

    async fn try_connect(&self, route: &str) -> Result<StreamConsumer<Context>, ConnectError> {
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        self.ensure.ensure(&topics).await?;
        let mut config = self.config.clone();
        config.set("group.id", &self.group);
        let context = Context { assigned: Shared::default(), route: route.to_owned(), lag: Mutex::default() };
        let consumer: StreamConsumer<Context> = config.create_with_context(context).map_err(ConnectError::Create)?;
        consumer.subscribe(&topics).map_err(|source| ConnectError::Subscribe { topics: topics.join(", "), source })?;
        Ok(consumer)
    }

    /// Keeps a message read until the route has room for it; pauses its partition when it
    /// holds as many as it may.
    fn queue(&self, consumer: &StreamConsumer<Context>, assigned: &Shared, record: &rdkafka::message::OwnedMessage) {
        use rdkafka::Message as _;
        let tp = (record.topic().to_owned(), record.partition());
        let mut assigned = lock(assigned);
        // A record of a partition revoked since it was fetched: its new owner reads it.
        let Some(p) = assigned.partitions.get_mut(&tp) else { return };
        // Read before (a fetch resumed from an earlier position): it is queued or done already.
        if p.offsets.contains_key(&record.offset()) || p.done_upto.is_some_and(|next| record.offset() < next) {
            return;
        }
        p.offsets.insert(record.offset(), false);
        p.queued.push_back(Queued { offset: record.offset(), msg: wire::message_of(record) });
        if !p.paused && p.held() >= self.checkpoint_limit {
            p.paused = set_paused(consumer, &tp, true);
        }
    }

    /// Starts every queued message whose key is free, while the route has room; resumes the
    /// partitions that have room again. Partitions take turns at going first.
    fn dispatch(
        &self,
        consumer: &StreamConsumer<Context>,
        assigned: &Shared,
        inbox: &Arc<dyn Inbox>,
        done_tx: &mpsc::UnboundedSender<Done>,
        running: &mut JoinSet<()>,
        turn: usize,
    ) {
        let mut assigned = lock(assigned);
        let mut order: Vec<(&Tp, &mut Partition)> = assigned.partitions.iter_mut().collect();
        if !order.is_empty() {
            let first = turn % order.len();
            order.rotate_left(first);
        }
        let mut room = true;
        for (tp, p) in order {
            let mut waiting: HashSet<String> = HashSet::new();
            let mut i = 0;
            while room && i < p.queued.len() && p.running < self.checkpoint_limit {
                let key = p.queued[i].msg.meta.key.clone();
                if let Some(key) = key.as_ref().filter(|k| p.busy.contains(*k) || waiting.contains(*k)) {
                    // An earlier message of this key is running or waiting: this one follows it.
                    waiting.insert(key.clone());
                    i += 1;
                    continue;
                }
                let Some(admission) = inbox.try_admit() else {
                    room = false;
                    break;
                };
                let Some(queued) = p.queued.remove(i) else { break };
                if let Some(key) = &key {
                    p.busy.insert(key.clone());
                }
                p.running += 1;
                let (inbox, done_tx, epoch) = (inbox.clone(), done_tx.clone(), p.epoch);
                let tp = tp.clone();
                running.spawn(async move {
                    let settled = inbox.deliver(queued.msg, admission).await.settled();
                    let _ = done_tx.send(Done { tp, epoch, offset: queued.offset, key, settled });
                });
            }
            if p.paused && p.held() <= self.checkpoint_limit / 2 {
                p.paused = !set_paused(consumer, tp, false);
            }
        }
    }

    /// Stops fetching, lets the running messages finish, commits, and leaves the group.
    async fn drain(
        &self,
        consumer: StreamConsumer<Context>,
        assigned: &Shared,
        done_rx: &mut mpsc::UnboundedReceiver<Done>,
        running: &mut JoinSet<()>,
        route: &str,
    ) {
        if let Ok(all) = consumer.assignment()
            && let Err(e) = consumer.pause(&all)
        {
            tracing::warn!(route, error = %e, "cannot pause the Kafka consumer to stop it");
        }
        for p in lock(assigned).partitions.values_mut() {
            // Never started: not committed, so read again by whoever reads the group next.
            p.queued.clear();
        }
        while !running.is_empty() {
            tokio::select! {
                Some(done) = done_rx.recv() => finish(assigned, done),
                Some(_) = running.join_next() => {}
                // Keeps the member in the group (and its callbacks served) while it drains.
                _ = consumer.recv() => {}
            }
        }
        while let Ok(done) = done_rx.try_recv() {
            finish(assigned, done);
        }
        commit(&consumer, assigned, CommitMode::Sync, route);
        consumer.unsubscribe();
        // Closing leaves the group (a blocking call): the successor is assigned at once.
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
    }
}

fn finish(assigned: &Shared, done: Done) {
    let mut assigned = lock(assigned);
    let Some(p) = assigned.partitions.get_mut(&done.tp) else { return };
    if p.epoch != done.epoch {
        return;
    }
    if done.settled {
        p.offsets.insert(done.offset, true);
    }
    p.running -= 1;
    if let Some(key) = &done.key {
        p.busy.remove(key);
    }
}

fn commit(consumer: &StreamConsumer<Context>, assigned: &Shared, mode: CommitMode, route: &str) {
    let (list, moved) = commit_list(&mut lock(assigned));
    if moved.is_empty() {
        return;
    }
    match consumer.commit(&list, mode) {
        Ok(()) => mark_committed(&mut lock(assigned), moved),
        Err(e) => tracing::warn!(route, error = %e, "cannot commit Kafka offsets; retried with the next commit"),
    }
}

/// Pauses or resumes one partition; whether that worked.
fn set_paused(consumer: &StreamConsumer<Context>, (topic, partition): &Tp, pause: bool) -> bool {
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, *partition);
    tracing::debug!(topic, partition, pause, "Kafka partition paused or resumed");
    let result = if pause { consumer.pause(&list) } else { consumer.resume(&list) };
    result.map_err(|e| tracing::warn!(topic, partition, error = %e, pause, "cannot pause/resume a partition")).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_done_prefix_is_committed() {
        let mut p = Partition::new(0);
        for offset in 10..15 {
            p.offsets.insert(offset, false);
        }
        assert_eq!(p.advance(), None);
        p.offsets.insert(11, true);
        p.offsets.insert(12, true);
        assert_eq!(p.advance(), None, "10 is not done: nothing after it may be committed");
        p.offsets.insert(10, true);
        assert_eq!(p.advance(), Some(13));
        p.committed = Some(13);
        assert_eq!(p.advance(), None, "nothing moved since");
        p.offsets.insert(14, true);
        p.offsets.insert(13, true);
        assert_eq!(p.advance(), Some(15));
    }
}
