//! The sandboxed Rhai engine and its small standard library.
//!
//! One [`ScriptEngine`] is built per process; it compiles transforms ([`ScriptEngine::compile`])
//! and expressions ([`ScriptEngine::compile_expression`]) once, at route load, into [`Script`]s
//! that each message then runs against. A run sees the message as three variables: `body`,
//! `headers` and `meta` (read-only).
//!
//! A transform's new body is its last expression, or `body` as it left it when it ends in a
//! statement: end with `body.x = 1;` (semicolon) rather than a call that returns something,
//! such as `body.remove("x")`, whose result would become the body.
//!
//! # Layout
//!
//! - `sandbox`: [`ScriptLimits`] and the rhai engine configured to enforce them.
//! - `vars`: JSON in and out of the per-run scope.
//! - `library`: functions for dates, ids, hashing, encodings and JSON; `money`: decimal
//!   arithmetic for amounts.
//! - `error`: [`ScriptError`], sorted into [`ScriptErrorKind`]s.
//! - `lowered`: the same scripts run without rhai's interpreter, where they can be, for speed;
//!   a lowered run answers as rhai would or hands the run to rhai.

mod convert;
mod error;
mod library;
mod lowered;
mod money;
mod sandbox;
mod vars;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rhai::{AST, Dynamic, Engine, Scope};
use serde_json::{Map, Value};

pub use error::{ScriptError, ScriptErrorKind};
pub use sandbox::ScriptLimits;

/// Compiles and runs every script. Cloning is cheap: clones share one engine.
#[derive(Clone)]
pub struct ScriptEngine {
    engine: Arc<Engine>,
    /// Wall-clock time per run, enforced alongside the operation limit (see `sandbox`).
    budget: Option<Duration>,
    /// The limits lowered runs stay under (see `lowered`).
    lowered_limits: lowered::Limits,
}

/// A compiled script or expression, ready to run any number of times. Cloning is cheap.
#[derive(Clone)]
pub struct Script {
    ast: Arc<AST>,
    name: Arc<str>,
    uses: vars::Uses,
    /// The script without rhai's interpreter, when all of it can be lowered.
    lowered: Option<Arc<lowered::Program>>,
}

/// What a run sees: the message, borrowed.
pub struct ScriptInput<'a> {
    pub body: &'a Value,
    pub headers: &'a Map<String, Value>,
    pub meta: &'a crate::message::Meta,
    /// Further variables a step offers (`reply` in an enrich's merge script).
    pub vars: &'a [(&'a str, &'a Value)],
}

/// What a transform produced: the new body and the headers as the script left them.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptOutput {
    pub body: Value,
    /// `None` when the script never names `headers`: they are the input's, unchanged.
    pub headers: Option<Map<String, Value>>,
}

impl ScriptEngine {
    /// Build the sandboxed engine with its library. Costly enough to do once per process.
    pub fn new(limits: &ScriptLimits) -> Self {
        let (mut engine, budget) = sandbox::sandboxed_engine(limits);
        library::register(&mut engine);
        money::register(&mut engine);
        Self { engine: Arc::new(engine), budget, lowered_limits: lowered::Limits::of(limits) }
    }

    /// Compile a whole script (a transform). `name` is the file name (e.g.
    /// "crm_deal_to_master_deal.rhai") or "inline"; errors carry it.
    pub fn compile(&self, name: &str, source: &str) -> Result<Script, ScriptError> {
        let ast = self.engine.compile(source).map_err(|err| ScriptError::from_parse(name, err))?;
        Ok(Script::new(name, source, ast))
    }

    /// Compile a single expression (filters, choices, `set`, idempotency keys), e.g.
    /// `body.amount > 1000`. Statements such as `let` or loops are syntax errors here.
    pub fn compile_expression(&self, name: &str, source: &str) -> Result<Script, ScriptError> {
        let ast = self.engine.compile_expression(source).map_err(|err| ScriptError::from_parse(name, err))?;
        Ok(Script::new(name, source, ast))
    }

    /// Run a transform. If the script's last expression yields a value other than unit `()`,
    /// that value is the new body; otherwise (the script ends in a statement) the new body
    /// is `body` as the script left it. Headers are read back the same way, so scripts may
    /// set them (`headers.x = 1`); a script that never names them leaves them alone.
    pub fn run(&self, script: &Script, input: ScriptInput<'_>) -> Result<ScriptOutput, ScriptError> {
        // A script that names `headers` hands them back, which only rhai does.
        if let Some(program) = script.lowered.as_deref().filter(|_| !script.uses.headers)
            && let Some(body) = program.run(input.body, script.uses.body, self.lowered_limits)
        {
            return Ok(ScriptOutput { body, headers: None });
        }
        let mut scope = vars::scope_for(&script.name, script.uses, &input)?;
        let result = self.evaluate(script, &mut scope)?;
        let body = if result.is_unit() {
            vars::take_body(&script.name, &mut scope, input.body)?
        } else {
            vars::to_json(&script.name, "result", result)?
        };
        let headers = vars::take_headers(&script.name, &mut scope)?;
        Ok(ScriptOutput { body, headers })
    }

    /// Evaluate an expression (or script) and return its value as JSON; unit becomes `null`.
    pub fn eval(&self, script: &Script, input: ScriptInput<'_>) -> Result<Value, ScriptError> {
        if let Some(value) = script.lowered.as_deref().and_then(|p| p.eval(input.body, self.lowered_limits)) {
            return Ok(value);
        }
        let mut scope = vars::scope_for(&script.name, script.uses, &input)?;
        let result = self.evaluate(script, &mut scope)?;
        vars::to_json(&script.name, "result", result)
    }

    /// [`ScriptEngine::eval`] over a message as scripts see it (a bytes body as a string).
    pub fn eval_message(&self, script: &Script, msg: &crate::message::Message) -> Result<Value, ScriptError> {
        let body = msg.body.json();
        self.eval(script, ScriptInput { body: &body, headers: &msg.headers, meta: &msg.meta, vars: &[] })
    }

    /// Evaluate an expression that must yield a bool (filters, choices).
    pub fn eval_bool(&self, script: &Script, input: ScriptInput<'_>) -> Result<bool, ScriptError> {
        if let Some(value) = script.lowered.as_deref().and_then(|p| p.eval_bool(input.body, self.lowered_limits)) {
            return Ok(value);
        }
        let mut scope = vars::scope_for(&script.name, script.uses, &input)?;
        let result = self.evaluate(script, &mut scope)?.flatten();
        result.as_bool().map_err(|type_name| {
            ScriptError::new(
                ScriptErrorKind::Runtime,
                &script.name,
                format!("expected a bool (true or false), got {}", self.engine.map_type_name(type_name)),
            )
        })
    }

    fn evaluate(&self, script: &Script, scope: &mut Scope<'_>) -> Result<Dynamic, ScriptError> {
        sandbox::within_budget(self.budget, || self.engine.eval_ast_with_scope::<Dynamic>(scope, &script.ast))
            .map_err(|err| ScriptError::from_eval(&script.name, *err))
    }
}

impl Script {
    fn new(name: &str, source: &str, mut ast: AST) -> Self {
        // The source name shows in `debug` output and in rhai's own messages.
        ast.set_source(name);
        let lowered = lowered::lower(&ast).map(Arc::new);
        Self { ast: Arc::new(ast), name: name.into(), uses: vars::Uses::scan(source), lowered }
    }

    /// The name given at compile: the file name, or "inline".
    pub fn name(&self) -> &str {
        &self.name
    }
}

// Manual impls: the engine and the AST would print pages of internals.
impl fmt::Debug for ScriptEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptEngine").finish_non_exhaustive()
    }
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Script").field("name", &self.name).finish_non_exhaustive()
    }
}
