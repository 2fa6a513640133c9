//! `aggregate`: collects messages with the same correlation key into one, when `size` of them
//! arrived or `timeout` passed since the first. Groups are held in memory: a clean stop
//! releases incomplete groups down the route, but a crash loses them (like Camel's default
//! in-memory aggregation repository); a durable repository in the store is still to come.

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
}

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
        let key = cx.expression(&self.key.value, Pos::of(&self.key))?;
        Some(Arc::new(Aggregate {
            engine: cx.scripts.clone(),
            key,
            size: self.size.unwrap_or(usize::MAX),
            timeout: self.timeout.map(|t| t.0),
            groups: Mutex::new(HashMap::new()),
        }))
    }
}

pub struct Aggregate {
    engine: Arc<ScriptEngine>,
    key: Script,
    size: usize,
    timeout: Option<Duration>,
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
            return Ok(Outcome::Drop);
        }
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
