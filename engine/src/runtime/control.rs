//! Routes an admin has paused: their endpoints answer 503 and their sources take nothing
//! new until resumed. Kept by route id, so a paused route stays paused across reloads.

use std::collections::HashSet;
use std::sync::{Arc, PoisonError, RwLock};

#[derive(Clone, Default)]
pub struct Paused(Arc<RwLock<HashSet<String>>>);

impl Paused {
    pub fn is(&self, route: &str) -> bool {
        // The common case, nothing paused, costs one read lock.
        let set = self.0.read().unwrap_or_else(PoisonError::into_inner);
        !set.is_empty() && set.contains(route)
    }

    /// Returns whether it changed.
    pub fn set(&self, route: &str, paused: bool) -> bool {
        let mut set = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if paused { set.insert(route.to_owned()) } else { set.remove(route) }
    }

    /// Waits while `route` is paused; false if `stop` came first.
    pub async fn wait_while_paused(&self, route: &str, stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
        while self.is(route) {
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
                () = super::stopped(stop) => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_and_resumes_by_id() {
        let p = Paused::default();
        assert!(!p.is("a"));
        assert!(p.set("a", true));
        assert!(!p.set("a", true));
        assert!(p.is("a") && !p.is("b"));
        assert!(p.set("a", false));
        assert!(!p.is("a"));
    }
}
