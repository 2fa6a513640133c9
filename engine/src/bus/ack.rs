//! Acks: which deliveries of a subscription are done, and committing them.
//!
//! Deliveries are processed concurrently, so acks arrive in any order. Like a Kafka
//! consumer, a group's committed offset only moves over the contiguous prefix of acked
//! offsets: everything up to it is done, everything after it is delivered again to the
//! group's next subscription (at-least-once).

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;

use super::log;
use crate::store::Store;

/// The ack state of one subscription, shared by it and its outstanding deliveries.
#[derive(Debug)]
pub(super) struct AckTracker {
    pub(super) group: String,
    pub(super) topic: String,
    /// Delivered offsets, oldest first, with whether each was acked. Only the entries from
    /// the oldest unacked one on are kept.
    outstanding: Mutex<VecDeque<(i64, bool)>>,
    /// The end of the acked prefix. A watch, so the committer sees only the latest value
    /// however many acks came in between: commits batch themselves.
    acked_through: watch::Sender<i64>,
}

impl AckTracker {
    /// A tracker starting at the group's committed offset, and the receiver the committer
    /// listens on.
    pub(super) fn new(group: &str, topic: &str, committed: i64) -> (Self, watch::Receiver<i64>) {
        let (acked_through, rx) = watch::channel(committed);
        let tracker = AckTracker {
            group: group.to_owned(),
            topic: topic.to_owned(),
            outstanding: Mutex::default(),
            acked_through,
        };
        (tracker, rx)
    }

    /// Records a delivery. Offsets are delivered in increasing order.
    pub(super) fn delivered(&self, offset: i64) {
        self.outstanding().push_back((offset, false));
    }

    pub(super) fn ack(&self, offset: i64) {
        let mut outstanding = self.outstanding();
        if let Ok(i) = outstanding.binary_search_by_key(&offset, |&(o, _)| o) {
            outstanding[i].1 = true;
        }
        let mut through = None;
        while let Some(&(o, true)) = outstanding.front() {
            through = Some(o);
            outstanding.pop_front();
        }
        // Sent while the lock is held, so the prefix end never appears to move backwards.
        if let Some(o) = through {
            self.acked_through.send_replace(o);
        }
    }

    pub(super) fn acked_through(&self) -> i64 {
        *self.acked_through.borrow()
    }

    fn outstanding(&self) -> std::sync::MutexGuard<'_, VecDeque<(i64, bool)>> {
        // The lock guards plain data updated in single steps; a panic elsewhere cannot
        // leave it half-changed, so a poisoned lock is still good to use.
        self.outstanding.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Commits the acked prefix whenever it moves, until the subscription and all its
/// deliveries are gone, then once more. A commit that fails is logged and retried at the
/// next ack; if none comes, those messages are delivered again, which at-least-once allows.
pub(super) async fn run_committer(
    store: Store,
    group: String,
    topic: String,
    mut acked_through: watch::Receiver<i64>,
    mut committed: i64,
) {
    loop {
        let finished = acked_through.changed().await.is_err();
        let through = *acked_through.borrow_and_update();
        if through > committed {
            match log::commit(&store, &group, &topic, through).await {
                Ok(()) => committed = through,
                Err(error) => tracing::warn!(
                    %error, group, topic, offset = through,
                    "could not commit bus offset; will retry at the next ack"
                ),
            }
        }
        if finished {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AckTracker;

    #[test]
    fn only_the_contiguous_prefix_counts_as_acked() {
        let (t, _rx) = AckTracker::new("g", "t", 0);
        for offset in [3, 5, 8, 9] {
            t.delivered(offset);
        }
        t.ack(5);
        t.ack(9);
        assert_eq!(t.acked_through(), 0, "3 is still out");
        t.ack(3);
        assert_eq!(t.acked_through(), 5, "8 is still out");
        t.ack(8);
        assert_eq!(t.acked_through(), 9);
    }
}
