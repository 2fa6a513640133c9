//! The engine's side of every consumer: a route's [`Inbox`]. It bounds the messages in flight
//! with the route's permits, holds back while an admin has the route paused or a breaker of a
//! connector it calls is open, and delivers
//! each message with the route's retries, dead letters, metrics and spans.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::connector::{Admission, Delivery, Inbox};
use crate::message::Message;
use crate::route::Route;
use crate::runtime::control::Paused;
use crate::store::Store;

pub struct RouteInbox {
    route: Arc<Route>,
    store: Store,
    paused: Paused,
    /// The process's stop; see [`super::SourceCx::stopping`].
    stopping: watch::Receiver<bool>,
}

impl RouteInbox {
    pub fn new(route: Arc<Route>, store: Store, paused: Paused, stopping: watch::Receiver<bool>) -> Self {
        Self { route, store, paused, stopping }
    }
}

/// How often a route held back by an open breaker looks again.
const BREAKER_POLL: Duration = Duration::from_millis(100);

impl RouteInbox {
    /// Whether a connector the route calls has its breaker open: its calls would fail at once,
    /// so the source leaves the messages where they are (a backlog, not dead letters).
    fn held_by_a_breaker(&self) -> bool {
        self.route.guards.iter().any(|g| g.is_open())
    }
}

#[async_trait]
impl Inbox for RouteInbox {
    fn route(&self) -> &str {
        &self.route.id
    }

    fn max_in_flight(&self) -> usize {
        self.route.max_in_flight
    }

    async fn admit(&self, stop: &mut watch::Receiver<bool>) -> Option<Admission> {
        loop {
            if !self.paused.wait_while_paused(&self.route.id, stop).await {
                return None;
            }
            if !self.held_by_a_breaker() {
                break;
            }
            if !crate::runtime::slept(BREAKER_POLL, stop).await {
                return None;
            }
        }
        tokio::select! {
            permit = self.route.permits.clone().acquire_owned() => permit.ok().map(Admission::new),
            () = crate::runtime::stopped(stop) => None,
        }
    }

    fn try_admit(&self) -> Option<Admission> {
        if self.paused.is(&self.route.id) || self.held_by_a_breaker() {
            return None;
        }
        self.route.permits.clone().try_acquire_owned().ok().map(Admission::new)
    }

    async fn deliver(&self, msg: Message, admission: Admission) -> Delivery {
        let delivery = super::deliver_surely(&self.route, 0, msg, &self.store, Some(&self.stopping)).await;
        drop(admission);
        delivery
    }
}
