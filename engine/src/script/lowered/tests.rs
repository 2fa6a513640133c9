//! Lowered runs against rhai's: on thousands of inputs, a lowered run must either give up or
//! answer exactly what rhai answers (same JSON text: key order and `1` vs `1.0` included).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use super::super::{Script, ScriptEngine, ScriptInput, ScriptLimits};
use super::Limits;
use crate::message::Meta;

/// Scripts in the subset, each built to exercise some of it (and some rhai corners in it).
const SCRIPTS: &[&str] = &[
    include_str!("../../../../transforms/crm_deal_to_master_deal.rhai"),
    "let a = body.amount; let b = a * 2 + 1; b / 3 - body.items.len() % 2",
    "body.n + 1",
    "body.n * body.n - body.z",
    "body.n / body.z",
    "body.n % body.z",
    "9223372036854775807 + body.n",
    "-body.n",
    "body.amount / 0.0",
    "\"x\" + body.id + \"-\" + body.title",
    "`deal ${body.id} n=${body.n}`",
    "body.amount > 1000 && body.stage == \"won\" || body.n <= 3",
    "!(body.n > 1) && body.amount >= body.n",
    "body.owner == ()",
    "[body.n <= 3, body.n < 3, body.n >= 3, body.n > 3, body.n == 3, body.n != 3, body.n <= 2.0, body.z >= body.n]",
    "[body.id <= \"D-100245\", body.id < \"D\", body.id >= body.title, body.id > \"D-100245\", body.stage != \"won\"]",
    "body.owner != () && body.id < body.title",
    "body.missing ?? body.owner ?? \"none\"",
    "body.amount == 1250000.5 && 2 == 2.0",
    "body.id == body.n",
    "if body.n > 2 { \"big\" } else if body.n > 0 { \"small\" } else { \"none\" }",
    "if body.stage == \"won\" { body.amount }",
    "switch body.stage { \"won\" if body.amount > 10 => 1, \"won\" => 2, \"lost\" => 3, _ => 4 }",
    "switch body.n { 1 => \"a\", 2 => \"b\", true => \"t\" }",
    "let total = 0; for (it, i) in body.items { if i == 1 { continue; } if it.budget > 250000 { break; } total += it.budget; } total",
    "let total = 0; for r in body { total += r.value; } #{ meter: body[0].meter, total: total }",
    "#{ prices: body, count: body.len() }",
    "body.items[0].budget",
    "body[\"client\"][\"inn\"]",
    "body.items[body.n].channel",
    "body.items[-1]",
    "body.client.get(\"kpp\")",
    "body.get(\"get\")",
    "body.tags[1].len() + body.title.len()",
    "body.items[body.items.len() - 1].platform",
    "#{ a: [body.items, body.client], b: #{ c: body.tags }, z: body.client.name }",
    "let xs = []; for t in body.tags { xs.push(t); xs.push(t); } unique(xs)",
    "let xs = [1, 1.0, \"1\", (), true, ()]; unique(xs)",
    "unique(body.tags)",
    "let x = 1;",
    "let x = body.n; x += 1;",
    "{ let y = 2; y * body.n }",
    "let x = 1; { let x = 2; } x",
    "const k = 3; k * body.n",
    "body.amount + 0",
    "body",
    "body.client",
    "body.tags",
    "let s = \"\"; for t in body.tags { s += t; s += \",\"; } s",
    "let s = 1; s -= body.amount; s *= 2; s /= 4; s",
    "let m = #{ b: 1, a: body.id }; m.a + m.b",
    "let m = #{ b: 1, a: 2 }; m[\"a\"] + m.get(\"b\") + m.len()",
    "let a = [body.n, 2, 3]; a[0] + a[2] + a.len()",
    "let a = []; a.push(a); a.push(a); a",
    "let i = 0; for x in body.items { i += 1; if i > 2 { break } } i",
    // Rhai compares floats with a tolerance: such comparisons are left to it.
    "[body.n == 0.3, body.n >= 100, body.n > 0, body.n == 0, body.amount < 1e20]",
    // Rhai evaluates map members in source order, and a chain's indices before its base.
    "let x = 1; #{ b: { x = 2; 0 }, a: x }",
    "let x = 1; [x][{ x = 2; 0 }]",
    "let x = 1; switch body.stage { \"won\" => { x = 2; x }, _ => x }",
];

/// Scripts outside the subset: they must not be lowered.
const NOT_LOWERED: &[&str] = &[
    "fn double(x) { x * 2 } double(body.n)",
    "let i = 0; while i < 3 { i += 1; } i",
    "body.x = 1;",
    "body.items.push(1);",
    "headers.x",
    "meta.route",
    "body?.client",
    "print(body.id)",
    "body.id.to_upper()",
    "let x = 'c'; x",
    "let t = 0; for i in 0..body.n { t += i } t",
    "switch body.n { 1..3 => 1, _ => 2 }",
    "throw \"no\"",
    "const xs = []; xs.push(1); xs",
    "let body = #{ a: 1 };",
    "let body = body.client;",
    "for body in body.items { }",
    "let x = 1; switch body.stage { \"won\" => let x = body.n, _ => () } x",
];

/// The deal every input starts from (examples/, which every clone has).
fn deal() -> Value {
    serde_json::from_str(include_str!("../../../../examples/crm-deal.json")).expect("the example deal is JSON")
}

/// A small xorshift generator: the inputs are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A value of any JSON type, including the numbers rhai treats specially.
fn odd_value(rng: &mut Rng) -> Value {
    let choices = [
        json!(null),
        json!(true),
        json!(0),
        json!(-3),
        json!(2),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(2.5),
        json!(1e300),
        json!(-0.0),
        json!(1.0),
        json!(0.300_000_000_000_000_04),
        json!(99.999_999_999_999_99),
        json!(1e-20),
        json!(""),
        json!("won"),
        json!("lost"),
        json!("ünïcødé ✓"),
        json!([]),
        json!([1, "a", null]),
        json!({}),
        json!({"value": 3, "meter": "m1", "budget": 7, "channel": "tv"}),
        json!([{"value": 1.5, "meter": "m2"}, {"value": 2}]),
    ];
    choices[rng.below(choices.len())].clone()
}

/// Inputs: the deal, then the deal with fields dropped, replaced, added and nested values
/// changed, then a few bodies that are not objects at all.
fn inputs() -> Vec<Value> {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let base = deal();
    let mut out = vec![base.clone(), json!([{"value": 1, "meter": "m"}, {"value": 2.5, "meter": "m"}]), json!(7)];
    for _ in 0..400 {
        let mut v = base.clone();
        let Value::Object(map) = &mut v else { unreachable!() };
        for _ in 0..1 + rng.below(3) {
            let keys: Vec<String> = map.keys().cloned().collect();
            match rng.below(6) {
                0 => {
                    map.shift_remove(&keys[rng.below(keys.len())]);
                }
                1 | 2 => {
                    map.insert(keys[rng.below(keys.len())].clone(), odd_value(&mut rng));
                }
                3 => {
                    let name = ["n", "z", "missing", "get", "value", "meter"][rng.below(6)];
                    map.insert(name.to_owned(), odd_value(&mut rng));
                }
                4 => {
                    if let Some(Value::Array(items)) = map.get_mut("items")
                        && !items.is_empty()
                    {
                        let i = rng.below(items.len());
                        if let Value::Object(item) = &mut items[i] {
                            let field = ["budget", "channel", "platform"][rng.below(3)];
                            item.insert(field.to_owned(), odd_value(&mut rng));
                        } else {
                            items[i] = odd_value(&mut rng);
                        }
                    }
                }
                _ => {
                    map.insert("n".to_owned(), json!(rng.below(7) as i64 - 2));
                    map.insert("z".to_owned(), json!(rng.below(3) as i64));
                }
            }
        }
        out.push(v);
    }
    out
}

fn input<'a>(body: &'a Value, meta: &'a Meta, headers: &'a serde_json::Map<String, Value>) -> ScriptInput<'a> {
    ScriptInput { body, headers, meta, vars: &[] }
}

/// The same script with its lowered form set aside, so that it runs on rhai.
fn on_rhai(script: &Script) -> Script {
    Script { lowered: None, ..script.clone() }
}

fn text(v: &Value) -> String {
    serde_json::to_string(v).expect("JSON prints")
}

/// Runs every script on every input both ways; returns how many runs the lowered form answered.
fn compare(engine: &ScriptEngine, limits: Limits, scripts: &[&str], inputs: &[Value]) -> usize {
    let (meta, headers) = (Meta::default(), serde_json::Map::new());
    let mut answered = 0;
    for source in scripts {
        let script = engine.compile("test.rhai", source).expect("compiles");
        let program = script.lowered.clone().unwrap_or_else(|| panic!("not lowered: {source}"));
        let rhai = on_rhai(&script);
        for body in inputs {
            let expected = engine.run(&rhai, input(body, &meta, &headers));
            if let Some(lowered) = program.run(body, script.uses.body, limits) {
                answered += 1;
                let expected = expected.unwrap_or_else(|e| {
                    panic!("lowered answered {} where rhai failed ({e}):\n{source}\n{}", text(&lowered), text(body))
                });
                assert_eq!(text(&lowered), text(&expected.body), "{source}\non {}", text(body));
            }
            let expected = engine.eval(&rhai, input(body, &meta, &headers));
            if let Some(lowered) = program.eval(body, limits) {
                let expected =
                    expected.unwrap_or_else(|e| panic!("eval: rhai failed ({e}):\n{source}\n{}", text(body)));
                assert_eq!(text(&lowered), text(&expected), "eval: {source}\non {}", text(body));
            }
            let expected = engine.eval_bool(&rhai, input(body, &meta, &headers));
            if let Some(lowered) = program.eval_bool(body, limits) {
                assert_eq!(Some(lowered), expected.ok(), "eval_bool: {source}\non {}", text(body));
            }
        }
    }
    answered
}

#[test]
fn lowered_runs_answer_as_rhai_does_or_give_up() {
    let limits = ScriptLimits::default();
    let engine = ScriptEngine::new(&limits);
    let inputs = inputs();
    let answered = compare(&engine, Limits::of(&limits), SCRIPTS, &inputs);
    let runs = SCRIPTS.len() * inputs.len();
    // Most runs must be answered, or this test would pass by giving up on everything.
    assert!(answered * 2 > runs, "only {answered} of {runs} runs were answered");
}

#[test]
fn the_usual_deal_is_answered_without_rhai() {
    let engine = ScriptEngine::new(&ScriptLimits::default());
    let script = engine.compile("t.rhai", SCRIPTS[0]).expect("compiles");
    let program = script.lowered.as_ref().expect("the benchmark's transform is lowered");
    let body = deal();
    let lowered = program.run(&body, true, engine.lowered_limits).expect("answered");
    let (meta, headers) = (Meta::default(), serde_json::Map::new());
    let via_rhai = engine.run(&on_rhai(&script), input(&body, &meta, &headers)).expect("rhai runs it");
    assert_eq!(text(&lowered), text(&via_rhai.body));
}

#[test]
fn scripts_outside_the_subset_are_left_to_rhai() {
    let engine = ScriptEngine::new(&ScriptLimits::default());
    for source in NOT_LOWERED {
        let script = engine.compile("t.rhai", source).expect("compiles");
        assert!(script.lowered.is_none(), "lowered: {source}");
    }
}

#[test]
fn runs_past_a_size_limit_are_given_to_rhai() {
    let limits = ScriptLimits { max_string_size: 40, max_array_size: 5, max_map_size: 4, ..ScriptLimits::default() };
    let engine = ScriptEngine::new(&limits);
    let inputs = inputs();
    let sized = [
        // Rhai measures a method's receiver too: `body.items` holds 15 properties.
        "body.items.len()",
        "body.get(\"id\")",
        "let xs = []; for t in body.tags { xs.push(t); xs.push(t); } xs",
        "body.title + body.title",
        "`${body.title}${body.title}`",
        "#{ a: 1, b: 2, c: 3, d: body.client }",
        "[body.items]",
        "let a = [1]; a = [a, a]; a = [a, a]; a",
    ];
    compare(&engine, Limits::of(&limits), &sized, &inputs);
    compare(&engine, Limits::of(&limits), &["body.client.len()", "body.tags.len()"], &inputs);
    // And the deal itself is over these limits in each script: rhai fails, the lowered run gives up.
    let body = deal();
    for source in sized {
        let script = engine.compile("t.rhai", source).expect("compiles");
        let program = script.lowered.as_ref().expect("lowered");
        assert!(program.run(&body, true, Limits::of(&limits)).is_none(), "{source}");
    }
}

#[test]
fn lowered_runs_count_at_least_a_quarter_of_rhais_operations() {
    let counted = Arc::new(AtomicU64::new(0));
    let mut rhai = rhai::Engine::new();
    super::super::library::register(&mut rhai);
    let seen = Arc::clone(&counted);
    rhai.on_progress(move |ops| {
        seen.fetch_max(ops, Ordering::Relaxed);
        None
    });
    let engine = ScriptEngine::new(&ScriptLimits::default());
    let limits = Limits { operations: u64::MAX, ..Limits::of(&ScriptLimits::default()) };
    let mut big = deal();
    big["items"] = Value::Array(vec![big["items"][0].clone(); 300]);
    big["tags"] = Value::Array((0..300).map(|i| json!(format!("t{}", i % 7))).collect());
    for body in [deal(), big] {
        for source in SCRIPTS {
            let script = engine.compile("t.rhai", source).expect("compiles");
            let Some(ours) = script.lowered.as_ref().and_then(|p| p.operations(&body, limits)) else { continue };
            counted.store(0, Ordering::Relaxed);
            let ast = rhai.compile(source).expect("compiles");
            let mut scope = rhai::Scope::new();
            scope.push_dynamic("body", super::super::convert::to_rhai(&body));
            if rhai.eval_ast_with_scope::<rhai::Dynamic>(&mut scope, &ast).is_err() {
                continue;
            }
            let theirs = counted.load(Ordering::Relaxed);
            assert!(theirs <= super::OPERATIONS_PER_COUNT * ours, "{source}: rhai counted {theirs}, lowered {ours}");
        }
    }
}

#[test]
fn values_nested_deeper_than_json_allows_are_given_to_rhai() {
    let engine = ScriptEngine::new(&ScriptLimits::default());
    let (meta, headers) = (Meta::default(), serde_json::Map::new());
    let script = engine.compile("t.rhai", "let a = []; for x in body.tags { a = [a]; } a").expect("compiles");
    let program = script.lowered.as_ref().expect("lowered");
    let limits = engine.lowered_limits;
    for (levels, fits) in [(100, true), (200, false)] {
        let body = json!({ "tags": vec![1; levels] });
        let via_rhai = engine.run(&on_rhai(&script), input(&body, &meta, &headers));
        assert_eq!(via_rhai.is_ok(), fits, "{levels} levels: {via_rhai:?}");
        match program.run(&body, true, limits) {
            Some(lowered) => assert_eq!(text(&lowered), text(&via_rhai.expect("rhai answered").body)),
            None => assert!(!fits, "{levels} levels fit, yet the lowered run gave up"),
        }
    }
}
