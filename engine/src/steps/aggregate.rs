//! `aggregate`: collects messages with the same correlation key into one, when `size` of them
//! arrived or `timeout` passed since the first. At most `max_groups` groups are open (default
//! 10 000): a message that would open one more completes the oldest open group early, so a
//! stream of ever-new keys cannot grow without end.
//!
//! The running engine keeps the groups in the store (see [`crate::store::StepAt`]): a
//! message is written there before its source is acked, and a completed group is forgotten
//! only once its message was delivered or dead-lettered, so a crash or a restart loses
//! nothing, and open groups carry on after it. Their timeouts count from the first message's
//! arrival, so a group whose time ran out while the engine was down completes as it starts.
//! `junction test`, which has no store, keeps them in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::{BuildStep, Outcome, Released, Step, StepError, Timed};
use crate::config::duration::ConfigDuration;
use crate::config::node::Pos;
use crate::message::{Body, Message};
use crate::route::compile::CompileCx;
use crate::route::pipeline::{RunCx, Settle};
use crate::script::{Script, ScriptEngine};
use crate::store::{AggregateRules, ClaimedGroup, StepAt, Store};

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
            held: match cx.build.resources.store.clone() {
                Some(store) => Held::Stored { store, at: cx.kept_state("aggregate"), serial: Default::default() },
                None => Held::Memory(Mutex::default()),
            },
        }))
    }
}

pub struct Aggregate {
    engine: Arc<ScriptEngine>,
    key: Script,
    size: usize,
    timeout: Option<Duration>,
    max_groups: usize,
    held: Held,
}

/// Where the open groups are.
enum Held {
    /// In the store: the running engine. `serial` queues this process's changes to the
    /// groups here, so they wait for one another without each holding a store connection.
    Stored { store: Store, at: StepAt, serial: tokio::sync::Mutex<()> },
    /// In memory: `junction test`, which has no store.
    Memory(Mutex<HashMap<String, Group>>),
}

struct Group {
    started: Instant,
    messages: Vec<Message>,
}

impl Aggregate {
    /// The group's message: the bodies in arrival order, with the first message's headers.
    fn complete(key: String, messages: Vec<Message>) -> Message {
        let mut headers = None;
        let bodies = messages
            .into_iter()
            .map(|m| {
                headers.get_or_insert(m.headers);
                match m.body {
                    Body::Json(v) => v,
                    other => other.to_json(),
                }
            })
            .collect();
        let mut msg = Message::json(Value::Array(bodies));
        msg.headers = headers.unwrap_or_default();
        msg.headers.insert("aggregate_key".into(), Value::String(key));
        msg
    }

    fn add_in_memory(&self, groups: &Mutex<HashMap<String, Group>>, key: String, msg: Message) -> Option<Message> {
        let mut groups = groups.lock().unwrap_or_else(PoisonError::into_inner);
        // Full: the oldest open group completes now, to make room, and goes on down the route.
        let mut released = None;
        if groups.len() >= self.max_groups && !groups.contains_key(&key) {
            let oldest = groups.iter().min_by_key(|(_, g)| g.started).map(|(k, _)| k.clone());
            released = oldest.and_then(|k| groups.remove(&k).map(|g| Self::complete(k, g.messages)));
        }
        let group =
            groups.entry(key.clone()).or_insert_with(|| Group { started: Instant::now(), messages: Vec::new() });
        group.messages.push(msg);
        if group.messages.len() < self.size {
            return released;
        }
        // A group completing on its first message (`size: 1`) means no group ever stays open,
        // so none was released to make room for it.
        debug_assert!(released.is_none(), "a full aggregate with groups that complete at once");
        let group = groups.remove(&key).expect("the group was just filled");
        Some(Self::complete(key, group.messages))
    }

    /// A group claimed in the store, and the work that forgets it once it is delivered.
    fn claimed(store: &Store, at: &StepAt, group: ClaimedGroup) -> Released {
        let (store, at, completion) = (store.clone(), at.clone(), group.completion);
        let settle: Settle = Box::pin(async move {
            if let Err(error) = store.aggregate_settle(&at, &completion).await {
                tracing::warn!(
                    route = at.route, step = at.step, completion, %error,
                    "an aggregated group was delivered but stays in the store; the next start delivers it again"
                );
            }
        });
        Released { msg: Self::complete(group.key, group.messages), settle: Some(settle) }
    }
}

#[async_trait]
impl Step for Aggregate {
    async fn apply(&self, msg: Message, cx: &RunCx) -> Result<Outcome, StepError> {
        let key = super::eval::eval_key(&self.engine, &self.key, &msg)?;
        let released = match &self.held {
            Held::Memory(groups) => self.add_in_memory(groups, key, msg),
            Held::Stored { store, at, serial } => {
                let _serial = serial.lock().await;
                let rules = AggregateRules { size: self.size, max_groups: self.max_groups };
                let claimed = store.aggregate_add(at, &key, &msg, rules).await.map_err(|e| {
                    StepError::retryable(format!("aggregate cannot keep the message in the store: {e}"))
                })?;
                claimed.map(|group| {
                    let released = Self::claimed(store, at, group);
                    if let Some(settle) = released.settle {
                        cx.on_settled(settle);
                    }
                    released.msg
                })
            }
        };
        Ok(released.map_or(Outcome::Drop, Outcome::Begins))
    }

    /// Keeping a message in the store can fail for a moment and pass on a retry.
    fn calls_out(&self) -> bool {
        matches!(self.held, Held::Stored { .. })
    }

    fn timed(&self) -> Option<&dyn Timed> {
        Some(self)
    }
}

#[async_trait]
impl Timed for Aggregate {
    fn period(&self) -> Duration {
        self.timeout
            .map_or(Duration::from_secs(1), |t| (t / 10).clamp(Duration::from_millis(10), Duration::from_secs(1)))
    }

    async fn expired(&self) -> Vec<Released> {
        let Some(timeout) = self.timeout else { return Vec::new() };
        match &self.held {
            Held::Memory(groups) => {
                let now = Instant::now();
                let mut groups = groups.lock().unwrap_or_else(PoisonError::into_inner);
                let due: Vec<String> = groups
                    .iter()
                    .filter(|(_, g)| now.duration_since(g.started) >= timeout)
                    .map(|(k, _)| k.clone())
                    .collect();
                due.into_iter()
                    .filter_map(|k| groups.remove(&k).map(|g| Self::complete(k, g.messages)))
                    .map(|msg| Released { msg, settle: None })
                    .collect()
            }
            Held::Stored { store, at, serial } => {
                let _serial = serial.lock().await;
                let timeout = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
                let before = crate::store::now_millis().saturating_sub(timeout).saturating_add(1);
                match store.aggregate_expired(at, before).await {
                    Ok(groups) => groups.into_iter().map(|g| Self::claimed(store, at, g)).collect(),
                    Err(error) => {
                        tracing::warn!(route = at.route, step = at.step, %error, "cannot look for timed-out aggregate groups; trying again");
                        Vec::new()
                    }
                }
            }
        }
    }

    fn kept(&self) -> Option<&StepAt> {
        match &self.held {
            Held::Stored { at, .. } => Some(at),
            Held::Memory(_) => None,
        }
    }

    async fn unfinished(&self) -> Vec<Released> {
        let Held::Stored { store, at, .. } = &self.held else { return Vec::new() };
        match store.aggregate_unsettled(at).await {
            Ok(groups) => {
                if !groups.is_empty() {
                    tracing::info!(
                        route = at.route,
                        step = at.step,
                        groups = groups.len(),
                        "delivering aggregated groups an earlier process released but did not finish"
                    );
                }
                groups.into_iter().map(|g| Self::claimed(store, at, g)).collect()
            }
            Err(error) => {
                tracing::error!(route = at.route, step = at.step, %error, "cannot read unfinished aggregate groups; the next start tries again");
                Vec::new()
            }
        }
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
        Aggregate { engine, key, size, timeout: None, max_groups, held: Held::Memory(Mutex::default()) }
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
        let Held::Memory(groups) = &agg.held else { unreachable!() };
        assert_eq!(groups.lock().expect("lock").len(), 2);
        // Groups still complete by size.
        add(&agg, "b", 5).await;
        let (key, body) = bodies(add(&agg, "b", 6).await);
        assert_eq!(key, json!("b"));
        assert_eq!(body.as_array().map(Vec::len), Some(3));
        assert_eq!(groups.lock().expect("lock").len(), 1, "only c is still open");
    }
}
