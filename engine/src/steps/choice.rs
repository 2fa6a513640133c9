//! `choice`: content-based routing; the first `when` whose condition holds runs its steps.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{BuildStep, Outcome, Step, StepError, StepSpec};
use crate::config::node::Pos;
use crate::message::Message;
use crate::route::compile::CompileCx;
use crate::route::pipeline::{Pipeline, RunCx};
use crate::script::{Script, ScriptEngine};

/// ```yaml
/// choice:
///   when:
///     - if: body.status == "signed"
///       steps: [ { to: { connector: bus, topic: deals.signed } } ]
///   otherwise: [ { log: "ignored ${body.id}" } ]
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChoiceSpec {
    when: Vec<WhenSpec>,
    /// Steps for messages no `when` matched; without it they go on unchanged.
    #[serde(default)]
    otherwise: Option<Vec<Spanned<StepSpec>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WhenSpec {
    #[serde(rename = "if")]
    condition: Spanned<String>,
    steps: Vec<Spanned<StepSpec>>,
}

impl BuildStep for ChoiceSpec {
    fn build(&self, _at: Pos, cx: &mut CompileCx<'_>) -> Option<Arc<dyn Step>> {
        let mut branches = Vec::new();
        let mut ok = true;
        for w in &self.when {
            let condition = cx.expression(&w.condition.value, Pos::of(&w.condition));
            let steps = cx.pipeline(&w.steps);
            match (condition, steps) {
                (Some(c), Some(s)) => branches.push((c, s)),
                _ => ok = false,
            }
        }
        let otherwise = match &self.otherwise {
            Some(steps) => Some(cx.pipeline(steps)?),
            None => None,
        };
        ok.then(|| Arc::new(Choice { engine: cx.scripts.clone(), branches, otherwise }) as Arc<dyn Step>)
    }
}

struct Choice {
    engine: Arc<ScriptEngine>,
    branches: Vec<(Script, Pipeline)>,
    otherwise: Option<Pipeline>,
}

#[async_trait]
impl Step for Choice {
    async fn apply(&self, msg: Message, cx: &RunCx) -> Result<Outcome, StepError> {
        let mut chosen = self.otherwise.as_ref();
        for (condition, steps) in &self.branches {
            if super::eval::eval_bool(&self.engine, condition, &msg)? {
                chosen = Some(steps);
                break;
            }
        }
        match chosen {
            Some(steps) => super::split::run_nested(steps, msg, cx).await.map(Outcome::Many),
            None => Ok(Outcome::One(msg)),
        }
    }
}
