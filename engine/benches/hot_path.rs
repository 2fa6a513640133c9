//! The per-request work of the benchmark route, piece by piece (`cargo bench -p junction-engine`):
//! where a request's CPU time goes inside the engine, without the network. Each line is the
//! mean of many runs; compare lines within one run, not across machines.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use junction_engine::Message;
use junction_engine::provenance::{KeyPath, Provenance, RouteProvenance};
use junction_engine::schema::Schema;
use junction_engine::script::{ScriptEngine, ScriptInput, ScriptLimits};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn time(label: &str, runs: u32, mut f: impl FnMut()) {
    // `cargo test --all-targets` runs benches too, without `--bench`: there each piece runs
    // once, to show it still works, and nothing is timed.
    if !std::env::args().any(|a| a == "--bench") {
        f();
        return;
    }
    for _ in 0..runs / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..runs {
        f();
    }
    let per = start.elapsed() / runs;
    println!("{label:<40} {:>8.2} µs", per.as_secs_f64() * 1e6);
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // The benchmark's workload; the copy in examples/ when the shared folder is not beside the repo.
    let deal = std::fs::read(root.join("../shared/bench/deal.json"))
        .or_else(|_| std::fs::read(root.join("examples/crm-deal.json")))
        .expect("a deal to measure with");
    let value: serde_json::Value = serde_json::from_slice(&deal).expect("deal.json is JSON");
    let schema = Schema::load(&root.join("schemas"), "crm-deal.json").expect("schema");
    let engine = ScriptEngine::new(&ScriptLimits::default());
    let source = std::fs::read_to_string(root.join("transforms/crm_deal_to_master_deal.rhai")).expect("transform");
    let script = engine.compile("crm_deal_to_master_deal.rhai", &source).expect("compiles");
    let msg = Message::json(value.clone());
    let input = || ScriptInput { body: &value, headers: &msg.headers, meta: &msg.meta, vars: &[] };
    let out = engine.run(&script, input()).expect("runs").body;

    let n = 20_000;
    time("parse deal.json (serde_json)", n, || drop(black_box(serde_json::from_slice::<serde_json::Value>(&deal))));
    time("parse deal.json (json::from_slice)", n, || drop(black_box(junction_engine::json::from_slice(&deal, 100))));
    time("validate against crm-deal.json", n, || drop(black_box(schema.violations(&value))));
    time("clone the message", n, || drop(black_box(msg.clone())));
    time("transform (lowered, whole run)", n, || drop(black_box(engine.run(&script, input()))));
    // A function definition keeps a script out of the lowered subset: these run on Rhai.
    let on_rhai =
        |name: &str, source: &str| engine.compile(name, &format!("fn unused() {{}}\n{source}")).expect("compiles");
    let rhai = on_rhai("on_rhai.rhai", &source);
    time("transform (Rhai, whole run)", n, || drop(black_box(engine.run(&rhai, input()))));
    let empty = on_rhai("empty", "body");
    time("  of which: body in and out (`body`)", n, || drop(black_box(engine.run(&empty, input()))));
    let body_in = on_rhai("body in", "body.id");
    time("  of which: body in (`body.id`)", n, || drop(black_box(engine.run(&body_in, input()))));
    let constant = on_rhai("constant", "1");
    time("  of which: a run's fixed cost (`1`)", n, || drop(black_box(engine.run(&constant, input()))));
    let loop_source = "let s = 0; for i in body.items { s += i.budget } s";
    let items = on_rhai("items", loop_source);
    time("  a loop over the items (Rhai)", n, || drop(black_box(engine.eval(&items, input()))));
    let items = engine.compile("items", loop_source).expect("compiles");
    time("  a loop over the items (lowered)", n, || drop(black_box(engine.eval(&items, input()))));
    time("serialize the reply", n, || drop(black_box(serde_json::to_vec(&out))));
    time("new message id (uuid v7)", n, || drop(black_box(Message::json(serde_json::Value::Null))));

    // Provenance, as a route run meets it: off (no `record`, no key watched: the default) and
    // on (each step's body before and after, redacted, queued for the store).
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = rt
        .block_on(junction_engine::store::Store::open(&format!("sqlite://{}", dir.path().join("p.db").display())))
        .expect("store");
    let recorder = rt.block_on(async { Provenance::start(store, junction_engine::redact::Redact::new(&[])) });
    let route: std::sync::Arc<str> = "crm-deal-preview".into();
    let off = RouteProvenance { record: false, key: KeyPath::parse("body.id"), recorder: Some(recorder.clone()) };
    let mut m = msg.clone();
    time("provenance off: a run decides not to record", n, || drop(black_box(off.begin(&route, &mut m))));
    let on = RouteProvenance { record: true, key: KeyPath::parse("body.id"), recorder: Some(recorder) };
    let outcome = junction_engine::steps::Outcome::One(Message::json(out.clone()));
    time("provenance on: begin + one step recorded", n, || {
        let mut m = msg.clone();
        let trail = on.begin(&route, &mut m).expect("recording");
        let before = trail.before(&m);
        trail.after("1:transform", before, Ok(&outcome));
    });
}
