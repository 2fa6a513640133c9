//! The cache's contract, one test body run against the memory backend, a Redis server and a
//! Redis Cluster alike.
//!
//! Redis tests use the server at `JUNCTION_TEST_REDIS` (default `redis://127.0.0.1:6379`) and
//! the cluster at `JUNCTION_TEST_REDIS_CLUSTER` (default the three nodes scripts/test starts
//! on 127.0.0.1:7000–7002), with fresh keys per test, so runs never collide. No server is a
//! failure, never a skip.

use std::time::Duration;

use tokio::task::JoinSet;

use super::{Cache, Decision, Rate};

/// Runs each named `async fn(Cache)` as three tests: `memory::<name>`, `redis::<name>` and
/// `redis_cluster::<name>`.
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Cache::open("memory").await.expect("memory always opens")).await;
                }
            )+
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::test_redis().await).await;
                }
            )+
        }
        mod redis_cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::test_redis_cluster().await).await;
                }
            )+
        }
    };
}

on_both_backends!(
    a_burst_allows_exactly_that_many_then_limits,
    tokens_come_back_over_time,
    fractional_rates_and_bursts_of_one_work,
    the_first_claim_wins_until_released_or_expired,
    concurrent_takes_allow_exactly_the_burst,
    values_are_kept_replaced_removed_and_expire,
);

pub(super) fn redis_url() -> String {
    std::env::var("JUNCTION_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

pub(super) async fn test_redis() -> Cache {
    let url = redis_url();
    Cache::open(&url).await.unwrap_or_else(|e| {
        panic!(
            "the Redis tests need Redis on 127.0.0.1:6379 (or set JUNCTION_TEST_REDIS to another \
             redis:// URL): {e}"
        )
    })
}

pub(super) fn redis_cluster_url() -> String {
    std::env::var("JUNCTION_TEST_REDIS_CLUSTER")
        .unwrap_or_else(|_| "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002".to_owned())
}

pub(super) async fn test_redis_cluster() -> Cache {
    let url = redis_cluster_url();
    Cache::open(&url).await.unwrap_or_else(|e| {
        panic!(
            "the Redis Cluster tests need a cluster on 127.0.0.1:7000-7002 (scripts/test starts one; \
             or set JUNCTION_TEST_REDIS_CLUSTER to another redis+cluster:// URL): {e}"
        )
    })
}

/// A key no other test or run uses.
pub(super) fn unique(name: &str) -> String {
    format!("test:{name}:{}", uuid::Uuid::now_v7())
}

async fn take(cache: &Cache, key: &str, rate: Rate) -> Decision {
    cache.take(key, rate).await.unwrap_or_else(|e| panic!("take from {}: {e}", cache.describe()))
}

/// The wait a limited take reports.
async fn wait(cache: &Cache, key: &str, rate: Rate) -> Duration {
    match take(cache, key, rate).await {
        Decision::Limited { retry_after } => retry_after,
        allowed => panic!("expected a limit, got {allowed:?}"),
    }
}

async fn a_burst_allows_exactly_that_many_then_limits(cache: Cache) {
    let (key, rate) = (unique("burst"), Rate { per_second: 2.0, burst: 3 });
    for remaining in [2, 1, 0] {
        assert_eq!(take(&cache, &key, rate).await, Decision::Allowed { remaining });
    }
    let retry_after = wait(&cache, &key, rate).await;
    assert!((Duration::from_millis(400)..=Duration::from_millis(500)).contains(&retry_after), "{retry_after:?}");
}

async fn tokens_come_back_over_time(cache: Cache) {
    let (key, rate) = (unique("refill"), Rate { per_second: 50.0, burst: 1 });
    assert_eq!(take(&cache, &key, rate).await, Decision::Allowed { remaining: 0 });
    let retry_after = wait(&cache, &key, rate).await;
    assert!((Duration::from_millis(1)..=Duration::from_millis(20)).contains(&retry_after), "{retry_after:?}");
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(take(&cache, &key, rate).await, Decision::Allowed { remaining: 0 });
}

async fn fractional_rates_and_bursts_of_one_work(cache: Cache) {
    let (key, rate) = (unique("fractional"), Rate { per_second: 0.5, burst: 1 });
    assert_eq!(take(&cache, &key, rate).await, Decision::Allowed { remaining: 0 });
    let retry_after = wait(&cache, &key, rate).await;
    assert!((Duration::from_millis(1_900)..=Duration::from_secs(2)).contains(&retry_after), "{retry_after:?}");
}

async fn the_first_claim_wins_until_released_or_expired(cache: Cache) {
    let (key, long) = (unique("claim"), Duration::from_secs(60));
    let claim = |key: String, ttl| {
        let cache = cache.clone();
        async move { cache.claim(&key, ttl).await.expect("claim") }
    };
    assert!(claim(key.clone(), long).await);
    assert!(!claim(key.clone(), long).await, "a second claim loses");
    cache.release(&key).await.expect("release");
    assert!(claim(key.clone(), long).await, "released keys can be claimed again");

    let short = unique("short-claim");
    assert!(claim(short.clone(), Duration::from_millis(50)).await);
    assert!(!claim(short.clone(), Duration::from_millis(50)).await);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(claim(short, Duration::from_millis(50)).await, "claims expire after their ttl");
}

async fn concurrent_takes_allow_exactly_the_burst(cache: Cache) {
    let (key, rate) = (unique("concurrent"), Rate { per_second: 0.001, burst: 10 });
    let mut takes = JoinSet::new();
    for _ in 0..50 {
        let (cache, key) = (cache.clone(), key.clone());
        takes.spawn(async move { take(&cache, &key, rate).await });
    }
    let allowed = takes.join_all().await.iter().filter(|d| matches!(d, Decision::Allowed { .. })).count();
    assert_eq!(allowed, 10);
    cache.ping().await.expect("ping");
}

async fn values_are_kept_replaced_removed_and_expire(cache: Cache) {
    let key = unique("value");
    assert_eq!(cache.get(&key).await.expect("get"), None);
    cache.put(&key, b"one", Duration::from_secs(10)).await.expect("put");
    assert_eq!(cache.get(&key).await.expect("get").as_deref(), Some(&b"one"[..]));
    cache.put(&key, b"two", Duration::from_secs(10)).await.expect("put");
    assert_eq!(cache.get(&key).await.expect("get").as_deref(), Some(&b"two"[..]), "replaced");
    cache.remove(&key).await.expect("remove");
    assert_eq!(cache.get(&key).await.expect("get"), None, "removed");
    cache.put(&key, b"brief", Duration::from_millis(50)).await.expect("put");
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(cache.get(&key).await.expect("get"), None, "expired");
}
