//! Media plans, read through the project's cache (in-process, or Redis with
//! `cache: redis://…`) and invalidated on every change. A cache that fails is logged and
//! bypassed: the read goes to the database, the request never fails for it.

use std::time::Duration;

use junction_engine::cache::Cache;
use junction_engine::store::Store;
use metrics::{Counter, counter};
use uuid::Uuid;

use crate::store::{self, MasterDealStoreError, PlanRow};

/// A bound on staleness should an invalidation be lost (an instance dying between its write
/// and its delete, or a read that raced a write and put the older row back).
const TTL: Duration = Duration::from_secs(60);

/// The read-through cache of media plans by id.
#[derive(Clone)]
pub struct PlanCache {
    /// `None` under `junction check`, or for a connector built without the engine's cache.
    cache: Option<Cache>,
    hits: Counter,
    misses: Counter,
    errors: Counter,
}

impl PlanCache {
    pub fn new(cache: Option<Cache>) -> Self {
        let name = "junction_masterdeal_plan_cache_total";
        Self {
            cache,
            hits: counter!(name, "result" => "hit"),
            misses: counter!(name, "result" => "miss"),
            errors: counter!(name, "result" => "error"),
        }
    }

    /// The plan, from the cache when it is there, else from the database (and then cached).
    pub async fn get(&self, store: &Store, id: Uuid) -> Result<Option<PlanRow>, MasterDealStoreError> {
        let Some(cache) = &self.cache else { return store::get_plan(store, id).await };
        let key = key(id);
        match cache.get(&key).await {
            Ok(Some(bytes)) => match serde_json::from_slice::<PlanRow>(&bytes) {
                Ok(plan) => {
                    self.hits.increment(1);
                    return Ok(Some(plan));
                }
                // Written by another version of Junction, say: the database has the truth.
                Err(e) => {
                    tracing::warn!(plan = %id, error = %e, "cached media plan does not decode; reading the database")
                }
            },
            Ok(None) => {}
            Err(e) => {
                self.errors.increment(1);
                tracing::warn!(plan = %id, error = %e, "media plan cache unavailable; reading the database");
            }
        }
        self.misses.increment(1);
        let plan = store::get_plan(store, id).await?;
        if let Some(plan) = &plan {
            let bytes = serde_json::to_vec(plan).expect("a plan row always serializes");
            if let Err(e) = cache.put(&key, &bytes, TTL).await {
                self.errors.increment(1);
                tracing::warn!(plan = %id, error = %e, "media plan could not be cached");
            }
        }
        Ok(plan)
    }

    /// Forgets the plan, so the next read sees its change. A failure is logged: the entry
    /// then lives out its TTL.
    pub async fn invalidate(&self, id: Uuid) {
        if let Some(cache) = &self.cache
            && let Err(e) = cache.remove(&key(id)).await
        {
            self.errors.increment(1);
            tracing::warn!(plan = %id, error = %e, "media plan cache entry could not be removed; it expires within a minute");
        }
    }
}

fn key(id: Uuid) -> String {
    format!("masterdeal:media_plan:{id}")
}
