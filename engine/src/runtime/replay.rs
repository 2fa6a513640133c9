//! Replaying a dead letter: its original message through its route again, once.

use super::deliver::{Delivered, deliver_from};
use crate::message::{Body, Headers};
use crate::route::RouteTable;
use crate::route::pipeline::Failure;
use crate::store::{Store, StoreError};

/// How a replay ended.
#[derive(Debug)]
pub enum Replayed {
    Done,
    /// The route failed again; the message is a new dead letter.
    FailedAgain {
        failure: Failure,
        dead_letter_id: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no dead letter {0}; `junction dead-letters list --all` shows them")]
    NotFound(String),
    #[error("dead letter {0} was already replayed")]
    AlreadyReplayed(String),
    #[error("route {0} no longer exists, so its dead letters cannot be replayed")]
    RouteGone(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Replays dead letter `id`. It is claimed before it is delivered, so two replays of one dead
/// letter (twice in a row, or at once) cannot both send it. Replay starts where the message
/// entered the route: the first step, or the step after the aggregate that made it.
pub async fn replay(table: &RouteTable, store: &Store, id: &str) -> Result<Replayed, ReplayError> {
    replay_edited(table, store, id, None).await
}

/// An admin's change to a dead letter's message before it is replayed.
#[derive(Debug, Clone)]
pub struct Edit {
    pub headers: Headers,
    pub body: Body,
}

/// Replays dead letter `id` with its headers and body replaced by `edit` (its id, trace and
/// the step it resumes at stay). The dead letter keeps the original; what was sent is
/// recorded beside it.
pub async fn replay_edited(
    table: &RouteTable,
    store: &Store,
    id: &str,
    edit: Option<Edit>,
) -> Result<Replayed, ReplayError> {
    let dead = store.get_dead_letter(id).await?.ok_or_else(|| ReplayError::NotFound(id.to_owned()))?;
    if dead.replayed_at.is_some() {
        return Err(ReplayError::AlreadyReplayed(id.to_owned()));
    }
    let route = table.get(&dead.route).ok_or_else(|| ReplayError::RouteGone(dead.route.clone()))?;
    let mut message = dead.message;
    let edited = edit.map(|e| {
        message.headers = e.headers;
        message.body = e.body;
        &message
    });
    if !store.mark_dead_letter_replayed_with(id, edited).await? {
        return Err(ReplayError::AlreadyReplayed(id.to_owned()));
    }
    let start = message.meta.resume_at;
    Ok(match deliver_from(route, start, message, store).await? {
        Delivered::Done(_) => Replayed::Done,
        Delivered::DeadLettered { failure, dead_letter_id } => Replayed::FailedAgain { failure, dead_letter_id },
    })
}
