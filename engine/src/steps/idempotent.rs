//! `idempotent`: drops a message whose key was seen within `ttl` (idempotent consumer).
//!
//! Keys are taken in process memory at once, so a duplicate arriving while the first is still
//! on its way is dropped too. The running engine also keeps them once their message was
//! delivered, so a duplicate is recognised after a restart: in Redis when `cache:` is Redis
//! (`SET` with the ttl, per route and step, shared by every instance), else in the store
//! (see [`crate::store::StepAt`]). A failed run records no key, so the dead letter's replay is
//! not mistaken for a duplicate. `junction test`, which has neither, keeps them in memory only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{BuildStep, Outcome, Step, StepError};
use crate::cache::Cache;
use crate::config::duration::ConfigDuration;
use crate::config::node::Pos;
use crate::message::Message;
use crate::route::compile::CompileCx;
use crate::route::pipeline::RunCx;
use crate::script::{Script, ScriptEngine};
use crate::store::{StepAt, Store};

/// Expired keys are deleted from the store once every this many recorded.
const PURGE_EVERY: u64 = 1000;

/// `idempotent: { key: body.id, ttl: 24h }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotentSpec {
    key: Spanned<String>,
    #[serde(default)]
    ttl: Option<ConfigDuration>,
    /// Keys kept at most; the oldest are forgotten first.
    #[serde(default)]
    max_keys: Option<usize>,
}

impl BuildStep for IdempotentSpec {
    fn build(&self, _at: Pos, cx: &mut CompileCx<'_>) -> Option<Arc<dyn Step>> {
        let key = cx.expression(&self.key.value, Pos::of(&self.key))?;
        Some(Arc::new(Idempotent {
            engine: cx.scripts.clone(),
            key,
            ttl: self.ttl.map_or(Duration::from_secs(86_400), |t| t.0),
            max_keys: self.max_keys.unwrap_or(100_000),
            seen: Arc::new(Mutex::new(HashMap::new())),
            stored: kept_in(cx),
            records: Arc::default(),
        }))
    }
}

/// Where a step's keys outlive the process.
#[derive(Clone)]
enum Kept {
    Store(Store, StepAt),
    /// Redis: one key per message key, `junction:idempotent:<route>:<step>:<key>`.
    Cache(Cache, StepAt),
}

fn kept_in(cx: &mut CompileCx<'_>) -> Option<Kept> {
    let (store, cache) = (cx.build.resources.store.clone(), cx.build.resources.cache.clone());
    let at = cx.kept_state("idempotent");
    match (cache, store) {
        (Some(cache), _) if cache.is_shared() => Some(Kept::Cache(cache, at)),
        (_, Some(store)) => Some(Kept::Store(store, at)),
        _ => None,
    }
}

impl Kept {
    fn cache_key(at: &StepAt, key: &str) -> String {
        format!("junction:idempotent:{}:{}:{key}", at.route, at.step)
    }

    async fn seen(&self, key: &str) -> Result<bool, String> {
        match self {
            Kept::Store(store, at) => {
                store.idempotency_seen(at, key, crate::store::now_millis()).await.map_err(|e| e.to_string())
            }
            Kept::Cache(cache, at) => {
                cache.get(&Self::cache_key(at, key)).await.map(|v| v.is_some()).map_err(|e| e.to_string())
            }
        }
    }

    async fn record(&self, key: &str, ttl: Duration, purge: bool) {
        let (result, at) = match self {
            Kept::Store(store, at) => {
                let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
                let expires_at = crate::store::now_millis().saturating_add(ttl);
                let recorded = store.idempotency_record(at, key, expires_at).await.map_err(|e| e.to_string());
                if purge && let Err(error) = store.idempotency_purge(crate::store::now_millis()).await {
                    tracing::warn!(%error, "expired idempotency keys not purged; trying again later");
                }
                (recorded, at)
            }
            // Redis expires its keys itself. (A plain SET with the ttl: the key is written only
            // after delivery, so NX would stop no duplicate that the read before did not.)
            Kept::Cache(cache, at) => {
                (cache.put(&Self::cache_key(at, key), b"1", ttl).await.map_err(|e| e.to_string()), at)
            }
        };
        if let Err(error) = result {
            tracing::warn!(route = at.route, step = at.step, key, %error, "idempotency key not kept; after a restart a duplicate of it would pass");
        }
    }
}

struct Idempotent {
    engine: Arc<ScriptEngine>,
    key: Script,
    ttl: Duration,
    max_keys: usize,
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    /// Where keys outlive the process; `None` for `junction test`.
    stored: Option<Kept>,
    /// Keys recorded in the store by this step, to purge expired ones now and then.
    records: Arc<AtomicU64>,
}

impl Idempotent {
    fn forget(&self, key: &str) {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }

    /// Records `key`; false when it was already there and not expired.
    fn first_sight(&self, key: &str, now: Instant) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.get(key).is_some_and(|&expires| expires > now) {
            return false;
        }
        if seen.len() >= self.max_keys {
            seen.retain(|_, &mut expires| expires > now);
        }
        if seen.len() >= self.max_keys
            && let Some(oldest) = seen.iter().min_by_key(|(_, e)| **e).map(|(k, _)| k.clone())
        {
            seen.remove(&oldest);
        }
        seen.insert(key.to_owned(), now + self.ttl);
        true
    }
}

#[async_trait]
impl Step for Idempotent {
    async fn apply(&self, msg: Message, cx: &RunCx) -> Result<Outcome, StepError> {
        let key = super::eval::eval_key(&self.engine, &self.key, &msg)?;
        if !self.first_sight(&key, Instant::now()) {
            tracing::debug!(route = %cx.route, message_id = %msg.id, key, "duplicate dropped");
            return Ok(Outcome::Drop);
        }
        if let Some(kept) = &self.stored {
            match kept.seen(&key).await {
                Ok(false) => {}
                Ok(true) => {
                    tracing::debug!(route = %cx.route, message_id = %msg.id, key, "duplicate dropped (seen before a restart)");
                    return Ok(Outcome::Drop);
                }
                Err(e) => {
                    self.forget(&key);
                    return Err(StepError::retryable(format!("idempotent cannot read its keys: {e}")));
                }
            }
        }
        let failed = Arc::new(AtomicBool::new(false));
        let (seen, forgotten, k) = (self.seen.clone(), failed.clone(), key.clone());
        cx.on_failure(move || {
            seen.lock().unwrap_or_else(PoisonError::into_inner).remove(&k);
            forgotten.store(true, Ordering::Release);
        });
        if let Some(kept) = &self.stored {
            let purge = self.records.fetch_add(1, Ordering::Relaxed).is_multiple_of(PURGE_EVERY);
            let (kept, ttl) = (kept.clone(), self.ttl);
            cx.on_settled(Box::pin(async move {
                if !failed.load(Ordering::Acquire) {
                    kept.record(&key, ttl, purge).await;
                }
            }));
        }
        Ok(Outcome::One(msg))
    }

    /// Reading the store's keys can fail for a moment and pass on a retry.
    fn calls_out(&self) -> bool {
        self.stored.is_some()
    }
}
