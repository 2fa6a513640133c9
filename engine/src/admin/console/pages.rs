//! The console's pages: each reads what the admin API reads and acts through the admin API's
//! own functions, so the console and the API cannot disagree.

use http::{Response, StatusCode};
use minijinja::{Environment, context};
use serde_json::Value;

use super::live::{self, Live};
use super::{Body, Call, Console, Flash, Session, redirect};
use crate::admin::{Answer, api};
use crate::route::{Route, Source};
use crate::runtime::Runtime;
use crate::store::{AuditFilter, DeadLetterFilter};

/// The navigation: key, label, address.
pub(super) const NAV: [(&str, &str, &str); 5] = [
    ("overview", "Overview", "/console/overview"),
    ("topology", "Topology", "/console/topology"),
    ("dead-letters", "Dead letters", "/console/dead-letters"),
    ("reload", "Reload", "/console/reload"),
    ("audit", "Audit", "/console/audit"),
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
        ("reload_result.html", include_str!("templates/reload_result.html")),
    ] {
        env.add_template(name, source).expect("the console's templates parse (tested)");
    }
    env
}

pub(super) async fn overview(console: &Console, call: &Call<'_>) -> Response<Body> {
    let cx = context! { routes => rows(&console.live, call.runtime), health => health(call.runtime).await };
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

/// The running routes as the Mermaid flowchart `junction graph` prints.
pub(super) fn topology(console: &Console, call: &Call<'_>) -> Response<Body> {
    let graph = crate::graph::mermaid(&call.runtime.routes());
    console.page(StatusCode::OK, "topology.html", Some(call.session), "topology", context! { graph })
}

pub(super) fn route(console: &Console, call: &Call<'_>, id: &str) -> Response<Body> {
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
            source => source_text(r),
            max_in_flight => r.max_in_flight,
        },
        trend => now.trend,
        now,
        steps => r.pipeline.steps.iter().map(|s| s.label.clone()).collect::<Vec<_>>(),
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
        since: given("within").and_then(|w| {
            let hours = match w.as_str() {
                "1h" => 1,
                "24h" => 24,
                "7d" => 24 * 7,
                _ => return None,
            };
            Some(chrono::Utc::now() - chrono::Duration::hours(hours))
        }),
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
    let body = match &d.message.body {
        crate::message::Body::Json(v) => serde_json::to_string_pretty(v).unwrap_or_default(),
        crate::message::Body::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
    };
    let cx = context! { d, headers, body };
    console.page(StatusCode::OK, "dead_letter.html", Some(call.session), "dead-letters", cx)
}

pub(super) async fn replay(console: &Console, call: &Call<'_>, id: &str) -> Response<Body> {
    let answer = api::replay(call.runtime, id).await;
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

/// How a route is fed, in a few words.
pub(super) fn source_text(r: &Route) -> String {
    match &r.source {
        Source::Http(h) => format!("http {} {}{}", h.method, h.path, if h.is_async { " (async)" } else { "" }),
        Source::Schedule(_) => "schedule".to_owned(),
        Source::Connector(c) => format!("{} ({})", c.consumer.describe(), c.connector),
    }
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
        assert!(env.templates().count() >= 14);
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
