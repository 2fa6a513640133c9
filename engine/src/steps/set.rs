//! `set`: headers or body fields from expressions.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{BuildStep, Outcome, Step, StepError};
use crate::config::node::{Node, Pos};
use crate::message::{Body, Message};
use crate::route::compile::{CompileCx, expressions};
use crate::route::pipeline::RunCx;
use crate::script::{Script, ScriptEngine};

/// `set: { headers: { tenant: body.client.inn }, body: { received_at: now() } }`
/// Every expression sees the message as it was before this step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSpec {
    #[serde(default)]
    headers: Option<Node>,
    #[serde(default)]
    body: Option<Node>,
}

impl BuildStep for SetSpec {
    fn build(&self, at: Pos, cx: &mut CompileCx<'_>) -> Option<Arc<dyn Step>> {
        if self.headers.is_none() && self.body.is_none() {
            cx.error(at, "set needs `headers`, `body` or both");
            return None;
        }
        let headers = self.headers.as_ref().map(|n| expressions(n, cx));
        let body = self.body.as_ref().map(|n| expressions(n, cx));
        Some(Arc::new(Set {
            engine: cx.scripts.clone(),
            headers: headers.unwrap_or(Some(Vec::new()))?,
            body: body.unwrap_or(Some(Vec::new()))?,
        }))
    }
}

struct Set {
    engine: Arc<ScriptEngine>,
    headers: Vec<(String, Script)>,
    body: Vec<(String, Script)>,
}

#[async_trait]
impl Step for Set {
    async fn apply(&self, mut msg: Message, _cx: &RunCx) -> Result<Outcome, StepError> {
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, script) in &self.headers {
            headers.push((name.clone(), super::eval::eval(&self.engine, script, &msg)?));
        }
        let mut fields = Vec::with_capacity(self.body.len());
        for (name, script) in &self.body {
            fields.push((name.clone(), super::eval::eval(&self.engine, script, &msg)?));
        }
        msg.headers.extend(headers);
        if !fields.is_empty() {
            let mut object = match std::mem::take(&mut msg.body) {
                Body::Json(Value::Object(m)) => m,
                Body::Json(Value::Null) => Map::new(),
                _ => return Err(StepError::fatal("set: body fields need an object body")),
            };
            object.extend(fields);
            msg.body = Body::Json(Value::Object(object));
        }
        Ok(Outcome::One(msg))
    }
}
