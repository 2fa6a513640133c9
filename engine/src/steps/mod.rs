//! Steps: one enterprise integration pattern each, one file each. A step takes a message and
//! returns the next message(s), a drop, or an error that says whether trying again may help.
//!
//! Registration is the one `steps!` list below: it declares the `steps:` syntax (the
//! [`StepSpec`] enum, so unknown steps are caught with "did you mean") and how each is built.

mod aggregate;
mod choice;
mod delay;
mod endpoint;
mod enrich;
mod eval;
mod filter;
mod idempotent;
mod log;
mod request;
mod set;
mod split;
mod throttle;
mod to;
mod transform;
mod validate;
mod wire_tap;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::node::Pos;
use crate::message::Message;
use crate::route::compile::CompileCx;
use crate::route::pipeline::RunCx;
use crate::script::{ScriptError, ScriptErrorKind};

pub use aggregate::Aggregate;

/// One step of a route, ready to run.
#[async_trait]
pub trait Step: Send + Sync {
    async fn apply(&self, msg: Message, cx: &RunCx) -> Result<Outcome, StepError>;

    /// Whether the step calls out through a connector, so it can fail in a way that passes
    /// (and is worth retrying); pure steps are never retried.
    fn calls_out(&self) -> bool {
        false
    }

    /// Steps that complete work on a timer (an aggregation's timeout) expose it here; the
    /// runtime polls it and sends what it returns down the rest of the route.
    fn timed(&self) -> Option<&dyn Timed> {
        None
    }
}

/// Work a step finishes on a clock rather than on a message.
#[async_trait]
pub trait Timed: Send + Sync {
    /// How often to ask.
    fn period(&self) -> Duration;
    /// Messages whose time has come.
    async fn expired(&self) -> Vec<Released>;
    /// Once, when the route starts: messages released by a process that stopped before it
    /// delivered them.
    async fn unfinished(&self) -> Vec<Released>;
    /// Where the step keeps its state in the store, if it does.
    fn kept(&self) -> Option<&crate::store::StepAt> {
        None
    }
}

/// A message a timed step released, and the work to do once it is delivered or dead-lettered.
pub struct Released {
    pub msg: Message,
    pub settle: Option<crate::route::pipeline::Settle>,
}

/// What a step made of a message.
#[derive(Debug)]
// `One` is by far the common case; boxing it would cost an allocation per step.
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    One(Message),
    Many(Vec<Message>),
    /// A new message begins here (an aggregate's output): should what follows fail, this is
    /// the message to dead-letter, and a replay resumes after this step.
    Begins(Message),
    /// Filtered out, absorbed into an aggregate, or a duplicate: nothing goes on, and that is not an error.
    Drop,
}

/// Why a step failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq)]
pub struct StepError {
    pub kind: ErrorKind,
    pub message: String,
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A dependency failed in a way that may pass: retried per `on_error.retry`.
    Retryable,
    /// Will fail again as it is: dead-lettered at once.
    Fatal,
    /// The message was refused on purpose (schema violation, a script's `throw`): the
    /// sender's fault, answered with 422 on HTTP, dead-lettered for later inspection.
    Rejected,
    /// A limit of Junction's own is spent (a budget): not retried, dead-lettered to be
    /// replayed later, answered with 429 on HTTP.
    Exhausted,
}

impl StepError {
    pub fn fatal(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Fatal, message: message.into(), retry_after: None }
    }
    pub fn retryable(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Retryable, message: message.into(), retry_after: None }
    }
    pub fn rejected(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Rejected, message: message.into(), retry_after: None }
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ScriptError> for StepError {
    fn from(e: ScriptError) -> Self {
        let kind = if e.kind == ScriptErrorKind::Thrown { ErrorKind::Rejected } else { ErrorKind::Fatal };
        Self { kind, message: e.to_string(), retry_after: None }
    }
}

impl From<crate::connector::ConnectorError> for StepError {
    fn from(e: crate::connector::ConnectorError) -> Self {
        use crate::connector::ConnectorError as E;
        let kind = match &e {
            E::Retryable { .. } | E::Unavailable { .. } => ErrorKind::Retryable,
            E::Rejected { .. } => ErrorKind::Rejected,
            E::Permanent { .. } => ErrorKind::Fatal,
            E::Exhausted { .. } => ErrorKind::Exhausted,
        };
        let retry_after = e.retry_after();
        let message = match e {
            E::Retryable { message, .. }
            | E::Unavailable { message, .. }
            | E::Rejected { message }
            | E::Permanent { message }
            | E::Exhausted { message, .. } => message,
        };
        Self { kind, message, retry_after }
    }
}

/// A step spec that knows how to build its step.
trait BuildStep {
    fn build(&self, at: Pos, cx: &mut CompileCx<'_>) -> Option<Arc<dyn Step>>;
}

macro_rules! steps {
    ($($name:ident => $module:ident :: $spec:ident,)*) => {
        /// One entry of a route's `steps:` list, keyed by the step's name.
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[allow(clippy::large_enum_variant)]
        pub enum StepSpec {
            $($name($module::$spec),)*
        }

        impl StepSpec {
            /// The step's name as written in `steps:`.
            pub fn name(&self) -> &'static str {
                match self {
                    $(StepSpec::$name(_) => stringify!($module),)*
                }
            }

            fn builder(&self) -> &dyn BuildStep {
                match self {
                    $(StepSpec::$name(s) => s,)*
                }
            }
        }
    };
}

steps! {
    Transform => transform::TransformSpec,
    Validate => validate::ValidateSpec,
    Filter => filter::FilterSpec,
    Choice => choice::ChoiceSpec,
    Split => split::SplitSpec,
    Aggregate => aggregate::AggregateSpec,
    Enrich => enrich::EnrichSpec,
    Set => set::SetSpec,
    Log => log::LogSpec,
    To => to::ToSpec,
    Request => request::RequestSpec,
    Throttle => throttle::ThrottleSpec,
    Idempotent => idempotent::IdempotentSpec,
    WireTap => wire_tap::WireTapSpec,
    Delay => delay::DelaySpec,
}

/// Builds one step; errors go to the compile context, so all of them are reported.
pub fn build(spec: &Spanned<StepSpec>, cx: &mut CompileCx<'_>) -> Option<Arc<dyn Step>> {
    spec.value.builder().build(Pos::of(spec), cx)
}
