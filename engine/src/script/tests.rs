//! The engine end to end: how runs read and write the message, how errors are sorted and
//! located, and that the sandbox stops hostile scripts quickly.

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::*;

fn engine() -> ScriptEngine {
    ScriptEngine::new(&ScriptLimits::default())
}

struct Fixture {
    body: Value,
    headers: Map<String, Value>,
    meta: Value,
}

impl Fixture {
    fn new() -> Self {
        let headers = json!({ "source": "crm" });
        Self {
            body: json!({ "id": "D-1", "amount": 1250, "rate": 1.5, "lines": [1, 2] }),
            headers: headers.as_object().cloned().unwrap_or_default(),
            meta: json!({ "route": "deals", "attempt": 1 }),
        }
    }

    fn input(&self) -> ScriptInput<'_> {
        ScriptInput {
            body: &self.body,
            headers: &self.headers,
            meta: &self.meta,
        }
    }
}

fn run(source: &str) -> Result<ScriptOutput, ScriptError> {
    run_with(&ScriptLimits::default(), source)
}

fn run_with(limits: &ScriptLimits, source: &str) -> Result<ScriptOutput, ScriptError> {
    let engine = ScriptEngine::new(limits);
    let script = engine.compile("test.rhai", source)?;
    engine.run(&script, Fixture::new().input())
}

fn eval(source: &str) -> Result<Value, ScriptError> {
    let engine = engine();
    let script = engine.compile_expression("inline", source)?;
    engine.eval(&script, Fixture::new().input())
}

/// Runs a script that must fail, checking it failed within `limit`.
fn failure_within(source: &str, limit: Duration) -> ScriptError {
    let started = Instant::now();
    let result = run(source);
    let elapsed = started.elapsed();
    assert!(elapsed < limit, "{source:?} took {elapsed:?}");
    match result {
        Ok(output) => panic!("{source:?} succeeded with {:?}", output.body),
        Err(err) => err,
    }
}

fn failure(source: &str) -> ScriptError {
    failure_within(source, Duration::from_secs(1))
}

#[test]
fn last_expression_replaces_the_body() -> Result<(), ScriptError> {
    let output =
        run("let total = body.amount * 2;\n#{ deal: body.id, total: total, rate: body.rate }")?;
    assert_eq!(
        output.body,
        json!({ "deal": "D-1", "rate": 1.5, "total": 2500 })
    );
    assert_eq!(output.headers, Fixture::new().headers);
    Ok(())
}

#[test]
fn a_script_ending_in_a_statement_keeps_the_modified_body() -> Result<(), ScriptError> {
    let output = run("body.amount += 1;\nbody.lines.push(3);\nbody.tag = `x${body.amount}`;")?;
    assert_eq!(
        output.body,
        json!({ "amount": 1251, "id": "D-1", "lines": [1, 2, 3], "rate": 1.5, "tag": "x1251" })
    );
    // Ints stay ints and floats stay floats through the round trip.
    assert!(output.body["amount"].is_i64());
    assert!(output.body["rate"].is_f64());
    Ok(())
}

#[test]
fn headers_written_by_the_script_come_back() -> Result<(), ScriptError> {
    let output = run(r#"headers.priority = 1; headers["x-deal"] = body.id;"#)?;
    assert_eq!(
        Value::Object(output.headers),
        json!({ "priority": 1, "source": "crm", "x-deal": "D-1" })
    );
    Ok(())
}

#[test]
fn headers_must_stay_a_map() {
    let err = failure("headers = 5;");
    assert_eq!(err.kind, ScriptErrorKind::Runtime);
    assert_eq!(
        err.message,
        "`headers` must be an object map, but the script left a i64"
    );
}

#[test]
fn meta_is_readable_but_not_writable() -> Result<(), ScriptError> {
    assert_eq!(eval("meta.route + \"/\" + meta.attempt")?, json!("deals/1"));
    let err = failure("meta.route = \"other\";");
    assert_eq!(err.kind, ScriptErrorKind::Runtime);
    Ok(())
}

#[test]
fn expressions_evaluate_to_json_and_bools() -> Result<(), ScriptError> {
    let engine = engine();
    let fixture = Fixture::new();
    let is_big = engine.compile_expression("filter", "body.amount > 1000")?;
    assert!(engine.eval_bool(&is_big, fixture.input())?);
    let is_small = engine.compile_expression("filter", "body.amount < 1000")?;
    assert!(!engine.eval_bool(&is_small, fixture.input())?);
    assert_eq!(eval("()")?, Value::Null);
    assert_eq!(eval("[body.lines[1], 0.5]")?, json!([2, 0.5]));

    let amount = engine.compile_expression("filter", "body.amount")?;
    let err = engine.eval_bool(&amount, fixture.input()).err();
    assert_eq!(
        err.map(|e| (e.kind, e.to_string())),
        Some((
            ScriptErrorKind::Runtime,
            "filter: expected a bool (true or false), got i64".to_owned()
        ))
    );
    Ok(())
}

#[test]
fn expressions_reject_statements() {
    let err = engine().compile_expression("key", "let x = 1").err();
    assert_eq!(err.map(|e| e.kind), Some(ScriptErrorKind::Syntax));
}

#[test]
fn the_library_is_callable_from_scripts() -> Result<(), ScriptError> {
    assert_eq!(eval("money_round(1250000.505, 2)")?, json!("1250000.51"));
    assert_eq!(eval("money_sum([0.1, 0.2])")?, json!("0.3"));
    assert_eq!(
        eval("format_date(parse_date(\"2025-03-01\"), \"%d.%m.%Y\")")?,
        json!("01.03.2025")
    );
    assert_eq!(
        eval("json_parse(json_stringify(body)).lines")?,
        json!([1, 2])
    );
    assert_eq!(
        eval("base64_decode(base64_encode(sha256(\"\")))").map(|v| v.as_str().map(str::len))?,
        Some(64)
    );
    // Library errors are catchable, and reported as Runtime rather than Thrown.
    let output = run("let r = 0;\ntry { parse_date(\"soon\"); r = 1; } catch (e) { r = 2; }\nr")?;
    assert_eq!(output.body, json!(2));
    let err = failure("let x = 1;\nparse_date(\"soon\")");
    assert_eq!((err.kind, err.line), (ScriptErrorKind::Runtime, Some(2)));
    assert_eq!(
        err.message,
        "parse_date: \"soon\" is neither an RFC 3339 date-time nor a YYYY-MM-DD date"
    );
    Ok(())
}

#[test]
fn throw_rejects_the_message_with_the_thrown_value() {
    let err = failure("if body.amount > 1000 {\n  throw \"amount too large: \" + body.amount;\n}");
    assert_eq!(err.kind, ScriptErrorKind::Thrown);
    assert_eq!(err.message, "amount too large: 1250");
    assert_eq!((err.line, err.column), (Some(2), Some(3)));
    assert_eq!(err.to_string(), "test.rhai:2:3: amount too large: 1250");

    let err = failure("fn check(x) {\n  throw x;\n}\ncheck(\"no\")");
    assert_eq!(
        (err.kind, err.message.as_str()),
        (ScriptErrorKind::Thrown, "no (in function 'check')")
    );
    assert_eq!(err.line, Some(2));
}

#[test]
fn syntax_errors_point_at_the_scripts_own_line() {
    let err = engine()
        .compile("bad.rhai", "let a = 1;\nlet b = 2;\nlet c = ;\n")
        .err();
    let err = err.expect("the script does not parse");
    assert_eq!(err.kind, ScriptErrorKind::Syntax);
    assert_eq!((err.line, err.column), (Some(3), Some(9)));
    assert_eq!(err.to_string(), format!("bad.rhai:3:9: {}", err.message));
}

#[test]
fn runtime_errors_carry_their_line() {
    let err = failure("let a = [1];\nlet b = 2;\na[5] + b");
    assert_eq!(err.kind, ScriptErrorKind::Runtime);
    assert_eq!(err.line, Some(3));
    assert_eq!(
        err.message,
        "Array index 5 out of bounds: only 1 element in array"
    );

    let err = failure("let a = 1;\nnot_a_function(a)");
    assert_eq!((err.kind, err.line), (ScriptErrorKind::Runtime, Some(2)));
}

#[test]
fn infinite_loops_hit_the_operation_limit() {
    let err = failure("loop {}");
    assert_eq!(err.kind, ScriptErrorKind::Limit);
    assert_eq!(err.message, "Too many operations");
}

#[test]
fn growing_strings_hit_the_string_limit() {
    let err = failure("let s = \"x\";\nloop { s += s; }");
    assert_eq!(
        (err.kind, err.message.as_str()),
        (ScriptErrorKind::Limit, "Length of string too large")
    );
    assert_eq!(err.line, Some(2));
}

#[test]
fn growing_arrays_hit_the_array_limit() {
    let small = ScriptLimits {
        max_array_size: 1_000,
        ..ScriptLimits::default()
    };
    let err = run_with(&small, "let a = [];\nloop { a.push(1) }").err();
    assert_eq!(
        err.map(|e| (e.kind, e.message, e.line)),
        Some((
            ScriptErrorKind::Limit,
            "Size of array/BLOB too large".to_owned(),
            Some(2)
        ))
    );
}

#[test]
fn growing_maps_hit_the_map_limit() {
    let small = ScriptLimits {
        max_map_size: 1_000,
        ..ScriptLimits::default()
    };
    // Through a method: rhai skips the size check when `m[key] = value` adds a key, so that
    // form is stopped by the time budget instead (see the next test).
    let err = run_with(
        &small,
        "let m = #{}; let i = 0; loop { m.set(`k${i}`, i); i += 1; }",
    )
    .err();
    assert_eq!(
        err.map(|e| (e.kind, e.message)),
        Some((
            ScriptErrorKind::Limit,
            "Size of object map too large".to_owned()
        ))
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
    let tight = ScriptLimits {
        max_operations: 10_000,
        ..ScriptLimits::default()
    };
    // Few operations, each slow: every push walks the 50 000 elements already there.
    let err = run_with(&tight, "let a = [];\na.pad(50000, 0);\nloop { a.push(1) }").err();
    assert_eq!(
        err.map(|e| (e.kind, e.message)),
        Some((
            ScriptErrorKind::Limit,
            "ran longer than its time budget of 2.5ms".to_owned()
        ))
    );
}

#[test]
fn values_too_deep_for_json_are_refused() {
    let err = failure("let a = 1;\nfor i in 0..200 { a = [a]; }\nbody = a;");
    assert_eq!(err.kind, ScriptErrorKind::Limit);
    assert_eq!(
        err.message,
        "the script's `body` is nested deeper than 128 levels"
    );
    let err = failure("let a = 1; for i in 0..200 { a = [a]; } json_stringify(a)");
    assert_eq!(err.kind, ScriptErrorKind::Runtime);
    assert_eq!(
        err.message,
        "json_stringify: the value is nested deeper than 128 levels"
    );
}

#[test]
fn curry_is_not_available() {
    // `f = f.curry(f)` doubles in size each time round, unseen by the data-size limits.
    let err = engine()
        .compile("test.rhai", "let f = Fn(\"x\"); f = f.curry(f);")
        .err();
    assert_eq!(err.map(|e| e.kind), Some(ScriptErrorKind::Syntax));
}

#[test]
fn chains_of_closures_cannot_overflow_the_stack() {
    // Where closures capture, this builds a chain 100 000 links deep whose drop would
    // overflow the stack; the test passing at all is the point.
    let result = run("let f = || 1;\nfor i in 0..100000 { let g = f; f = || g; }\n1");
    if let Err(err) = result {
        assert!(
            matches!(err.kind, ScriptErrorKind::Syntax | ScriptErrorKind::Limit),
            "{err}"
        );
    }
}

#[test]
fn runaway_recursion_hits_the_call_limit() {
    let err = failure("fn f(x) { f(x + 1) }\nf(0)");
    assert_eq!(
        (err.kind, err.message.as_str()),
        (ScriptErrorKind::Limit, "Stack overflow")
    );
}

#[test]
fn eval_is_not_available() {
    let err = engine().compile("test.rhai", "eval(\"1\")").err();
    assert_eq!(err.map(|e| e.kind), Some(ScriptErrorKind::Syntax));
}

#[test]
fn deep_nesting_is_a_compile_time_limit() {
    let source = format!("{}1{}", "(".repeat(500), ")".repeat(500));
    let err = engine().compile("deep.rhai", &source).err();
    assert_eq!(err.map(|e| e.kind), Some(ScriptErrorKind::Limit));
    let err = engine().compile_expression("deep", &source).err();
    assert_eq!(err.map(|e| e.kind), Some(ScriptErrorKind::Limit));
}

#[test]
fn print_and_debug_do_not_fail_the_run() -> Result<(), ScriptError> {
    let output = run("print(\"hello\"); debug(body.id); 1")?;
    assert_eq!(output.body, json!(1));
    Ok(())
}

#[test]
fn the_engine_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ScriptEngine>();
    assert_send_sync::<Script>();
}
