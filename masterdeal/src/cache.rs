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

/// Longer than a read takes between its database query and its put.
const SECOND_DELETE_AFTER: Duration = Duration::from_millis(500);

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

    /// Forgets the plan, so the next read sees its change; and again a moment later, for a
    /// read that fetched the old row before the change and puts it back after this removal
    /// (a "delayed double delete"). A failure is logged: the entry then lives out its TTL.
    pub async fn invalidate(&self, id: Uuid) {
        let Some(cache) = &self.cache else { return };
        self.remove(cache, id).await;
        let (this, cache) = (self.clone(), cache.clone());
        tokio::spawn(async move {
            tokio::time::sleep(SECOND_DELETE_AFTER).await;
            this.remove(&cache, id).await;
        });
    }

    async fn remove(&self, cache: &Cache, id: Uuid) {
        if let Err(e) = cache.remove(&key(id)).await {
            self.errors.increment(1);
            tracing::warn!(plan = %id, error = %e, "media plan cache entry could not be removed; it expires within a minute");
        }
    }
}

fn key(id: Uuid) -> String {
    format!("masterdeal:media_plan:{id}")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use junction_engine::cache::Cache;
    use junction_engine::store::Store;
    use serde_json::{Value, json};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinSet;
    use uuid::Uuid;

    use super::PlanCache;
    use crate::connector::ops;
    use crate::domain::PlanStatus;
    use crate::store::{self, test_db};

    fn redis_url() -> String {
        std::env::var("JUNCTION_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
    }

    async fn redis(url: &str) -> Cache {
        Cache::open(url).await.unwrap_or_else(|e| {
            panic!("the plan cache tests need Redis on 127.0.0.1:6379 (or JUNCTION_TEST_REDIS): {e}")
        })
    }

    /// A draft plan of a new deal; its id.
    async fn plan(store: &Store) -> Uuid {
        let crm = format!("crm:{}", Uuid::now_v7());
        let deal = ops::upsert(
            store,
            &json!({
                "external_id": crm, "name": "Cache", "owner": "anna", "budget": "1000", "currency": "RUB",
                "advertiser": { "name": "Romashka LLC", "inn": "7707083893" }, "status": "draft",
            }),
        )
        .await
        .expect("a deal");
        let plan = ops::add_media_plan(
            store,
            &json!({ "deal_id": deal["id"], "lines": [{ "channel": "video", "platform": "vk", "format": "preroll",
                     "flight_from": "2026-03-01", "flight_to": "2026-03-31", "budget": "100" }] }),
        )
        .await
        .expect("a plan");
        plan["id"].as_str().and_then(|s| s.parse().ok()).expect("a plan id")
    }

    /// Reads are served from the cache (a change made behind its back stays unseen) until
    /// the plan is invalidated.
    async fn reads_through_and_invalidates(cache: Cache) {
        let t = test_db::sqlite().await;
        let plans = PlanCache::new(Some(cache));
        let id = plan(&t.store).await;
        assert_eq!(plans.get(&t.store, id).await.expect("read").expect("the plan").status, PlanStatus::Draft);
        store::transition_plan(&t.store, id, 1, PlanStatus::Proposed).await.expect("proposed, not invalidated");
        assert_eq!(
            plans.get(&t.store, id).await.expect("read").expect("the plan").status,
            PlanStatus::Draft,
            "served from the cache"
        );
        plans.invalidate(id).await;
        assert_eq!(plans.get(&t.store, id).await.expect("read").expect("the plan").status, PlanStatus::Proposed);
        assert!(plans.get(&t.store, Uuid::now_v7()).await.expect("read").is_none(), "unknown plans are not cached");
    }

    /// A read that fetched the plan before a change but puts it after the invalidation is
    /// undone by the second, delayed removal.
    #[tokio::test]
    async fn a_stale_put_after_the_invalidation_is_removed_too() {
        let t = test_db::sqlite().await;
        let cache = Cache::open("memory").await.expect("memory");
        let plans = PlanCache::new(Some(cache.clone()));
        let id = plan(&t.store).await;
        let stale = store::get_plan(&t.store, id).await.expect("read").expect("the plan");
        store::transition_plan(&t.store, id, 1, PlanStatus::Proposed).await.expect("proposed");
        plans.invalidate(id).await;
        let bytes = serde_json::to_vec(&stale).expect("json");
        cache.put(&super::key(id), &bytes, super::TTL).await.expect("the racing reader's put");
        assert_eq!(plans.get(&t.store, id).await.expect("read").expect("the plan").status, PlanStatus::Draft);
        tokio::time::sleep(super::SECOND_DELETE_AFTER + Duration::from_millis(300)).await;
        assert_eq!(plans.get(&t.store, id).await.expect("read").expect("the plan").status, PlanStatus::Proposed);
    }

    #[tokio::test]
    async fn memory_reads_through_and_invalidates() {
        reads_through_and_invalidates(Cache::open("memory").await.expect("memory")).await;
    }

    #[tokio::test]
    async fn redis_reads_through_and_invalidates() {
        reads_through_and_invalidates(redis(&redis_url()).await).await;
    }

    /// A TCP relay to Redis that can be cut: the cache talks to Redis through it.
    struct Relay {
        addr: std::net::SocketAddr,
        tasks: JoinSet<()>,
    }

    impl Relay {
        async fn start(target: String) -> Relay {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let mut tasks = JoinSet::new();
            tasks.spawn(async move {
                let mut conns = JoinSet::new();
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let target = target.clone();
                    conns.spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
            });
            Relay { addr, tasks }
        }

        /// Closes the listener and every relayed connection.
        async fn cut(mut self) {
            self.tasks.shutdown().await;
        }
    }

    #[tokio::test]
    async fn a_failing_redis_degrades_to_the_database() {
        let target = redis_url().trim_start_matches("redis://").trim_end_matches('/').to_owned();
        let relay = Relay::start(target).await;
        let t = test_db::sqlite().await;
        let plans = PlanCache::new(Some(redis(&format!("redis://{}", relay.addr)).await));
        let id = plan(&t.store).await;
        assert_eq!(plans.get(&t.store, id).await.expect("read").expect("the plan").status, PlanStatus::Draft);
        relay.cut().await;
        store::transition_plan(&t.store, id, 1, PlanStatus::Proposed).await.expect("proposed");
        // Redis is gone: the invalidation and the read fail over to the database, in time.
        let read = tokio::time::timeout(Duration::from_secs(20), async {
            plans.invalidate(id).await;
            plans.get(&t.store, id).await
        })
        .await
        .expect("a failing cache does not hang the read");
        let plan: Value = serde_json::to_value(read.expect("the read succeeds").expect("the plan")).expect("json");
        assert_eq!(plan["status"], "proposed", "read from the database");
    }
}
