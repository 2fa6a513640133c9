//! The engine end to end: how runs read and write the message and reach the library.
//! `errors` checks how failures are sorted and located, `limits` that the sandbox stops
//! hostile scripts quickly.

mod errors;
mod limits;

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::*;

fn engine() -> ScriptEngine {
    ScriptEngine::new(&ScriptLimits::default())
}

struct Fixture {
    body: Value,
    headers: Map<String, Value>,
    meta: crate::message::Meta,
}

impl Fixture {
    fn new() -> Self {
        let headers = json!({ "source": "crm" });
        Self {
            body: json!({ "id": "D-1", "amount": 1250, "rate": 1.5, "lines": [1, 2] }),
            headers: headers.as_object().cloned().unwrap_or_default(),
            meta: crate::message::Meta { route: "deals".into(), attempt: 1, ..Default::default() },
        }
    }

    fn input(&self) -> ScriptInput<'_> {
        ScriptInput { body: &self.body, headers: &self.headers, meta: &self.meta, vars: &[] }
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

/// Runs a script that must fail, and must fail well within a second: a run on the hot path
/// never hangs.
fn failure(source: &str) -> ScriptError {
    let started = Instant::now();
    let result = run(source);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(1), "{source:?} took {elapsed:?}");
    match result {
        Ok(output) => panic!("{source:?} succeeded with {:?}", output.body),
        Err(err) => err,
    }
}

#[test]
fn last_expression_replaces_the_body() -> Result<(), ScriptError> {
    let output = run("let total = body.amount * 2;\n#{ deal: body.id, total: total, rate: body.rate }")?;
    assert_eq!(output.body, json!({ "deal": "D-1", "rate": 1.5, "total": 2500 }));
    // A script that never names `headers` leaves them as they were.
    assert_eq!(output.headers, None);
    Ok(())
}

#[test]
fn a_script_ending_in_a_statement_keeps_the_modified_body() -> Result<(), ScriptError> {
    let output = run("body.amount += 1;\nbody.lines.push(3);\nbody.tag = `x${body.amount}`;")?;
    assert_eq!(output.body, json!({ "amount": 1251, "id": "D-1", "lines": [1, 2, 3], "rate": 1.5, "tag": "x1251" }));
    // Ints stay ints and floats stay floats through the round trip.
    assert!(output.body["amount"].is_i64());
    assert!(output.body["rate"].is_f64());
    Ok(())
}

#[test]
fn headers_written_by_the_script_come_back() -> Result<(), ScriptError> {
    let output = run(r#"headers.priority = 1; headers["x-deal"] = body.id;"#)?;
    assert_eq!(output.headers.map(Value::Object), Some(json!({ "priority": 1, "source": "crm", "x-deal": "D-1" })));
    Ok(())
}

#[test]
fn headers_must_stay_a_map() {
    let err = failure("headers = 5;");
    assert_eq!(err.kind, ScriptErrorKind::Runtime);
    assert_eq!(err.message, "`headers` must be an object map, but the script left a i64");
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
        Some((ScriptErrorKind::Runtime, "filter: expected a bool (true or false), got i64".to_owned()))
    );
    Ok(())
}

#[test]
fn the_library_is_callable_from_scripts() -> Result<(), ScriptError> {
    assert_eq!(eval("money_round(1250000.505, 2)")?, json!("1250000.51"));
    assert_eq!(eval("money_sum([0.1, 0.2])")?, json!("0.3"));
    assert_eq!(eval("format_date(parse_date(\"2025-03-01\"), \"%d.%m.%Y\")")?, json!("01.03.2025"));
    assert_eq!(eval("json_parse(json_stringify(body)).lines")?, json!([1, 2]));
    assert_eq!(eval("base64_decode(base64_encode(sha256(\"\")))").map(|v| v.as_str().map(str::len))?, Some(64));
    // Library errors are catchable, and reported as Runtime rather than Thrown.
    let output = run("let r = 0;\ntry { parse_date(\"soon\"); r = 1; } catch (e) { r = 2; }\nr")?;
    assert_eq!(output.body, json!(2));
    let err = failure("let x = 1;\nparse_date(\"soon\")");
    assert_eq!((err.kind, err.line), (ScriptErrorKind::Runtime, Some(2)));
    assert_eq!(err.message, "parse_date: \"soon\" is neither an RFC 3339 date-time nor a YYYY-MM-DD date");
    Ok(())
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
