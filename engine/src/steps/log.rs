//! `log`: a line in the log per message, with `${…}` expressions filled in.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::{BuildStep, Outcome, Step, StepError};
use crate::config::node::{Node, NodeValue, Pos};
use crate::message::Message;
use crate::route::compile::CompileCx;
use crate::route::pipeline::RunCx;
use crate::script::{Script, ScriptEngine};

/// `log: "deal ${body.external_id} is ${body.status}"` or `log: { message: "…", level: warn }`.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct LogSpec(Node);

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl BuildStep for LogSpec {
    fn build(&self, at: Pos, cx: &mut CompileCx<'_>) -> Option<Arc<dyn Step>> {
        let (text, pos, level) = match &self.0.value {
            NodeValue::Str(s) => (s.clone(), self.0.pos, Level::Info),
            NodeValue::Map(_) => {
                let Some(message) = self.0.get("message") else {
                    cx.error(at, "log needs `message`");
                    return None;
                };
                let level = match self.0.get("level").map(|l| l.parse::<Level>()) {
                    None => Level::Info,
                    Some(Ok(l)) => l,
                    Some(Err(e)) => {
                        let file = cx.file.clone();
                        cx.diags.push(crate::config::error::Diagnostic::from_node(&file, e));
                        return None;
                    }
                };
                (message.as_str().unwrap_or_default().to_owned(), message.pos, level)
            }
            _ => {
                cx.error(self.0.pos, "expected a message");
                return None;
            }
        };
        // A Rhai backtick string fills in `${expr}` itself.
        let template = format!("`{}`", text.replace('`', "\\`"));
        let script = cx.expression(&template, pos)?;
        Some(Arc::new(Log {
            engine: cx.scripts.clone(),
            script,
            level,
            redact: cx.build.redact.clone(),
            step: cx.step.clone(),
        }))
    }
}

struct Log {
    engine: Arc<ScriptEngine>,
    script: Script,
    level: Level,
    redact: crate::redact::Redact,
    /// Its own label (`2:log`), written with each line.
    step: String,
}

#[async_trait]
impl Step for Log {
    async fn apply(&self, msg: Message, cx: &RunCx) -> Result<Outcome, StepError> {
        // The line is made from the message with its sensitive fields masked.
        let line = match super::eval::eval(&self.engine, &self.script, &self.redact.message(&msg))? {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        let (route, id, step) = (&*cx.route, &msg.id, self.step.as_str());
        // Absent ids are left out of the line rather than logged empty.
        let request_id = msg.meta.source.get("request_id").and_then(serde_json::Value::as_str);
        let trace_id = msg.meta.trace_id.as_deref();
        match self.level {
            Level::Debug => tracing::debug!(route, step, message_id = %id, request_id, trace_id, "{line}"),
            Level::Info => tracing::info!(route, step, message_id = %id, request_id, trace_id, "{line}"),
            Level::Warn => tracing::warn!(route, step, message_id = %id, request_id, trace_id, "{line}"),
            Level::Error => tracing::error!(route, step, message_id = %id, request_id, trace_id, "{line}"),
        }
        Ok(Outcome::One(msg))
    }
}
