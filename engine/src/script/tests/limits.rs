//! The sandbox: every limit stops its runaway script quickly with a `Limit` error, and the
//! ways around the limits (`eval`, `curry`, capturing closures) are closed.

use super::*;

#[test]
fn infinite_loops_hit_the_operation_limit() {
    let err = failure("loop {}");
    assert_eq!(err.kind, ScriptErrorKind::Limit);
    assert_eq!(err.message, "Too many operations");
}

#[test]
fn growing_strings_hit_the_string_limit() {
    let err = failure("let s = \"x\";\nloop { s += s; }");
    assert_eq!((err.kind, err.message.as_str()), (ScriptErrorKind::Limit, "Length of string too large"));
    assert_eq!(err.line, Some(2));
}

#[test]
fn growing_arrays_hit_the_array_limit() {
    let small = ScriptLimits { max_array_size: 1_000, ..ScriptLimits::default() };
    let err = run_with(&small, "let a = [];\nloop { a.push(1) }").err();
    assert_eq!(
        err.map(|e| (e.kind, e.message, e.line)),
        Some((ScriptErrorKind::Limit, "Size of array/BLOB too large".to_owned(), Some(2)))
    );
}

#[test]
fn growing_maps_hit_the_map_limit() {
    let small = ScriptLimits { max_map_size: 1_000, ..ScriptLimits::default() };
    // Through a method: rhai skips the size check when `m[key] = value` adds a key, so that
    // form is stopped by the time budget instead (see the next test).
    let err = run_with(&small, "let m = #{}; let i = 0; loop { m.set(`k${i}`, i); i += 1; }").err();
    assert_eq!(
        err.map(|e| (e.kind, e.message)),
        Some((ScriptErrorKind::Limit, "Size of object map too large".to_owned()))
    );
}

/// Rhai walks a whole value to check its size after each change, so growing one to the
/// default limits takes seconds: the time budget must stop these first.
#[test]
fn growth_to_the_default_limits_fails_quickly() {
    for source in [
        "let a = []; loop { a.push(1) }",
        "let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }",
        "let a = []; loop { a = [a]; }",
        "let m = #{}; loop { m = #{ inner: m }; }",
    ] {
        let err = failure(source);
        assert_eq!(err.kind, ScriptErrorKind::Limit, "{source}: {err}");
    }
}

#[test]
fn the_time_budget_scales_with_the_operation_limit() {
    let tight = ScriptLimits { max_operations: 10_000, ..ScriptLimits::default() };
    // Few operations, each slow: every push walks the 50 000 elements already there.
    let err = run_with(&tight, "let a = [];\na.pad(50000, 0);\nloop { a.push(1) }").err();
    assert_eq!(
        err.map(|e| (e.kind, e.message)),
        Some((ScriptErrorKind::Limit, "ran longer than its time budget of 2.5ms".to_owned()))
    );
}

#[test]
fn runaway_recursion_hits_the_call_limit() {
    let err = failure("fn f(x) { f(x + 1) }\nf(0)");
    assert_eq!((err.kind, err.message.as_str()), (ScriptErrorKind::Limit, "Stack overflow"));
}

#[test]
fn values_too_deep_for_json_are_refused() {
    let err = failure("let a = 1;\nfor i in 0..200 { a = [a]; }\nbody = a;");
    assert_eq!(err.kind, ScriptErrorKind::Limit);
    assert_eq!(err.message, "the script's `body` is nested deeper than 128 levels");
    let err = failure("let a = 1; for i in 0..200 { a = [a]; } json_stringify(a)");
    assert_eq!(err.kind, ScriptErrorKind::Runtime);
    assert_eq!(err.message, "json_stringify: the value is nested deeper than 128 levels");
}

#[test]
fn eval_is_not_available() {
    let err = engine().compile("test.rhai", "eval(\"1\")").err();
    assert_eq!(err.map(|e| e.kind), Some(ScriptErrorKind::Syntax));
}

#[test]
fn curry_is_not_available() {
    // `f = f.curry(f)` doubles in size each time round, unseen by the data-size limits.
    let err = engine().compile("test.rhai", "let f = Fn(\"x\"); f = f.curry(f);").err();
    assert_eq!(err.map(|e| e.kind), Some(ScriptErrorKind::Syntax));
}

#[test]
fn chains_of_closures_cannot_overflow_the_stack() {
    // Where closures capture, this builds a chain 100 000 links deep whose drop would
    // overflow the stack; the test passing at all is the point.
    let result = run("let f = || 1;\nfor i in 0..100000 { let g = f; f = || g; }\n1");
    if let Err(err) = result {
        assert!(matches!(err.kind, ScriptErrorKind::Syntax | ScriptErrorKind::Limit), "{err}");
    }
}
