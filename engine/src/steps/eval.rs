//! Evaluating a route's expressions against a message.

use serde_json::Value;

use super::StepError;
use crate::message::Message;
use crate::script::{Script, ScriptEngine, ScriptInput};

/// The message as a script sees it (a bytes body as a string, JSON borrowed).
pub(super) fn with_input<T>(msg: &Message, f: impl FnOnce(ScriptInput<'_>) -> T) -> T {
    let body = msg.body.json();
    f(ScriptInput { body: &body, headers: &msg.headers, meta: &msg.meta, vars: &[] })
}

pub(super) fn eval(engine: &ScriptEngine, script: &Script, msg: &Message) -> Result<Value, StepError> {
    Ok(engine.eval_message(script, msg)?)
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
