//! `validate`: the body must satisfy a JSON Schema; violations name their JSON pointers.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::{BuildStep, Outcome, Step, StepError};
use crate::config::node::{Node, Pos};
use crate::message::Message;
use crate::route::compile::CompileCx;
use crate::route::pipeline::RunCx;
use crate::schema::Schema;

/// `validate: master-deal.json` (a file in `schemas/`) or `validate: { schema: master-deal.json }`.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct ValidateSpec(Node);

impl BuildStep for ValidateSpec {
    fn build(&self, at: Pos, cx: &mut CompileCx<'_>) -> Option<Arc<dyn Step>> {
        let node = self.0.get("schema").unwrap_or(&self.0);
        let Some(file) = node.as_str() else {
            cx.error(at, "expected a schema file name: `validate: deal.json`");
            return None;
        };
        let schema = cx.schema(file, node.pos)?;
        Some(Arc::new(Validate { schema }))
    }
}

struct Validate {
    schema: Schema,
}

#[async_trait]
impl Step for Validate {
    async fn apply(&self, msg: Message, _cx: &RunCx) -> Result<Outcome, StepError> {
        let violations = self.schema.violations(&msg.body.json());
        if violations.is_empty() {
            return Ok(Outcome::One(msg));
        }
        let listed: Vec<String> =
            violations.iter().map(|v| format!("{}: {}", display_pointer(&v.pointer), v.message)).collect();
        Err(StepError::rejected(format!("body does not match {}: {}", self.schema.file(), listed.join("; "))))
    }
}

fn display_pointer(p: &str) -> &str {
    if p.is_empty() { "/" } else { p }
}
