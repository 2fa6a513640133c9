//! The cache several instances of a project share: rate-limit buckets, idempotency claims,
//! and values with a time to live (read-through caches such as MasterDeal's media plans). In-process by default (`cache: memory`); Redis when `cache: redis://…`.

#[cfg(test)]
mod contract;
mod memory;
mod redis;

use std::time::Duration;

pub use self::redis::RedisCache;
pub use memory::MemoryCache;

/// The longest a claim is kept. Bounds the memory backend's deadlines (an `Instant` plus an
/// absurd TTL would overflow) and keeps both backends' answers the same.
const MAX_CLAIM_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// The cache a project runs with: in-process, or Redis shared by every instance.
#[derive(Debug, Clone)]
pub enum Cache {
    Memory(MemoryCache),
    Redis(RedisCache),
}

/// A token bucket's shape: refilled at `per_second` tokens a second, holding at most `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

/// What a take from a token bucket decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// A token was taken; `remaining` whole tokens are left.
    Allowed { remaining: u32 },
    /// The bucket is empty; a token is back after `retry_after` (at least 1 ms, rounded up).
    Limited { retry_after: Duration },
}

/// An error from the cache. URLs in messages never carry a password.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache setting `{setting}` is not supported: use `memory` or `redis://host:6379/0`")]
    UnsupportedSetting { setting: String },

    #[error("cache URL `{url}` is invalid: {source}; the form is `redis://[user:password@]host[:port][/db]`")]
    InvalidUrl { url: String, source: ::redis::RedisError },

    #[error(
        "cannot connect to the Redis cache at `{url}`: {source}; check that Redis is running and \
         reachable from here, and that the `cache:` URL (host, port, password) is right"
    )]
    Unreachable { url: String, source: ::redis::RedisError },

    #[error(
        "the Redis cache at `{url}` did not answer within {}s; check that Redis is running and \
         that no firewall drops the connection",
        after.as_secs()
    )]
    Timeout { url: String, after: Duration },

    #[error(
        "Redis command `{op}` on `{url}` failed: {source}; check that Redis is reachable (the \
         connection is re-established on its own once it is)"
    )]
    Command { op: &'static str, url: String, source: ::redis::RedisError },

    #[error(
        "rate limit of {per_second} per second with a burst of {burst} is invalid: the rate must \
         be a positive number and the burst at least 1"
    )]
    InvalidRate { per_second: f64, burst: u32 },
}

/// What a `cache:` setting names.
enum Setting<'a> {
    Memory,
    Redis(&'a str),
    Cluster(&'a str),
}

impl<'a> Setting<'a> {
    fn of(setting: &'a str) -> Option<Self> {
        match setting.trim() {
            "memory" => Some(Setting::Memory),
            url if url.starts_with("redis://") || url.starts_with("rediss://") => Some(Setting::Redis(url)),
            url if url.starts_with("redis+cluster://") || url.starts_with("rediss+cluster://") => {
                Some(Setting::Cluster(url))
            }
            _ => None,
        }
    }
}

impl Cache {
    /// An in-process cache of this process's own (what `memory` opens).
    pub fn memory() -> Cache {
        Cache::Memory(MemoryCache::new())
    }

    /// `memory`, a `redis://` / `rediss://` URL, or a Redis Cluster's nodes as
    /// `redis+cluster://host:7000,host:7001,…` (`rediss+cluster://` with TLS; any of them will
    /// do, the rest is discovered). Fails within a few seconds, naming the URL (password
    /// masked), when Redis is unreachable.
    pub async fn open(setting: &str) -> Result<Cache, CacheError> {
        match Setting::of(setting) {
            Some(Setting::Memory) => Ok(Cache::memory()),
            Some(Setting::Redis(url)) => Ok(Cache::Redis(RedisCache::open(url).await?)),
            Some(Setting::Cluster(url)) => Ok(Cache::Redis(RedisCache::open_cluster(url).await?)),
            None => Err(CacheError::UnsupportedSetting { setting: crate::redact::url(setting.trim()) }),
        }
    }

    /// Whether `setting` names a cache [`Cache::open`] can open (checked when a project
    /// loads, without connecting).
    pub fn names_one(setting: &str) -> bool {
        Setting::of(setting).is_some()
    }

    /// Takes one token from bucket `key` (a new bucket starts full). Allowed → the tokens
    /// left; refused → how long until a token is back (for `Retry-After`).
    pub async fn take(&self, key: &str, rate: Rate) -> Result<Decision, CacheError> {
        rate.check()?;
        match self {
            Cache::Memory(memory) => Ok(memory.take(key, rate)),
            Cache::Redis(redis) => redis.take(key, rate).await,
        }
    }

    /// Remembers `key` for `ttl` (at least 1 ms, at most a year); true if it was not there
    /// yet: the first claim wins. For idempotency keys.
    pub async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, CacheError> {
        let ttl = ttl.clamp(Duration::from_millis(1), MAX_CLAIM_TTL);
        match self {
            Cache::Memory(memory) => Ok(memory.claim(key, ttl)),
            Cache::Redis(redis) => redis.claim(key, ttl).await,
        }
    }

    /// Forgets a claim, so the message that made it and then failed can be retried.
    pub async fn release(&self, key: &str) -> Result<(), CacheError> {
        match self {
            Cache::Memory(memory) => {
                memory.release(key);
                Ok(())
            }
            Cache::Redis(redis) => redis.release(key).await,
        }
    }

    /// The value stored under `key`, if it is there and has not expired.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        match self {
            Cache::Memory(memory) => Ok(memory.get(key)),
            Cache::Redis(redis) => redis.get(key).await,
        }
    }

    /// Stores `value` under `key` for `ttl` (at least 1 ms, at most a year), replacing any.
    pub async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        let ttl = ttl.clamp(Duration::from_millis(1), MAX_CLAIM_TTL);
        match self {
            Cache::Memory(memory) => {
                memory.put(key, value, ttl);
                Ok(())
            }
            Cache::Redis(redis) => redis.put(key, value, ttl).await,
        }
    }

    /// Forgets the value under `key`.
    pub async fn remove(&self, key: &str) -> Result<(), CacheError> {
        match self {
            Cache::Memory(memory) => {
                memory.remove(key);
                Ok(())
            }
            Cache::Redis(redis) => redis.remove(key).await,
        }
    }

    /// Checks the cache answers, for readiness probes.
    pub async fn ping(&self) -> Result<(), CacheError> {
        match self {
            Cache::Memory(_) => Ok(()),
            Cache::Redis(redis) => redis.ping().await,
        }
    }

    /// Whether every instance using this cache sees the same one (Redis), not one of its own.
    pub fn is_shared(&self) -> bool {
        matches!(self, Cache::Redis(_))
    }

    /// `memory`, or the Redis URL with any password masked.
    pub fn describe(&self) -> String {
        match self {
            Cache::Memory(_) => "memory".to_owned(),
            Cache::Redis(redis) => redis.url().to_owned(),
        }
    }
}

impl Rate {
    fn check(self) -> Result<(), CacheError> {
        if self.per_second.is_finite() && self.per_second > 0.0 && self.burst >= 1 {
            Ok(())
        } else {
            Err(CacheError::InvalidRate { per_second: self.per_second, burst: self.burst })
        }
    }
}

impl Decision {
    /// The decision for a bucket left holding `tokens` after a take. Both backends come through
    /// here so they round alike: remaining tokens down, the wait up to the next millisecond, and
    /// never a zero wait, which would invite a retry that is sure to fail.
    fn after_take(allowed: bool, tokens: f64, rate: Rate) -> Decision {
        if allowed {
            // `as` saturates, and `tokens` never exceeds `burst`, a u32.
            Decision::Allowed { remaining: tokens.floor() as u32 }
        } else {
            // `as` saturates (NaN gives 0): an absurdly slow rate makes a long wait, not a panic.
            let millis = ((1.0 - tokens) * 1000.0 / rate.per_second).ceil() as u64;
            Decision::Limited { retry_after: Duration::from_millis(millis.max(1)) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_settings_are_refused_without_their_password() {
        let err = Cache::open("memcached://app:s3cret@cache").await.expect_err("memcached is not a cache backend");
        let message = err.to_string();
        assert!(message.contains("memcached://app:***@cache"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[tokio::test]
    async fn impossible_rates_are_refused() {
        let cache = Cache::open("memory").await.expect("memory always opens");
        for rate in [
            Rate { per_second: 0.0, burst: 1 },
            Rate { per_second: -1.0, burst: 1 },
            Rate { per_second: f64::NAN, burst: 1 },
            Rate { per_second: 1.0, burst: 0 },
        ] {
            let err = cache.take("k", rate).await.expect_err("an impossible rate");
            assert!(matches!(err, CacheError::InvalidRate { .. }), "{err}");
        }
    }

    #[test]
    fn waits_round_up_and_are_never_zero() {
        let rate = Rate { per_second: 3.0, burst: 1 };
        assert_eq!(
            Decision::after_take(false, 0.0, rate),
            Decision::Limited { retry_after: Duration::from_millis(334) }
        );
        assert_eq!(
            Decision::after_take(false, 0.999_999_9, rate),
            Decision::Limited { retry_after: Duration::from_millis(1) }
        );
        assert_eq!(Decision::after_take(true, 2.7, rate), Decision::Allowed { remaining: 2 });
    }
}
