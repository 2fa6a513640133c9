//! `split`: an array becomes one message per element. With `steps`, each element runs through
//! them and the results are gathered back into one array (so request/reply gets one answer).

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::{BuildStep, Outcome, Step, StepError, StepSpec};
use crate::config::node::{Node, NodeValue, Pos};
use crate::message::{Body, Message};
use crate::route::compile::CompileCx;
use crate::route::pipeline::{Pipeline, RunCx};
use crate::script::{Script, ScriptEngine};

/// `split: body.items` fans out into the rest of the route;
/// `split: { expr: body.items, steps: [...] }` gathers the results into an array.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct SplitSpec(Node);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatherSpec {
    expr: Spanned<String>,
    steps: Vec<Spanned<StepSpec>>,
}

impl BuildStep for SplitSpec {
    fn build(&self, _at: Pos, cx: &mut CompileCx<'_>) -> Option<Arc<dyn Step>> {
        let (script, steps) = match &self.0.value {
            NodeValue::Str(expr) => (cx.expression(expr, self.0.pos), None),
            _ => match self.0.parse::<GatherSpec>() {
                Ok(g) => (cx.expression(&g.expr.value, Pos::of(&g.expr)), Some(cx.pipeline(&g.steps)?)),
                Err(e) => {
                    let file = cx.file.clone();
                    cx.diags.push(crate::config::error::Diagnostic::from_node(&file, e));
                    return None;
                }
            },
        };
        Some(Arc::new(Split { engine: cx.scripts.clone(), script: script?, steps }))
    }
}

struct Split {
    engine: Arc<ScriptEngine>,
    script: Script,
    steps: Option<Pipeline>,
}

#[async_trait]
impl Step for Split {
    async fn apply(&self, msg: Message, cx: &RunCx) -> Result<Outcome, StepError> {
        let Value::Array(items) = super::eval::eval(&self.engine, &self.script, &msg)? else {
            return Err(StepError::fatal(format!("split: `{}` did not give an array", self.script.name())));
        };
        let count = items.len();
        let parts = items.into_iter().enumerate().map(|(i, item)| {
            let mut part = msg.clone().with_body(Body::Json(item));
            part.meta.source.insert("split_index".into(), Value::from(i));
            part.meta.source.insert("split_size".into(), Value::from(count));
            part
        });
        let Some(steps) = &self.steps else {
            return Ok(Outcome::Many(parts.collect()));
        };
        let mut gathered = Vec::with_capacity(count);
        for part in parts {
            gathered.extend(run_nested(steps, part, cx).await?.into_iter().map(|m| m.body.to_json()));
        }
        Ok(Outcome::One(msg.with_body(Body::Json(Value::Array(gathered)))))
    }
}

/// Runs a nested step list; its failure becomes this step's failure, naming the inner step.
pub(super) async fn run_nested(steps: &Pipeline, msg: Message, cx: &RunCx) -> Result<Vec<Message>, StepError> {
    steps.run(msg, cx).await.map_err(|f| StepError { message: format!("{}: {}", f.step, f.error.message), ..f.error })
}
