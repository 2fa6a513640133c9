//! Evaluating a route's expressions against a message.

use serde_json::Value;

use super::StepError;
use crate::message::{Body, Message};
use crate::script::{Script, ScriptEngine, ScriptInput};

fn with_input<T>(msg: &Message, f: impl FnOnce(ScriptInput<'_>) -> T) -> T {
    match &msg.body {
        Body::Json(body) => f(ScriptInput { body, headers: &msg.headers, meta: &msg.meta, vars: &[] }),
        Body::Bytes(_) => {
            let body = msg.body.to_json();
            f(ScriptInput { body: &body, headers: &msg.headers, meta: &msg.meta, vars: &[] })
        }
    }
}

pub(super) fn eval(engine: &ScriptEngine, script: &Script, msg: &Message) -> Result<Value, StepError> {
    Ok(with_input(msg, |input| engine.eval(script, input))?)
}

pub(super) fn eval_bool(engine: &ScriptEngine, script: &Script, msg: &Message) -> Result<bool, StepError> {
    Ok(with_input(msg, |input| engine.eval_bool(script, input))?)
}

/// A key for grouping or de-duplication: strings as they are, other values as JSON.
pub(super) fn eval_key(engine: &ScriptEngine, script: &Script, msg: &Message) -> Result<String, StepError> {
    match eval(engine, script, msg)? {
        Value::String(s) => Ok(s),
        Value::Null => Err(StepError::fatal(format!("the key expression {} gave no value", script.name()))),
        other => Ok(other.to_string()),
    }
}
