//! The console's pages: each reads what the admin API reads and acts through the admin API's
//! own functions, so the console and the API cannot disagree.

use http::{Response, StatusCode};
use minijinja::{Environment, context};
use serde_json::Value;

use super::live::{self, Live};
use super::{Body, Call, Console, Flash, Session, redirect};
use crate::admin::{Answer, api};
use crate::message::Message;
use crate::route::Source;
use crate::runtime::Runtime;
use crate::runtime::replay::Edit;
use crate::store::{AuditFilter, DeadLetterFilter};

/// The navigation: key, label, address.
pub(super) const NAV: [(&str, &str, &str); 7] = [
    ("overview", "Overview", "/console/overview"),
    ("topology", "Topology", "/console/topology"),
    ("provenance", "Provenance", "/console/provenance"),
    ("dead-letters", "Dead letters", "/console/dead-letters"),
    ("reload", "Reload", "/console/reload"),
    ("audit", "Audit", "/console/audit"),
    ("playground", "Playground", "/console/playground"),
];

/// A page of a list: dead letters and audit entries.
const PAGE: u32 = 50;

/// The templates, embedded; HTML is escaped by default.
pub(super) fn views() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("flash.html", include_str!("templates/flash.html")),
        ("login.html", include_str!("templates/login.html")),
        ("overview.html", include_str!("templates/overview.html")),
        ("health.html", include_str!("templates/health.html")),
        ("routes_rows.html", include_str!("templates/routes_rows.html")),
        ("route.html", include_str!("templates/route.html")),
        ("route_live.html", include_str!("templates/route_live.html")),
        ("dead_letters.html", include_str!("templates/dead_letters.html")),
        ("dead_letter.html", include_str!("templates/dead_letter.html")),
        ("audit.html", include_str!("templates/audit.html")),
        ("reload.html", include_str!("templates/reload.html")),
        ("topology.html", include_str!("templates/topology.html")),
        ("instances.html", include_str!("templates/instances.html")),
        ("check_result.html", include_str!("templates/check_result.html")),
        ("job.html", include_str!("templates/job.html")),
        ("provenance.html", include_str!("templates/provenance.html")),
        ("playground.html", include_str!("templates/playground.html")),
        ("playground_result.html", include_str!("templates/playground_result.html")),
        ("reload_result.html", include_str!("templates/reload_result.html")),
    ] {
        env.add_template(name, source).expect("the console's templates parse (tested)");
    }
    env
}

pub(super) async fn overview(console: &Console, call: &Call<'_>) -> Response<Body> {
    let cx = context! {
        routes => rows(&console.live, call.runtime),
        health => health(call.runtime).await,
        instances => instances(call.runtime).await,
    };
    console.page(StatusCode::OK, "overview.html", Some(call.session), "overview", cx)
}

/// The fragments a page's event stream carries, by event name.
pub(super) async fn live_fragments(
    views: &Environment<'static>,
    runtime: &Runtime,
    live: &Live,
    session: &Session,
    page: &str,
    id: &str,
) -> Vec<(&'static str, String)> {
    let render = |template: &str, cx: minijinja::Value| {
        views.get_template(template).and_then(|t| t.render(cx)).unwrap_or_else(|e| {
            tracing::error!(template, error = %e, "a console fragment failed to render");
            String::new()
        })
    };
    match page {
        "overview" => vec![
            ("routes", render("routes_rows.html", context! { routes => rows(live, runtime) })),
            ("health", render("health.html", context! { health => health(runtime).await })),
            ("instances", render("instances.html", context! { instances => instances(runtime).await })),
        ],
        "route" => live
            .now(runtime)
            .into_iter()
            .find(|r| r.id == id)
            .map(|now| {
                let cx = context! {
                    now,
                    session => context! { csrf => session.csrf },
                    can_operate => session.role >= crate::config::ConsoleRole::Operator,
                };
                vec![("route", render("route_live.html", cx))]
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn rows(live: &Live, runtime: &Runtime) -> Vec<minijinja::Value> {
    live.now(runtime)
        .into_iter()
        .map(|r| {
            let spark = live::sparkline(&r.trend);
            context! { spark, ..minijinja::Value::from_serialize(&r) }
        })
        .collect()
}

/// Every instance sharing the store, as each last wrote its counters: per route and summed.
async fn instances(runtime: &Runtime) -> minijinja::Value {
    let since = chrono::Utc::now() - chrono::Duration::seconds(30);
    let rows = runtime.store().instance_counts(since).await.unwrap_or_default();
    let mut per: std::collections::BTreeMap<String, (i64, i64, i64, i64, chrono::DateTime<chrono::Utc>)> =
        std::collections::BTreeMap::new();
    let mut routes: std::collections::BTreeMap<String, Vec<&crate::store::InstanceCounts>> =
        std::collections::BTreeMap::new();
    for r in &rows {
        let e = per.entry(r.instance.clone()).or_insert((0, 0, 0, 0, r.updated_at));
        e.0 += r.received;
        e.1 += r.completed;
        e.2 += r.dead_lettered;
        e.3 += r.in_flight;
        e.4 = e.4.max(r.updated_at);
        routes.entry(r.route.clone()).or_default().push(r);
    }
    let this = runtime.instance();
    let list: Vec<_> = per
        .iter()
        .map(|(id, (received, completed, dead, in_flight, seen))| {
            context! { id, this => id == this, received, completed, dead_lettered => dead, in_flight, seen }
        })
        .collect();
    let sums = |field: fn(&crate::store::InstanceCounts) -> i64| {
        routes
            .iter()
            .map(|(route, rs)| (route.clone(), rs.iter().map(|r| field(r)).sum::<i64>()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let by_route: std::collections::BTreeMap<String, Vec<minijinja::Value>> = routes
        .iter()
        .map(|(route, rs)| (route.clone(), rs.iter().map(minijinja::Value::from_serialize).collect()))
        .collect();
    context! {
        list,
        received => sums(|r| r.received),
        dead_lettered => sums(|r| r.dead_lettered),
        by_route,
    }
}

/// The store, bus and cache checks (as `/readyz`), and the gauges worth watching.
async fn health(runtime: &Runtime) -> minijinja::Value {
    let (_, ready) = api::readiness(runtime).await;
    let checks: Vec<Value> = ready["checks"]
        .as_object()
        .map(|c| {
            c.iter().map(|(name, v)| serde_json::json!({ "name": name, "ok": v["ok"], "error": v["error"] })).collect()
        })
        .unwrap_or_default();
    let gauges = crate::telemetry::gauges();
    context! { checks, ..minijinja::Value::from_serialize(&gauges) }
}

/// Follows a message: every recorded run it (or its trace, or its key) went through, each
/// step's body before and after as a diff.
pub(super) async fn provenance(console: &Console, call: &Call<'_>) -> Response<Body> {
    let q = call.query.get("q").map(|q| q.trim().to_owned()).unwrap_or_default();
    let steps = if q.is_empty() {
        Vec::new()
    } else {
        match call.runtime.store().find_provenance(&q).await {
            Ok(steps) => steps,
            Err(e) => return store_down(console, call, &e),
        }
    };
    let mut runs: Vec<serde_json::Value> = Vec::new();
    for s in steps {
        let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
        let after = s.after.as_ref().map(pretty).unwrap_or_default();
        let diff = similar::TextDiff::from_lines(&pretty(&s.before), &after)
            .unified_diff()
            .context_radius(1000)
            .header("before", if s.after.is_some() { "after" } else { "after (nothing went on)" })
            .to_string();
        let step = serde_json::json!({
            "step": s.step, "outcome": s.outcome, "took_us": s.took_us, "error": s.error,
            "headers": s.headers, "diff": diff,
        });
        match runs.last_mut() {
            Some(run) if run["run"] == s.run_id.as_str() => {
                if let Some(list) = run["steps"].as_array_mut() {
                    list.push(step);
                }
            }
            _ => runs.push(serde_json::json!({
                "run": s.run_id, "route": s.route, "message_id": s.message_id, "trace_id": s.trace_id,
                "key": s.key, "at": s.at, "steps": [step],
            })),
        }
    }
    let watches = call.runtime.provenance().watches();
    let cx = context! { q, runs, watches };
    console.page(StatusCode::OK, "provenance.html", Some(call.session), "provenance", cx)
}

/// Watches a key for some minutes: its messages, and those they cause, are recorded.
pub(super) async fn watch(console: &Console, call: &Call<'_>) -> Response<Body> {
    let key = call.form.get("key").map(|k| k.trim().to_owned()).unwrap_or_default();
    let minutes: u32 = call.form.get("minutes").and_then(|m| m.parse().ok()).unwrap_or(10).clamp(1, 1440);
    if key.is_empty() {
        let flash = Flash { kind: "bad", text: "Name the key to watch.".into() };
        return console.page(StatusCode::UNPROCESSABLE_ENTITY, "base.html", Some(call.session), "", context! { flash });
    }
    let w = call.runtime.provenance().watch(&key, minutes);
    let answer = Answer::ok(serde_json::json!({ "key": w.key, "until": w.until })).on(key.clone());
    record(call, &answer).await;
    redirect(&format!("/console/provenance?q={}", super::encode(&key)))
}

/// The Rhai playground: a transform (one of `transforms/`, or typed) and a sample body (a
/// route test's input, a dead letter's body, or typed).
pub(super) async fn playground(console: &Console, call: &Call<'_>) -> Response<Body> {
    let dir = call.runtime.project_dir();
    let q = &call.query;
    let mut transforms: Vec<String> = std::fs::read_dir(dir.join("transforms"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".rhai"))
                .collect()
        })
        .unwrap_or_default();
    transforms.sort();
    // Every route test case's input: `file#index`.
    let mut fixtures = Vec::new();
    let mut samples = std::collections::HashMap::new();
    let mut tests: Vec<_> = std::fs::read_dir(dir.join("route-tests"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    tests.sort();
    for path in tests.iter().filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml")) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let Ok(text) = std::fs::read_to_string(path) else { continue };
        let Ok(file) = crate::config::parse_yaml::<crate::testing::TestFile>(path, &text) else { continue };
        for (i, case) in file.cases.into_iter().enumerate() {
            let id = format!("{name}#{i}");
            fixtures.push(context! { id => id.clone(), label => format!("{name}: {}", case.name) });
            samples.insert(id, (file.route.clone(), case.input.body));
        }
    }
    let transform = q.get("transform").cloned().unwrap_or_default();
    let script = if transform.is_empty() || !transforms.contains(&transform) {
        q.get("script").cloned().unwrap_or_else(|| "body".to_owned())
    } else {
        std::fs::read_to_string(dir.join("transforms").join(&transform)).unwrap_or_default()
    };
    let fixture = q.get("fixture").cloned().unwrap_or_default();
    let mut route = String::new();
    let body = if let Some((r, sample)) = samples.get(&fixture) {
        route.clone_from(r);
        serde_json::to_string_pretty(sample).unwrap_or_default()
    } else if let Some(id) = q.get("dead_letter") {
        match call.runtime.store().get_dead_letter(id).await {
            Ok(Some(d)) => {
                route = d.route.clone();
                body_text(&d.message.body)
            }
            Ok(None) => return not_found(console, call, &format!("No dead letter `{id}`.")),
            Err(e) => return store_down(console, call, &e),
        }
    } else {
        "{}".to_owned()
    };
    let cx = context! { transforms, transform, fixtures, fixture, script, body, route };
    console.page(StatusCode::OK, "playground.html", Some(call.session), "playground", cx)
}

/// Runs the playground's script on its body: the output, or the error at `line:col`.
pub(super) fn playground_run(console: &Console, call: &Call<'_>) -> Response<Body> {
    let script = call.form.get("script").map_or("", String::as_str);
    let body_text = call.form.get("body").map_or("", String::as_str);
    let route = call.form.get("route").cloned().unwrap_or_default();
    let scripts = call.runtime.scripts();
    let result =
        serde_json::from_str::<Value>(body_text).map_err(|e| format!("The body is not JSON: {e}.")).and_then(|body| {
            let compiled = scripts.compile("playground.rhai", script).map_err(|e| e.to_string())?;
            let meta = crate::message::Meta::default();
            let headers = serde_json::Map::new();
            let input = crate::script::ScriptInput { body: &body, headers: &headers, meta: &meta, vars: &[] };
            let out = scripts.run(&compiled, input).map_err(|e| e.to_string())?;
            Ok((body, out.body))
        });
    let cx = match result {
        Ok((body, out)) => context! {
            route,
            body => serde_json::to_string(&body).unwrap_or_default(),
            output => serde_json::to_string_pretty(&out).unwrap_or_default(),
        },
        Err(error) => context! { error },
    };
    console.page(StatusCode::OK, "playground_result.html", Some(call.session), "", cx)
}

/// The playground's body and output as a route test file to save in `route-tests/`.
pub(super) fn playground_fixture(call: &Call<'_>) -> Response<Body> {
    let json = |k: &str| call.form.get(k).and_then(|t| serde_json::from_str::<Value>(t).ok()).unwrap_or(Value::Null);
    let route = call.form.get("route").filter(|r| !r.is_empty()).map_or("the-route-to-test", String::as_str);
    // JSON is YAML: the values go in flow style, exactly as they were.
    let yaml = format!(
        "# Made in the console's Rhai playground; run with `junction test`.\nroute: {route}\ncases:\n  - name: from the playground\n    input: {{ body: {} }}\n    expect: {{ output: [{}] }}\n",
        json("body"),
        json("output")
    );
    let mut resp = Response::new(super::full(yaml));
    super::set(&mut resp, http::header::CONTENT_TYPE, "application/yaml; charset=utf-8");
    super::set(
        &mut resp,
        http::header::CONTENT_DISPOSITION,
        &format!("attachment; filename=\"{route}-playground.yaml\""),
    );
    resp
}

/// The running routes as the Mermaid flowchart `junction graph` prints.
pub(super) fn topology(console: &Console, call: &Call<'_>) -> Response<Body> {
    let graph = crate::graph::mermaid(&call.runtime.routes());
    console.page(StatusCode::OK, "topology.html", Some(call.session), "topology", context! { graph })
}

pub(super) async fn route(console: &Console, call: &Call<'_>, id: &str) -> Response<Body> {
    let table = call.runtime.routes();
    let Some(r) = table.get(id) else {
        return not_found(console, call, &format!("No route `{id}` is loaded."));
    };
    let Some(now) = console.live.now(call.runtime).into_iter().find(|n| n.id == id) else {
        return not_found(console, call, &format!("No route `{id}` is loaded."));
    };
    let file = if r.file.is_absolute() { r.file.clone() } else { call.runtime.project_dir().join(&r.file) };
    let yaml = std::fs::read_to_string(&file)
        .map_or_else(|e| format!("(cannot read {}: {e})", file.display()), |text| highlight_yaml(&text));
    let cx = context! {
        route => context! {
            id => &*r.id,
            version => r.version,
            file => r.file.display().to_string(),
            description => r.description,
            source => r.source_summary(),
            max_in_flight => r.max_in_flight,
        },
        trend => now.trend,
        now,
        steps => {
            let stats = crate::telemetry::step_stats(&r.id);
            r.pipeline
                .steps
                .iter()
                .map(|s| context! { label => s.label, stats => stats.get(&s.label).cloned().unwrap_or_default() })
                .collect::<Vec<_>>()
        },
        provenance => context! { record => r.provenance.record, keyed => r.provenance.key.is_some() },
        instances => instances(call.runtime).await,
        failures => call
            .runtime
            .store()
            .list_dead_letters(&DeadLetterFilter { route: Some(r.id.to_string()), limit: Some(5), ..Default::default() })
            .await
            .unwrap_or_default(),
        yaml,
    };
    console.page(StatusCode::OK, "route.html", Some(call.session), "overview", cx)
}

pub(super) async fn pause(console: &Console, call: &Call<'_>, id: &str, pause: bool) -> Response<Body> {
    let answer = api::set_paused(call.runtime, id, pause).await;
    record(call, &answer).await;
    if !call.htmx {
        return redirect(&format!("/console/routes/{}", super::encode(id)));
    }
    match console.live.now(call.runtime).into_iter().find(|n| n.id == id) {
        Some(now) => console.page(answer.status, "route_live.html", Some(call.session), "", context! { now }),
        None => problem_fragment(console, call, &answer),
    }
}

pub(super) async fn dead_letters(console: &Console, call: &Call<'_>) -> Response<Body> {
    let q = &call.query;
    let given = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let filter = DeadLetterFilter {
        route: given("route"),
        include_replayed: q.get("all").is_some_and(|v| v == "true"),
        limit: Some(PAGE),
        before: given("before"),
        error: given("error"),
        since: given("within").and_then(|w| since(&w)),
    };
    let items = match call.runtime.store().list_dead_letters(&filter).await {
        Ok(items) => items,
        Err(e) => return store_down(console, call, &e),
    };
    let next = (items.len() == PAGE as usize).then(|| {
        let last = items.last().map(|d| d.id.as_str()).unwrap_or_default();
        let mut url = format!("/console/dead-letters?before={}", super::encode(last));
        for k in ["route", "error", "within", "all"] {
            if let Some(v) = given(k) {
                url.push_str(&format!("&{k}={}", super::encode(&v)));
            }
        }
        url
    });
    let route_ids: Vec<String> = call.runtime.routes().iter().map(|r| r.id.to_string()).collect();
    let cx = context! {
        items,
        next,
        route_ids,
        filter => context! {
            route => given("route"),
            error => given("error"),
            within => given("within").unwrap_or_default(),
            all => filter.include_replayed,
        },
    };
    console.page(StatusCode::OK, "dead_letters.html", Some(call.session), "dead-letters", cx)
}

pub(super) async fn dead_letter(console: &Console, call: &Call<'_>, id: &str) -> Response<Body> {
    let d = match call.runtime.store().get_dead_letter(id).await {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(console, call, &format!("No dead letter `{id}`.")),
        Err(e) => return store_down(console, call, &e),
    };
    let headers = serde_json::to_string_pretty(&d.message.headers).unwrap_or_default();
    let body = body_text(&d.message.body);
    let replayed_with = d.replayed_with.as_ref().map(|m| {
        serde_json::to_string_pretty(&serde_json::json!({ "headers": m.headers, "body": m.body.to_json() }))
            .unwrap_or_default()
    });
    let cx = context! { d, headers, body, replayed_with };
    console.page(StatusCode::OK, "dead_letter.html", Some(call.session), "dead-letters", cx)
}

fn body_text(body: &crate::message::Body) -> String {
    match body {
        crate::message::Body::Json(v) => serde_json::to_string_pretty(v).unwrap_or_default(),
        crate::message::Body::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// The edit a dead letter's form asks for: `None` when it leaves the message as it was.
fn edit_of(form: &std::collections::HashMap<String, String>, original: &Message) -> Result<Option<Edit>, String> {
    let (Some(headers), Some(body)) = (form.get("headers"), form.get("body")) else { return Ok(None) };
    let headers: crate::message::Headers =
        serde_json::from_str(headers).map_err(|e| format!("The headers are not a JSON object: {e}."))?;
    let body = match &original.body {
        crate::message::Body::Json(_) => {
            crate::message::Body::Json(serde_json::from_str(body).map_err(|e| format!("The body is not JSON: {e}."))?)
        }
        // A body that was not JSON stays text as typed.
        crate::message::Body::Bytes(_) => crate::message::Body::Bytes(bytes::Bytes::from(body.clone())),
    };
    Ok((headers != original.headers || body != original.body).then_some(Edit { headers, body }))
}

/// `Validate` (the route's schema) or `Dry run` (the route with recorders) on the form's
/// message; changes nothing, so a viewer may too.
pub(super) async fn check(console: &Console, call: &Call<'_>, id: &str) -> Response<Body> {
    let d = match call.runtime.store().get_dead_letter(id).await {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(console, call, &format!("No dead letter `{id}`.")),
        Err(e) => return store_down(console, call, &e),
    };
    let mut message = d.message.clone();
    match edit_of(&call.form, &d.message) {
        Ok(Some(edit)) => {
            message.headers = edit.headers;
            message.body = edit.body;
        }
        Ok(None) => {}
        Err(problem) => return fragment(console, call, StatusCode::UNPROCESSABLE_ENTITY, context! { problem }),
    }
    if call.query.get("what").map(String::as_str) == Some("dry-run") {
        return match call.runtime.dry_run(&d.route, message).await {
            Ok(dry) => fragment(console, call, StatusCode::OK, context! { dry }),
            Err(e) => fragment(console, call, StatusCode::CONFLICT, context! { problem => e.to_string() }),
        };
    }
    let table = call.runtime.routes();
    let schema = table.get(&d.route).and_then(|r| match &r.source {
        Source::Http(h) => h.schema.as_ref(),
        _ => None,
    });
    let Some(schema) = schema else {
        let problem = format!(
            "Route `{}` takes no schema at its source; a dry run runs its validate steps, if it has any.",
            d.route
        );
        return fragment(console, call, StatusCode::OK, context! { problem });
    };
    let crate::message::Body::Json(json) = &message.body else {
        return fragment(console, call, StatusCode::OK, context! { problem => "The body is not JSON." });
    };
    let violations = schema.violations(json);
    fragment(console, call, StatusCode::OK, context! { validated => true, schema => schema.file(), violations })
}

fn fragment(console: &Console, call: &Call<'_>, status: StatusCode, cx: minijinja::Value) -> Response<Body> {
    console.page(status, "check_result.html", Some(call.session), "", cx)
}

pub(super) async fn replay(console: &Console, call: &Call<'_>, id: &str) -> Response<Body> {
    let edit = match call.runtime.store().get_dead_letter(id).await {
        Ok(Some(d)) => match edit_of(&call.form, &d.message) {
            Ok(edit) => edit,
            Err(problem) => return fragment(console, call, StatusCode::UNPROCESSABLE_ENTITY, context! { problem }),
        },
        // The API's answer names these.
        Ok(None) | Err(_) => None,
    };
    let answer = api::replay(call.runtime, id, edit).await;
    record(call, &answer).await;
    if !call.htmx {
        return redirect(&format!("/console/dead-letters/{}", super::encode(id)));
    }
    let flash = if answer.status.is_success() {
        match answer.body["outcome"].as_str() {
            Some("done") => Flash { kind: "ok", text: "Replayed: the route finished it.".into() },
            _ => Flash {
                kind: "bad",
                text: format!(
                    "Replayed, and it failed again: {} (new dead letter {})",
                    answer.body["error"].as_str().unwrap_or(""),
                    answer.body["dead_letter_id"].as_str().unwrap_or("")
                ),
            },
        }
    } else {
        Flash { kind: "bad", text: answer.body["detail"].as_str().unwrap_or("failed").to_owned() }
    };
    console.page(answer.status, "flash.html", Some(call.session), "", context! { flash })
}

/// Replays every waiting dead letter the filter matches (at most [`BULK_MAX`]), in the
/// background; the answer is the job's progress, which polls itself until done.
pub(super) async fn replay_all(console: &Console, call: &Call<'_>) -> Response<Body> {
    let given = |k: &str| call.form.get(k).filter(|v| !v.is_empty()).cloned();
    let mut filter = DeadLetterFilter {
        route: given("route"),
        include_replayed: false,
        limit: Some(1000),
        before: None,
        error: given("error"),
        since: given("within").and_then(|w| since(&w)),
    };
    // The set is fixed first: a replay that fails again makes a new dead letter, which this
    // job must not replay in turn.
    let mut ids = Vec::new();
    while ids.len() < BULK_MAX {
        let page = match call.runtime.store().list_dead_letters(&filter).await {
            Ok(page) => page,
            Err(e) => return store_down(console, call, &e),
        };
        let Some(last) = page.last() else { break };
        filter.before = Some(last.id.clone());
        ids.extend(page.into_iter().map(|d| d.id));
    }
    ids.truncate(BULK_MAX);
    let job = console.jobs.start(ids.len());
    let (runtime, jobs, job_id) = (call.runtime.clone(), console.jobs.clone(), job.id.clone());
    let (user, proof, request_id) = (call.session.user.clone(), call.session.proof, call.request_id.clone());
    let action = call.action.clone();
    tokio::spawn(async move {
        for id in ids {
            let answer = api::replay(&runtime, &id, None).await;
            crate::admin::audit(&runtime, &user, proof, action.clone(), &answer, &request_id).await;
            jobs.count(&job_id, &answer);
        }
        jobs.finish(&job_id);
    });
    let status = StatusCode::ACCEPTED;
    let answer =
        Answer { status, body: serde_json::json!({ "job": job.id, "total": job.total }), target: None, etag: None };
    record(call, &answer).await;
    console.page(status, "job.html", Some(call.session), "", context! { job })
}

pub(super) fn job(console: &Console, call: &Call<'_>, id: &str) -> Response<Body> {
    match console.jobs.get(id) {
        Some(job) => console.page(StatusCode::OK, "job.html", Some(call.session), "", context! { job }),
        None => not_found(console, call, &format!("No job `{id}`.")),
    }
}

/// At most this many dead letters are replayed by one bulk replay.
const BULK_MAX: usize = 10_000;

fn since(within: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let hours = match within {
        "1h" => 1,
        "24h" => 24,
        "7d" => 24 * 7,
        _ => return None,
    };
    Some(chrono::Utc::now() - chrono::Duration::hours(hours))
}

pub(super) async fn audit(console: &Console, call: &Call<'_>) -> Response<Body> {
    let q = &call.query;
    let given = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let filter = AuditFilter {
        actor: given("actor"),
        action: given("action"),
        outcome: given("outcome"),
        since: None,
        until: None,
        before_id: given("before_id").and_then(|v| v.parse().ok()),
        limit: PAGE,
    };
    let items = match call.runtime.store().audit_list(&filter).await {
        Ok(items) => items,
        Err(e) => return store_down(console, call, &e),
    };
    let next = (items.len() == PAGE as usize).then(|| {
        let mut url = format!("/console/audit?before_id={}", items.last().map_or(0, |e| e.id));
        for k in ["actor", "action", "outcome"] {
            if let Some(v) = given(k) {
                url.push_str(&format!("&{k}={}", super::encode(&v)));
            }
        }
        url
    });
    let cx = context! {
        items,
        next,
        filter => context! { actor => given("actor"), action => given("action"), outcome => given("outcome") },
    };
    console.page(StatusCode::OK, "audit.html", Some(call.session), "audit", cx)
}

/// `GET`: the dry run (what would change, with diffs, and the files' version); `POST`: apply
/// it if the files are still that version (`etag`), else say what changed.
pub(super) async fn reload(console: &Console, call: &Call<'_>, dry_run: bool) -> Response<Body> {
    let etag = call.form.get("etag").map(String::as_str);
    if !dry_run && etag.is_none_or(str::is_empty) {
        let answer = Answer::problem(
            StatusCode::PRECONDITION_REQUIRED,
            "etag-required",
            "Dry-run first",
            "apply what a dry run showed: its form carries the version",
        );
        return reload_answer(console, call, &answer, dry_run).await;
    }
    let answer = api::reload(call.runtime, dry_run, etag).await;
    if !dry_run {
        record(call, &answer).await;
    }
    reload_answer(console, call, &answer, dry_run).await
}

async fn reload_answer(console: &Console, call: &Call<'_>, answer: &Answer, dry_run: bool) -> Response<Body> {
    let (report, problem) =
        if answer.status.is_success() { (Some(&answer.body), None) } else { (None, Some(&answer.body)) };
    // After a refused apply, show what a reload would apply now.
    let fresh = if problem.is_some() && !dry_run { Some(api::reload(call.runtime, true, None).await) } else { None };
    let report = report.or(fresh.as_ref().filter(|a| a.status.is_success()).map(|a| &a.body));
    let cx = context! { report, problem };
    let template = if call.htmx { "reload_result.html" } else { "reload.html" };
    console.page(answer.status, template, Some(call.session), "reload", cx)
}

/// Records a console action in the audit log, with the signed-in user as the actor.
async fn record(call: &Call<'_>, answer: &Answer) {
    let session = call.session;
    crate::admin::audit(call.runtime, &session.user, session.proof, call.action.clone(), answer, &call.request_id)
        .await;
}

fn not_found(console: &Console, call: &Call<'_>, text: &str) -> Response<Body> {
    let flash = Flash { kind: "bad", text: text.to_owned() };
    console.page(StatusCode::NOT_FOUND, "base.html", Some(call.session), "", context! { flash })
}

fn store_down(console: &Console, call: &Call<'_>, e: &crate::store::StoreError) -> Response<Body> {
    let flash = Flash { kind: "bad", text: format!("The store is unavailable: {e}") };
    console.page(StatusCode::SERVICE_UNAVAILABLE, "base.html", Some(call.session), "", context! { flash })
}

fn problem_fragment(console: &Console, call: &Call<'_>, answer: &Answer) -> Response<Body> {
    let flash = Flash { kind: "bad", text: answer.body["detail"].as_str().unwrap_or("failed").to_owned() };
    console.page(answer.status, "flash.html", Some(call.session), "", context! { flash })
}

/// YAML as escaped HTML with its keys and comments marked (`k`, `c`) for the stylesheet.
fn highlight_yaml(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        out.push_str(indent);
        if trimmed.starts_with('#') {
            out.push_str(&format!("<span class=\"c\">{}</span>", escape(trimmed)));
        } else {
            let (dash, rest) = trimmed.strip_prefix("- ").map_or(("", trimmed), |r| ("- ", r));
            out.push_str(dash);
            match rest.split_once(':').filter(|(k, _)| is_key(k)) {
                Some((key, value)) => {
                    out.push_str(&format!("<span class=\"k\">{}</span>:{}", escape(key), escape(value)));
                }
                None => out.push_str(&escape(rest)),
            }
        }
        out.push('\n');
    }
    out
}

fn is_key(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\''))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let env = views();
        assert!(env.templates().count() >= 20);
    }

    #[test]
    fn yaml_keys_and_comments_are_marked_and_the_rest_escaped() {
        let html = highlight_yaml("# a <route>\nid: a\nsteps:\n  - transform: { script: \"x < y\" }\n");
        assert_eq!(
            html,
            "<span class=\"c\"># a &lt;route&gt;</span>\n<span class=\"k\">id</span>: a\n<span class=\"k\">steps</span>:\n  - <span class=\"k\">transform</span>: { script: &quot;x &lt; y&quot; }\n"
        );
    }
}
