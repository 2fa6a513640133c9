//! `transform`: a Rhai script makes the new body (and may set headers).

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::{BuildStep, Outcome, Step, StepError};
use crate::config::node::{Node, NodeValue, Pos};
use crate::message::{Body, Message};
use crate::route::compile::CompileCx;
use crate::route::pipeline::RunCx;
use crate::script::{Script, ScriptEngine};

/// `transform: crm_deal_to_master_deal.rhai` (a file in `transforms/`), or inline:
/// `transform: { script: "body.total = body.items.len(); body" }`.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct TransformSpec(Node);

impl BuildStep for TransformSpec {
    fn build(&self, at: Pos, cx: &mut CompileCx<'_>) -> Option<Arc<dyn Step>> {
        let script = script_source(&self.0, at, cx)?;
        Some(Arc::new(Transform { engine: cx.scripts.clone(), script }))
    }
}

/// A script named by file (`x.rhai`, or `{ file: x.rhai }`) or written inline (`{ script: … }`).
pub(super) fn script_source(node: &Node, at: Pos, cx: &mut CompileCx<'_>) -> Option<Script> {
    match &node.value {
        NodeValue::Str(s) if s.ends_with(".rhai") => cx.script_file(s, node.pos),
        NodeValue::Str(s) => cx.inline_script(s, node.pos),
        NodeValue::Map(_) => match (node.get("file"), node.get("script")) {
            (Some(f), None) => cx.script_file(f.as_str().unwrap_or_default(), f.pos),
            (None, Some(s)) => cx.inline_script(s.as_str().unwrap_or_default(), s.pos),
            _ => {
                cx.error(at, "give either `file` (in transforms/) or `script` (inline)");
                None
            }
        },
        _ => {
            cx.error(node.pos, "expected a script file name or `{ script: … }`");
            None
        }
    }
}

struct Transform {
    engine: Arc<ScriptEngine>,
    script: Script,
}

#[async_trait]
impl Step for Transform {
    async fn apply(&self, mut msg: Message, _cx: &RunCx) -> Result<Outcome, StepError> {
        let out = super::eval::with_input(&msg, |input| self.engine.run(&self.script, input))?;
        msg.body = Body::Json(out.body);
        if let Some(headers) = out.headers {
            msg.headers = headers;
        }
        Ok(Outcome::One(msg))
    }
}
