//! Where messages come from. HTTP requests are served by the [`crate::gateway`]; this module
//! runs the sources that are tasks: a route's consumer (a connector's, or the bus queue of an
//! `async: true` http route), schedules, and the timers of stateful steps. Each holds a route
//! permit per message in flight and acks only after delivery.

mod inbox;
mod schedule;
mod timed;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::connector::Delivery;
use crate::route::{Route, Source};
use crate::runtime::control::Paused;
use crate::store::Store;

pub use inbox::RouteInbox;

/// The (topic, consumer group) pairs a route reads.
pub fn consumes(route: &Route) -> Vec<(String, String)> {
    route.consumer().map(|c| c.groups()).unwrap_or_default()
}

/// What source tasks share.
#[derive(Clone)]
pub struct SourceCx {
    pub store: Store,
    /// Turns true when the source should stop taking new messages.
    pub stop: watch::Receiver<bool>,
    /// Turns true when the process stops (not on a reload, which lets the old version drain):
    /// a consumer's message waiting to be retried is then left unacked, not waited for.
    pub stopping: watch::Receiver<bool>,
    /// Routes an admin paused: their sources take nothing new meanwhile.
    pub paused: Paused,
    /// This process among the instances sharing the store (it names the leases it holds).
    pub instance: Arc<str>,
}

/// Starts the tasks that feed `route`; synchronous http routes need none.
pub fn start(route: &Arc<Route>, cx: &SourceCx) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let Some(consumer) = route.consumer() {
        let inbox: Arc<dyn crate::connector::Inbox> =
            Arc::new(RouteInbox::new(route.clone(), cx.store.clone(), cx.paused.clone(), cx.stopping.clone()));
        let consumer = consumer.clone();
        let task = crate::connector::Task {
            name: format!("consumer.{}", route.id),
            once: consumer.exclusive(),
            run: Arc::new(move |stop| {
                let (consumer, inbox) = (consumer.clone(), inbox.clone());
                Box::pin(async move { consumer.run(inbox, stop).await })
            }),
        };
        tasks.push(crate::runtime::tasks::spawn(task, cx.store.clone(), cx.instance.clone(), cx.stop.clone()));
    } else if let Source::Schedule(_) = &route.source {
        // One instance fires each tick: the schedule runs where its lease is held, and moves
        // (carrying on from the stored last fire) when that instance dies.
        let (route, source_cx) = (route.clone(), cx.clone());
        let task = crate::connector::Task {
            name: format!("schedule.{}", route.id),
            once: true,
            run: Arc::new(move |stop| {
                let cx = SourceCx { stop, ..source_cx.clone() };
                Box::pin(schedule::run(route.clone(), cx))
            }),
        };
        tasks.push(crate::runtime::tasks::spawn(task, cx.store.clone(), cx.instance.clone(), cx.stop.clone()));
    }
    for (index, entry) in route.pipeline.steps.iter().enumerate() {
        if entry.step.timed().is_some() {
            tasks.push(tokio::spawn(timed::run(route.clone(), index, cx.clone())));
        }
    }
    tasks
}

/// Delivers until the message is done or dead-lettered; only a store that cannot even keep
/// the dead letter makes it wait and try again, so nothing taken is dropped. Given the
/// process's `stopping`, a stop meanwhile leaves the message instead (see
/// [`crate::runtime::deliver::deliver_or_leave`]).
async fn deliver_surely(
    route: &Route,
    start: usize,
    msg: crate::message::Message,
    store: &Store,
    stopping: Option<&watch::Receiver<bool>>,
) -> Delivery {
    let mut wait = Duration::from_millis(200);
    loop {
        let result = match stopping {
            Some(stopping) => {
                crate::runtime::deliver::deliver_or_leave(route, start, msg.clone(), store, stopping).await
            }
            None => crate::runtime::deliver::deliver_from(route, start, msg.clone(), store).await.map(Some),
        };
        match result {
            Ok(Some(_)) => return Delivery::Settled,
            Ok(None) => return Delivery::Left,
            Err(e) => {
                tracing::error!(route = %route.id, message_id = %msg.id, error = %e, "cannot deliver or dead-letter; retrying");
                if let Some(stopping) = stopping {
                    if !crate::runtime::slept(wait, &mut stopping.clone()).await {
                        return Delivery::Left;
                    }
                } else {
                    tokio::time::sleep(wait).await;
                }
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}
