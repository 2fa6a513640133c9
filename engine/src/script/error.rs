//! What went wrong in a script, sorted into the four things a route author can act on,
//! with the line and column in the script's own source.

use std::fmt;

use rhai::{EvalAltResult, LexError, ParseError, ParseErrorType, Position};

/// Why a script failed; each kind asks for a different fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptErrorKind {
    /// The script does not parse: fix the source at the reported line and column.
    Syntax,
    /// The script failed while running (wrong type, missing function, index out of bounds,
    /// bad input to a library function): fix the script or the data it was given.
    Runtime,
    /// The sandbox stopped the script (too many operations, too deep, too much data):
    /// the script loops or grows without bound, or the limits are too tight for it.
    Limit,
    /// The script rejected the message on purpose with `throw`; the message is the thrown value.
    Thrown,
}

/// A failed compile or run of one script.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{script}{}: {message}", Location(*.line, *.column))]
pub struct ScriptError {
    pub kind: ScriptErrorKind,
    /// The script's name: its file name, or "inline".
    pub script: String,
    pub message: String,
    /// 1-based line in the script's own source, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
}

/// Renders `:line:col` (or `:line`, or nothing) after the script name.
struct Location(Option<usize>, Option<usize>);

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(line), Some(column)) => write!(f, ":{line}:{column}"),
            (Some(line), None) => write!(f, ":{line}"),
            _ => Ok(()),
        }
    }
}

impl ScriptError {
    /// An error with no position, e.g. a result that cannot be turned into JSON.
    pub(super) fn new(kind: ScriptErrorKind, script: &str, message: impl Into<String>) -> Self {
        Self { kind, script: script.to_owned(), message: message.into(), line: None, column: None }
    }

    fn at(kind: ScriptErrorKind, script: &str, message: String, pos: Position) -> Self {
        Self { kind, script: script.to_owned(), message, line: pos.line(), column: pos.position() }
    }

    /// A compile error. Limits checked by the parser (nesting, literal sizes) count as `Limit`.
    pub(super) fn from_parse(script: &str, err: ParseError) -> Self {
        let kind = parse_kind(err.err_type());
        Self::at(kind, script, err.err_type().to_string(), err.position())
    }

    /// A run error. Errors inside script-defined functions are unwrapped so the kind and
    /// position are those of the failing statement, not of the outermost call.
    pub(super) fn from_eval(script: &str, mut err: EvalAltResult) -> Self {
        let mut outer_pos = Position::NONE;
        let mut function = None;
        while let EvalAltResult::ErrorInFunctionCall(name, _, inner, pos) = err {
            outer_pos = pos;
            function = Some(name);
            err = *inner;
        }
        let mut pos = err.take_position();
        if pos.is_none() {
            pos = outer_pos;
        }
        let (kind, mut message) = match err {
            EvalAltResult::ErrorRuntime(value, _) if value.is_unit() => {
                (ScriptErrorKind::Thrown, "thrown without a value".to_owned())
            }
            EvalAltResult::ErrorRuntime(value, _) => (ScriptErrorKind::Thrown, value.to_string()),
            EvalAltResult::ErrorParsing(ref parse, _) => (parse_kind(parse), parse.to_string()),
            // The sandbox's deadline stops a run with its reason as the token.
            EvalAltResult::ErrorTerminated(reason, _) => (ScriptErrorKind::Limit, reason.to_string()),
            ref other => (eval_kind(other), other.to_string()),
        };
        // A thrown value is the route author's own message; it stays exactly as thrown.
        if let Some(name) = function.filter(|_| kind != ScriptErrorKind::Thrown) {
            message.push_str(&format!(" (in function '{name}')"));
        }
        Self::at(kind, script, message, pos)
    }
}

fn parse_kind(err: &ParseErrorType) -> ScriptErrorKind {
    match err {
        ParseErrorType::ExprTooDeep
        | ParseErrorType::TooManyFunctions
        | ParseErrorType::LiteralTooLarge(..)
        | ParseErrorType::BadInput(LexError::StringTooLong(_)) => ScriptErrorKind::Limit,
        _ => ScriptErrorKind::Syntax,
    }
}

fn eval_kind(err: &EvalAltResult) -> ScriptErrorKind {
    match err {
        EvalAltResult::ErrorTooManyOperations(_)
        | EvalAltResult::ErrorTooManyVariables(_)
        | EvalAltResult::ErrorStackOverflow(_)
        | EvalAltResult::ErrorDataTooLarge(..) => ScriptErrorKind::Limit,
        _ => ScriptErrorKind::Runtime,
    }
}
