//! `filter`: only messages for which the expression is true go on.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{BuildStep, Outcome, Step, StepError};
use crate::config::node::Pos;
use crate::message::Message;
use crate::route::compile::CompileCx;
use crate::route::pipeline::RunCx;
use crate::script::{Script, ScriptEngine};

/// `filter: body.stage == "won"`
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct FilterSpec(Spanned<String>);

impl BuildStep for FilterSpec {
    fn build(&self, _at: Pos, cx: &mut CompileCx<'_>) -> Option<Arc<dyn Step>> {
        let script = cx.expression(&self.0.value, Pos::of(&self.0))?;
        Some(Arc::new(Filter { engine: cx.scripts.clone(), script }))
    }
}

struct Filter {
    engine: Arc<ScriptEngine>,
    script: Script,
}

#[async_trait]
impl Step for Filter {
    async fn apply(&self, msg: Message, _cx: &RunCx) -> Result<Outcome, StepError> {
        if super::eval::eval_bool(&self.engine, &self.script, &msg)? {
            Ok(Outcome::One(msg))
        } else {
            Ok(Outcome::Drop)
        }
    }
}
