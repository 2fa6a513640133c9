//! The limits every script runs under, and the rhai engine configured to enforce them.
//!
//! Scripts come from route authors, and a bad one must fail its own run, not the process:
//! every resource a script can grow (time, stack, memory) has a limit here, and nothing
//! reaches outside the engine (`no_module` removes `import` and its file loader, `eval` is
//! disabled, `print` and `debug` go to the log instead of stdout).

use std::cell::Cell;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine, INT, Position};

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

/// The wall-clock time a run may take, per operation it may perform.
///
/// Rhai checks data sizes by walking the whole value after each change, so growing an array
/// to its limit takes time quadratic in the limit (seconds for 100 000 elements) while costing
/// few operations. A deadline of `max_operations` at this rate stops such a run as promptly as
/// an infinite loop, far above what an operation costs (5 to 60 ns, even in debug builds).
const TIME_PER_OPERATION_NS: u64 = 250;

/// How many operations pass between two looks at the clock, which costs more than one.
const CLOCK_EVERY: u64 = 256;

thread_local! {
    /// When the run on this thread must stop; rhai's progress callback is engine-wide, so the
    /// per-run deadline lives here (a run never leaves the thread that started it).
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// A rhai engine with the standard packages, `limits` enforced and no way out of the sandbox,
/// and the time budget for each run (`None`: no limit).
pub(super) fn sandboxed_engine(limits: &ScriptLimits) -> (Engine, Option<Duration>) {
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
        .disable_symbol("eval")
        // Curried arguments escape the data-size limits: `f = f.curry(f)` doubles in size
        // each time round a loop, and takes the process's memory in a few dozen operations.
        .disable_symbol("curry")
        .set_allow_anonymous_fn(!closures_capture());
    let budget = (limits.max_operations > 0)
        .then(|| Duration::from_nanos(limits.max_operations.saturating_mul(TIME_PER_OPERATION_NS)));
    if let Some(budget) = budget {
        let late = Dynamic::from(format!("ran longer than its time budget of {budget:?}"));
        engine.on_progress(move |operations| {
            let check = operations % CLOCK_EVERY == 0;
            let late_now = check && DEADLINE.get().is_some_and(|deadline| Instant::now() > deadline);
            late_now.then(|| late.clone())
        });
    }
    (engine, budget)
}

/// Runs `run` with the deadline `budget` from now enforced on this thread.
pub(super) fn within_budget<T>(budget: Option<Duration>, run: impl FnOnce() -> T) -> T {
    let previous = DEADLINE.replace(budget.map(|budget| Instant::now() + budget));
    let result = run();
    DEADLINE.set(previous);
    result
}

/// Whether anonymous functions can capture variables (rhai built without `no_closure`).
///
/// Captured variables are shared behind reference counts, outside the data-size limits, so a
/// loop of `let g = f; f = || g;` builds a chain thousands of links deep in milliseconds, and
/// dropping it recurses once per link until the native stack overflows and the process
/// aborts. Where capturing is possible, anonymous functions are disabled altogether; named
/// functions (`fn double(x) { x * 2 }`, `items.map(double)`) still work.
fn closures_capture() -> bool {
    Engine::new().eval::<INT>("let x = 1; let f = || x; f.call()").is_ok()
}

fn log_debug(text: &str, source: Option<&str>, pos: Position) {
    tracing::debug!(
        target: "junction::script",
        script = source.unwrap_or("inline"),
        line = pos.line(),
        "{text}"
    );
}
