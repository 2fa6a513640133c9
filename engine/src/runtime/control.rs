//! Routes an admin has paused: their endpoints answer 503 and their sources take nothing new
//! until resumed. Kept by route id in the store, so a pause holds for every instance sharing
//! it and across restarts and reloads; each instance reads the stored set every second and
//! answers from its copy in memory.

use std::collections::HashSet;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::store::{Store, StoreError};

/// How often an instance reads the stored pauses (so another instance's pause or resume is
/// seen here within this long).
const REFRESH: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Paused {
    routes: Arc<RwLock<HashSet<String>>>,
    store: Store,
}

impl Paused {
    /// Pauses kept in `store`, read from it now.
    pub async fn load(store: Store) -> Result<Self, StoreError> {
        let paused = Self { routes: Arc::default(), store };
        paused.refresh().await?;
        Ok(paused)
    }

    pub fn is(&self, route: &str) -> bool {
        // The common case, nothing paused, costs one read lock.
        let set = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        !set.is_empty() && set.contains(route)
    }

    /// Pauses or resumes `route` for every instance; whether the stored state changed.
    pub async fn set(&self, route: &str, paused: bool) -> Result<bool, StoreError> {
        let changed = self.store.set_paused(route, paused).await?;
        let mut set = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        if paused {
            set.insert(route.to_owned())
        } else {
            set.remove(route)
        };
        Ok(changed)
    }

    /// Reads the stored pauses again.
    async fn refresh(&self) -> Result<(), StoreError> {
        let now: HashSet<String> = self.store.paused_routes().await?.into_iter().collect();
        *self.routes.write().unwrap_or_else(PoisonError::into_inner) = now;
        Ok(())
    }

    /// Keeps reading the stored pauses until `stop`; a store that fails keeps the last ones.
    pub async fn follow(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut every = tokio::time::interval(REFRESH);
        loop {
            tokio::select! {
                _ = every.tick() => if let Err(error) = self.refresh().await {
                    tracing::warn!(%error, "cannot read the paused routes; keeping the last known");
                },
                () = super::stopped(&mut stop) => return,
            }
        }
    }

    /// Waits while `route` is paused; false if `stop` came first.
    pub async fn wait_while_paused(&self, route: &str, stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
        while self.is(route) {
            if !super::slept(Duration::from_millis(100), stop).await {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pauses_hold_for_every_instance_sharing_the_store(store: Store) {
        let (a, b) =
            (Paused::load(store.clone()).await.expect("load"), Paused::load(store.clone()).await.expect("load"));
        assert!(!a.is("r"));
        assert!(a.set("r", true).await.expect("pause"));
        assert!(!a.set("r", true).await.expect("pause again"));
        assert!(a.is("r") && !a.is("other"));
        assert!(!b.is("r"), "b has not read the store yet");
        b.refresh().await.expect("refresh");
        assert!(b.is("r"), "a pause by one instance holds for another");
        let restarted = Paused::load(store).await.expect("load");
        assert!(restarted.is("r"), "and across a restart");
        assert!(b.set("r", false).await.expect("resume"));
        a.refresh().await.expect("refresh");
        assert!(!a.is("r"));
    }

    crate::store::test_support::on_both_backends!(pauses_hold_for_every_instance_sharing_the_store);
}
