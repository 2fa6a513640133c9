//! The in-process cache: token buckets and claims in two maps, each kept under a fixed number
//! of keys so a flood of distinct client keys cannot grow memory without bound.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{Decision, Rate};

/// Keys each map holds at most: about 100 bytes a bucket, so ~10 MB at worst.
const MAX_KEYS: usize = 100_000;

/// The cache of one process; cheap to clone, all clones share the maps.
#[derive(Clone)]
pub struct MemoryCache {
    inner: Arc<Inner>,
}

struct Inner {
    buckets: Mutex<HashMap<String, Bucket>>,
    /// Each claim's deadline.
    claims: Mutex<HashMap<String, Instant>>,
    /// Stored values and their deadlines.
    values: Mutex<HashMap<String, Stored>>,
    max_keys: usize,
}

/// A value and its deadline.
type Stored = (Instant, Vec<u8>);

struct Bucket {
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
    /// The rate of the last take, to tell whether the bucket has refilled since.
    rate: Rate,
}

impl MemoryCache {
    pub(super) fn new() -> MemoryCache {
        MemoryCache::with_max_keys(MAX_KEYS)
    }

    fn with_max_keys(max_keys: usize) -> MemoryCache {
        let inner = Inner { buckets: Mutex::default(), claims: Mutex::default(), values: Mutex::default(), max_keys };
        MemoryCache { inner: Arc::new(inner) }
    }

    pub(super) fn take(&self, key: &str, rate: Rate) -> Decision {
        self.take_at(key, rate, Instant::now())
    }

    pub(super) fn claim(&self, key: &str, ttl: Duration) -> bool {
        self.claim_at(key, ttl, Instant::now())
    }

    pub(super) fn release(&self, key: &str) {
        lock(&self.inner.claims).remove(key);
    }

    pub(super) fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.get_at(key, Instant::now())
    }

    pub(super) fn put(&self, key: &str, value: &[u8], ttl: Duration) {
        self.put_at(key, value, ttl, Instant::now());
    }

    pub(super) fn remove(&self, key: &str) {
        lock(&self.inner.values).remove(key);
    }

    fn get_at(&self, key: &str, now: Instant) -> Option<Vec<u8>> {
        let values = lock(&self.inner.values);
        values.get(key).filter(|(deadline, _)| *deadline > now).map(|(_, v)| v.clone())
    }

    fn put_at(&self, key: &str, value: &[u8], ttl: Duration, now: Instant) {
        let mut values = lock(&self.inner.values);
        if !values.contains_key(key) {
            make_room(&mut values, self.inner.max_keys, |(deadline, _)| *deadline <= now, |(deadline, _)| *deadline);
        }
        values.insert(key.to_owned(), (now + ttl, value.to_vec()));
    }

    /// Takes at a given time, so tests need not sleep.
    fn take_at(&self, key: &str, rate: Rate, now: Instant) -> Decision {
        let mut buckets = lock(&self.inner.buckets);
        if !buckets.contains_key(key) {
            // A full bucket is what a forgotten key starts with anyway: dropping those first
            // costs no client anything.
            make_room(&mut buckets, self.inner.max_keys, |b| b.is_full(now), |b| b.at);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket { tokens: f64::from(rate.burst), at: now, rate });
        bucket.rate = rate;
        bucket.refill(now);
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        Decision::after_take(allowed, bucket.tokens, rate)
    }

    fn claim_at(&self, key: &str, ttl: Duration, now: Instant) -> bool {
        let mut claims = lock(&self.inner.claims);
        match claims.get_mut(key) {
            Some(deadline) if *deadline > now => false,
            Some(deadline) => {
                *deadline = now + ttl;
                true
            }
            None => {
                // Past the limit, the claims closest to expiring go first, as Redis's
                // `volatile-ttl` policy would.
                make_room(&mut claims, self.inner.max_keys, |deadline| *deadline <= now, |deadline| *deadline);
                claims.insert(key.to_owned(), now + ttl);
                true
            }
        }
    }
}

/// Not derived: printing a cache would print every client key in it.
impl fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCache").field("max_keys", &self.inner.max_keys).finish_non_exhaustive()
    }
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        self.tokens = self.tokens_at(now);
        self.at = now;
    }

    fn tokens_at(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * self.rate.per_second).min(f64::from(self.rate.burst))
    }

    fn is_full(&self, now: Instant) -> bool {
        self.tokens_at(now) >= f64::from(self.rate.burst)
    }
}

/// Every update leaves a map whole, so a lock poisoned by a panic elsewhere still guards
/// consistent data: take it rather than fail every later request.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes room for one more key once `map` holds `max_keys`: drops the entries that are `dead`,
/// then, if that left more than three quarters, the oldest by `age` down to three quarters.
/// Freeing a quarter at a time makes a flood pay one sweep per `max_keys / 4` new keys, not
/// one per key. Forgetting a live entry (a bucket handed back full, a claim lost) is the price
/// of the bound, paid by the oldest entries.
fn make_room<V>(map: &mut HashMap<String, V>, max_keys: usize, dead: impl Fn(&V) -> bool, age: impl Fn(&V) -> Instant) {
    if map.len() < max_keys {
        return;
    }
    map.retain(|_, value| !dead(value));
    let keep = max_keys * 3 / 4;
    if map.len() <= keep {
        return;
    }
    let excess = map.len() - keep;
    let mut by_age: Vec<(Instant, &String)> = map.iter().map(|(key, value)| (age(value), key)).collect();
    by_age.select_nth_unstable_by_key(excess - 1, |(at, _)| *at);
    let oldest: Vec<String> = by_age[..excess].iter().map(|(_, key)| (*key).clone()).collect();
    tracing::warn!(evicted = excess, max_keys, "in-memory cache full of live keys: forgetting the oldest");
    for key in oldest {
        map.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOW: Rate = Rate { per_second: 0.001, burst: 2 };

    #[test]
    fn a_flood_of_keys_keeps_the_bucket_map_bounded() {
        let cache = MemoryCache::with_max_keys(100);
        let start = Instant::now();
        for n in 0..1_000 {
            cache.take_at(&format!("client-{n}"), SLOW, start + Duration::from_millis(n));
            assert!(lock(&cache.inner.buckets).len() <= 100);
        }
        let newest = cache.take_at("client-999", SLOW, start + Duration::from_millis(1_000));
        assert_eq!(newest, Decision::Allowed { remaining: 0 }, "the newest buckets are kept");
    }

    #[test]
    fn full_idle_buckets_are_evicted_before_busy_ones() {
        let cache = MemoryCache::with_max_keys(8);
        let (start, fast) = (Instant::now(), Rate { per_second: 1_000.0, burst: 1 });
        cache.take_at("busy", SLOW, start);
        cache.take_at("busy", SLOW, start);
        for n in 0..100 {
            // Each passer-by is full again 1 ms after its take, long before the next one comes.
            cache.take_at(&format!("passer-by-{n}"), fast, start + Duration::from_millis(10 * n));
            assert!(lock(&cache.inner.buckets).len() <= 8);
        }
        let busy = cache.take_at("busy", SLOW, start + Duration::from_secs(1));
        assert!(matches!(busy, Decision::Limited { .. }), "the busy bucket was kept, still empty");
    }

    #[test]
    fn a_flood_of_claims_keeps_the_claim_map_bounded() {
        let cache = MemoryCache::with_max_keys(100);
        let (start, hour) = (Instant::now(), Duration::from_secs(3600));
        for n in 0..1_000 {
            assert!(cache.claim_at(&format!("key-{n}"), hour, start + Duration::from_millis(n)));
            assert!(lock(&cache.inner.claims).len() <= 100);
        }
        assert!(!cache.claim_at("key-999", hour, start + Duration::from_secs(1)), "the newest claims are kept");
    }

    #[test]
    fn values_expire_and_their_map_stays_bounded() {
        let cache = MemoryCache::with_max_keys(8);
        let (start, second) = (Instant::now(), Duration::from_secs(1));
        cache.put_at("plan", b"v1", second, start);
        assert_eq!(cache.get_at("plan", start + second / 2).as_deref(), Some(&b"v1"[..]));
        assert_eq!(cache.get_at("plan", start + second), None, "expired at its deadline");
        for n in 0..100 {
            cache.put_at(&format!("k{n}"), b"x", second * 10, start + Duration::from_millis(n));
            assert!(lock(&cache.inner.values).len() <= 8);
        }
    }

    #[test]
    fn expired_claims_are_swept_before_live_ones() {
        let cache = MemoryCache::with_max_keys(8);
        let (start, hour) = (Instant::now(), Duration::from_secs(3600));
        assert!(cache.claim_at("live", hour, start));
        for n in 0..100 {
            cache.claim_at(&format!("short-{n}"), Duration::from_millis(5), start + Duration::from_millis(10 * n));
            assert!(lock(&cache.inner.claims).len() <= 8);
        }
        assert!(!cache.claim_at("live", hour, start + Duration::from_secs(1)), "the live claim was kept");
    }
}
