//! The limits every script runs under, and the rhai engine configured to enforce them.
//!
//! Scripts come from route authors, and a bad one must fail its own run, not the process:
//! every resource a script can grow (time, stack, memory) has a limit here, and nothing
//! reaches outside the engine (`no_module` removes `import` and its file loader, `eval` is
//! disabled, `print` and `debug` go to the log instead of stdout).

use rhai::{Engine, Position};

/// How much one script run may do before the sandbox stops it with a `Limit` error.
///
/// Zero means "no limit" for every field except `max_call_levels`, where it forbids calling
/// script-defined functions at all (rhai's convention).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptLimits {
    /// Operations per run (roughly: statements, expressions and loop iterations evaluated).
    pub max_operations: u64,
    /// Nested calls of script-defined functions, so runaway recursion stops before it
    /// exhausts the native stack.
    pub max_call_levels: usize,
    /// Nesting of expressions and statements, checked when the script is compiled.
    pub max_expr_depth: usize,
    /// Bytes in any one string.
    pub max_string_size: usize,
    /// Elements in an array, nested arrays' elements included.
    pub max_array_size: usize,
    /// Properties in an object map, nested maps' properties included.
    pub max_map_size: usize,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        Self {
            max_operations: 1_000_000,
            max_call_levels: 64,
            max_expr_depth: 64,
            max_string_size: 1024 * 1024,
            max_array_size: 100_000,
            max_map_size: 100_000,
        }
    }
}

/// A rhai engine with the standard packages, `limits` enforced and no way out of the sandbox.
pub(super) fn sandboxed_engine(limits: &ScriptLimits) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_levels)
        // Function bodies get the same depth as top-level code: transforms put their
        // logic in helper functions as often as not.
        .set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size)
        .on_print(|text| tracing::debug!(target: "junction::script", "{text}"))
        .on_debug(log_debug)
        // `eval` would compile source at run time, outside the limits checked at compile.
        .disable_symbol("eval");
    engine
}

fn log_debug(text: &str, source: Option<&str>, pos: Position) {
    tracing::debug!(
        target: "junction::script",
        script = source.unwrap_or("inline"),
        line = pos.line(),
        "{text}"
    );
}
