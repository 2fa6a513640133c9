//! `idempotent`: drops a message whose key was seen within `ttl` (idempotent consumer).
//! Keys live in process memory for now; a failed run forgets its key, so the dead letter's
//! replay is not mistaken for a duplicate.

use std::collections::HashMap;
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
        }))
    }
}

struct Idempotent {
    engine: Arc<ScriptEngine>,
    key: Script,
    ttl: Duration,
    max_keys: usize,
    seen: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Idempotent {
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
        let seen = self.seen.clone();
        cx.on_failure(move || {
            seen.lock().unwrap_or_else(PoisonError::into_inner).remove(&key);
        });
        Ok(Outcome::One(msg))
    }
}
