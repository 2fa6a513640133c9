//! `aggregate`: collects messages with the same correlation key into one, when `size` of them
//! arrived or `timeout` passed since the first. Groups are held in memory, at most
//! `max_groups` of them (default 10 000): a message that would open one more completes the
//! oldest open group early, so a stream of ever-new keys cannot grow the map without end. A
//! clean stop releases incomplete groups down the route, but a crash loses them (like Camel's
//! default in-memory aggregation repository); a durable repository in the store is still to
//! come.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::{BuildStep, Outcome, Step, StepError, Timed};
use crate::config::duration::ConfigDuration;
use crate::config::node::Pos;
use crate::message::{Body, Headers, Message};
use crate::route::compile::CompileCx;
use crate::route::pipeline::RunCx;
use crate::script::{Script, ScriptEngine};

/// `aggregate: { key: body.deal_id, size: 10, timeout: 5s }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateSpec {
    /// The correlation key expression.
    key: Spanned<String>,
    /// Complete a group when it has this many messages.
    #[serde(default)]
    size: Option<usize>,
    /// Complete a group this long after its first message.
    #[serde(default)]
    timeout: Option<ConfigDuration>,
    /// Open groups held at most; one more completes the oldest early.
    #[serde(default)]
    max_groups: Option<usize>,
}

/// Open groups an aggregate holds unless `max_groups` says otherwise.
const MAX_GROUPS: usize = 10_000;

impl BuildStep for AggregateSpec {
    fn build(&self, at: Pos, cx: &mut CompileCx<'_>) -> Option<Arc<dyn Step>> {
        if !cx.top_level {
            cx.error(at, "aggregate keeps state across messages: put it in the route's own steps, not in a branch");
            return None;
        }
        if self.size.is_none() && self.timeout.is_none() {
            cx.error(at, "aggregate needs `size`, `timeout` or both, or a group would never complete");
            return None;
        }
        if self.max_groups == Some(0) {
            cx.error(at, "aggregate `max_groups` is 0, so no group could ever open: allow at least 1");
            return None;
        }
        let key = cx.expression(&self.key.value, Pos::of(&self.key))?;
        Some(Arc::new(Aggregate {
            engine: cx.scripts.clone(),
            key,
            size: self.size.unwrap_or(usize::MAX),
            timeout: self.timeout.map(|t| t.0),
            max_groups: self.max_groups.unwrap_or(MAX_GROUPS),
            groups: Mutex::new(HashMap::new()),
        }))
    }
}

pub struct Aggregate {
    engine: Arc<ScriptEngine>,
    key: Script,
    size: usize,
    timeout: Option<Duration>,
    max_groups: usize,
    groups: Mutex<HashMap<String, Group>>,
}

struct Group {
    started: Instant,
    headers: Headers,
    bodies: Vec<Value>,
}

impl Aggregate {
    fn complete(key: String, group: Group) -> Message {
        let mut msg = Message::json(Value::Array(group.bodies));
        msg.headers = group.headers;
        msg.headers.insert("aggregate_key".into(), Value::String(key));
        msg
    }
}

#[async_trait]
impl Step for Aggregate {
    async fn apply(&self, msg: Message, _cx: &RunCx) -> Result<Outcome, StepError> {
        let key = super::eval::eval_key(&self.engine, &self.key, &msg)?;
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        // Full: the oldest open group completes now, to make room, and goes on down the route.
        let mut released = None;
        if groups.len() >= self.max_groups && !groups.contains_key(&key) {
            let oldest = groups.iter().min_by_key(|(_, g)| g.started).map(|(k, _)| k.clone());
            released = oldest.and_then(|k| groups.remove(&k).map(|g| Self::complete(k, g)));
        }
        let group = groups.entry(key.clone()).or_insert_with(|| Group {
            started: Instant::now(),
            headers: msg.headers.clone(),
            bodies: Vec::new(),
        });
        group.bodies.push(match msg.body {
            Body::Json(v) => v,
            other => other.to_json(),
        });
        if group.bodies.len() < self.size {
            return Ok(released.map_or(Outcome::Drop, Outcome::Begins));
        }
        // A group completing on its first message (`size: 1`) means no group ever stays open,
        // so none was released to make room for it.
        debug_assert!(released.is_none(), "a full aggregate with groups that complete at once");
        let group = groups.remove(&key).expect("the group was just filled");
        Ok(Outcome::Begins(Self::complete(key, group)))
    }

    fn timed(&self) -> Option<&dyn Timed> {
        Some(self)
    }
}

impl Timed for Aggregate {
    fn period(&self) -> Duration {
        self.timeout
            .map_or(Duration::from_secs(1), |t| (t / 10).clamp(Duration::from_millis(10), Duration::from_secs(1)))
    }

    fn expired(&self, now: Instant) -> Vec<Message> {
        let Some(timeout) = self.timeout else { return Vec::new() };
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let due: Vec<String> =
            groups.iter().filter(|(_, g)| now.duration_since(g.started) >= timeout).map(|(k, _)| k.clone()).collect();
        due.into_iter().filter_map(|k| groups.remove(&k).map(|g| Self::complete(k, g))).collect()
    }

    fn drain(&self) -> Vec<Message> {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        groups.drain().map(|(k, g)| Self::complete(k, g)).collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::route::pipeline::RetryPolicy;
    use crate::script::ScriptLimits;

    fn aggregate(size: usize, max_groups: usize) -> Aggregate {
        let engine = Arc::new(ScriptEngine::new(&ScriptLimits::default()));
        let key = engine.compile_expression("key", "body.k").expect("compiles");
        Aggregate { engine, key, size, timeout: None, max_groups, groups: Mutex::new(HashMap::new()) }
    }

    async fn add(agg: &Aggregate, k: &str, n: i64) -> Outcome {
        let cx = RunCx::new("r".into(), RetryPolicy::default());
        agg.apply(Message::json(json!({ "k": k, "n": n })), &cx).await.expect("applies")
    }

    fn bodies(outcome: Outcome) -> (Value, Value) {
        let Outcome::Begins(msg) = outcome else { panic!("expected a completed group") };
        (msg.headers["aggregate_key"].clone(), msg.body.to_json())
    }

    #[tokio::test]
    async fn a_new_key_past_max_groups_completes_the_oldest_group() {
        let agg = aggregate(3, 2);
        assert!(matches!(add(&agg, "a", 1).await, Outcome::Drop));
        assert!(matches!(add(&agg, "b", 2).await, Outcome::Drop));
        assert!(matches!(add(&agg, "a", 3).await, Outcome::Drop), "a known key never releases a group");
        // `c` would be a third group: `a`, the oldest, goes on early with what it has.
        let (key, body) = bodies(add(&agg, "c", 4).await);
        assert_eq!((key, body), (json!("a"), json!([{ "k": "a", "n": 1 }, { "k": "a", "n": 3 }])));
        assert_eq!(agg.groups.lock().expect("lock").len(), 2);
        // Groups still complete by size.
        add(&agg, "b", 5).await;
        let (key, body) = bodies(add(&agg, "b", 6).await);
        assert_eq!(key, json!("b"));
        assert_eq!(body.as_array().map(Vec::len), Some(3));
        let left: Vec<Message> = agg.drain();
        assert_eq!(left.len(), 1, "only c is still open");
    }
}
