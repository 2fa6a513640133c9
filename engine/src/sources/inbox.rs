//! The engine's side of every consumer: a route's [`Inbox`]. It bounds the messages in flight
//! with the route's permits, holds back while an admin has the route paused, and delivers
//! each message with the route's retries, dead letters, metrics and spans.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::connector::{Admission, Inbox};
use crate::message::Message;
use crate::route::Route;
use crate::runtime::control::Paused;
use crate::store::Store;

pub struct RouteInbox {
    route: Arc<Route>,
    store: Store,
    paused: Paused,
}

impl RouteInbox {
    pub fn new(route: Arc<Route>, store: Store, paused: Paused) -> Self {
        Self { route, store, paused }
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
        if !self.paused.wait_while_paused(&self.route.id, stop).await {
            return None;
        }
        tokio::select! {
            permit = self.route.permits.clone().acquire_owned() => permit.ok().map(Admission::new),
            () = crate::runtime::stopped(stop) => None,
        }
    }

    fn try_admit(&self) -> Option<Admission> {
        if self.paused.is(&self.route.id) {
            return None;
        }
        self.route.permits.clone().try_acquire_owned().ok().map(Admission::new)
    }

    async fn deliver(&self, msg: Message, admission: Admission) {
        super::deliver_surely(&self.route, 0, msg, &self.store).await;
        drop(admission);
    }
}
