//! Scripts lowered out of rhai's interpreter, for the part of the language transforms use most.
//!
//! Rhai walks its AST with a `Dynamic` per value, resolves every call by hash, and needs the
//! message converted into its own values and back on every run. For the common transform (read
//! fields, add numbers, build a map) that costs several times the work itself. So at compile
//! time, a script whose every statement and expression is in the covered subset is also
//! lowered into a small IR ([`Program`]) that runs straight over the message's JSON.
//!
//! Correctness rests on one rule: a lowered run either returns exactly what rhai would return
//! for the same input, or it gives up and the script runs on rhai from the start. Every
//! operation takes only the value types whose rhai behaviour it reproduces (a missing
//! property is `()`, INT + FLOAT is a FLOAT, ...) and gives up on the rest, and
//! errors are never produced here: whatever would fail is rhai's to fail, with rhai's message.
//! A lowered run changes nothing outside itself (no `print`, no clock), so giving up part
//! way costs time only. `tests` checks the rule against rhai on thousands of inputs.
//!
//! The subset: `let`/`const`, assignment and `+= -= *= /= %=` to locals, `for x in` (and
//! `for (x, i) in`) over arrays with `break`/`continue`, `if`, `switch` on constants with
//! guards, blocks; literals, arrays, object maps, `` `interpolated ${strings}` ``; reading
//! `body` through `.prop`, `[i]`, `["key"]`, `.get(key)`, `.len()`; `+ - * / %`, comparisons,
//! `! && || ??`, unary `-`; `x.push(v)` on a local; `unique(array)`. Not lowered: functions,
//! `while`/`loop`/`do`, `try`, `return`, `throw`, `?.`, `headers`, `meta`, changes to
//! `body`, and every other function call.
//!
//! Limits: the lowered run counts operations at no less than a quarter of rhai's count for
//! the same run (checked in `tests`), and copies of arrays, maps and long strings count by
//! their size. It measures data sizes where rhai does (literals, `push`, `+`, a method's
//! receiver) and nesting against `MAX_JSON_DEPTH`. It gives up at a quarter of the operation
//! limit or at any size limit, so any run rhai would stop with a limit error is given to
//! rhai. Its work is bounded by that count, so it needs no clock: rhai's time budget (see
//! `sandbox`) guards the runs rhai makes.
//!
//! Left to rhai at run time, besides errors: comparisons involving a float (rhai compares
//! them with a relative tolerance), `==` between different types, switch values that are
//! not strings, integers, booleans or `()`, and negative indices.

mod eval;
mod lower;

#[cfg(test)]
mod tests;

pub(crate) use eval::{Limits, Program};

use super::ScriptLimits;

/// The lowered form of a compiled script, if all of it is in the subset.
pub(crate) fn lower(ast: &rhai::AST) -> Option<Program> {
    lower::program(ast)
}

/// How many of rhai's operations a lowered operation may stand for, at most.
const OPERATIONS_PER_COUNT: u64 = 4;

impl Limits {
    pub(crate) fn of(limits: &ScriptLimits) -> Self {
        let unlimited = |n: usize| if n == 0 { usize::MAX } else { n };
        let operations = if limits.max_operations == 0 { 1_000_000 } else { limits.max_operations };
        Self {
            operations: operations / OPERATIONS_PER_COUNT,
            string: unlimited(limits.max_string_size),
            array: unlimited(limits.max_array_size),
            map: unlimited(limits.max_map_size),
        }
    }
}
