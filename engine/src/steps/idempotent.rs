//! `idempotent`: drops a message whose key was seen within `ttl` (idempotent consumer).
//!
//! Keys are taken in process memory at once, so a duplicate arriving while the first is still
//! on its way is dropped too. The running engine also keeps them in the store once their
//! message was delivered (see [`crate::store::StepAt`]), so a duplicate is recognised after a
//! restart. A failed run forgets its key in both, so the dead letter's replay is not mistaken
//! for a duplicate. `junction test`, which has no store, keeps them in memory only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{BuildStep, Outcome, Step, StepError};
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
            stored: cx.build.resources.store.clone().map(|store| (store, cx.kept_state("idempotent"))),
            records: Arc::default(),
        }))
    }
}

struct Idempotent {
    engine: Arc<ScriptEngine>,
    key: Script,
    ttl: Duration,
    max_keys: usize,
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    /// Where keys outlive the process; `None` for `junction test`.
    stored: Option<(Store, StepAt)>,
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
        if let Some((store, at)) = &self.stored {
            match store.idempotency_seen(at, &key, crate::store::now_millis()).await {
                Ok(false) => {}
                Ok(true) => {
                    tracing::debug!(route = %cx.route, message_id = %msg.id, key, "duplicate dropped (seen before a restart)");
                    return Ok(Outcome::Drop);
                }
                Err(e) => {
                    self.forget(&key);
                    return Err(StepError::retryable(format!("idempotent cannot read its keys in the store: {e}")));
                }
            }
        }
        let failed = Arc::new(AtomicBool::new(false));
        let (seen, forgotten, k) = (self.seen.clone(), failed.clone(), key.clone());
        cx.on_failure(move || {
            seen.lock().unwrap_or_else(PoisonError::into_inner).remove(&k);
            forgotten.store(true, Ordering::Release);
        });
        if let Some((store, at)) = &self.stored {
            let ttl = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
            let expires_at = crate::store::now_millis().saturating_add(ttl);
            let purge = self.records.fetch_add(1, Ordering::Relaxed).is_multiple_of(PURGE_EVERY);
            let (store, at) = (store.clone(), at.clone());
            cx.on_settled(Box::pin(async move {
                if failed.load(Ordering::Acquire) {
                    return;
                }
                if let Err(error) = store.idempotency_record(&at, &key, expires_at).await {
                    tracing::warn!(route = at.route, step = at.step, key, %error, "idempotency key not stored; after a restart a duplicate of it would pass");
                }
                if purge && let Err(error) = store.idempotency_purge(crate::store::now_millis()).await {
                    tracing::warn!(%error, "expired idempotency keys not purged; trying again later");
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
