//! The admin API's calls: routes and their state, reload, pause and resume, dead letters and
//! their replay, the audit log.

use std::collections::HashMap;

use http::StatusCode;
use http::request::Parts;
use serde_json::{Value, json};

use super::Answer;
use crate::route::{Route, Source};
use crate::runtime::Runtime;
use crate::runtime::replay::{Edit, ReplayError, Replayed};
use crate::store::{AuditFilter, DeadLetterFilter};

pub(super) async fn route(runtime: &Runtime, parts: &Parts, body: &[u8]) -> Answer {
    let query = query(parts.uri.query().unwrap_or(""));
    let segments: Vec<&str> = parts.uri.path().trim_matches('/').split('/').collect();
    match (parts.method.as_str(), segments.as_slice()) {
        ("GET", ["admin", "routes"]) => {
            let table = runtime.routes();
            Answer::ok(Value::Array(table.iter().map(|r| describe(runtime, r)).collect()))
        }
        ("GET", ["admin", "routes", id]) => match runtime.routes().get(id) {
            Some(r) => Answer::ok(describe(runtime, r)).on(*id),
            None => no_route(id),
        },
        ("POST", ["admin", "routes", id, action @ ("pause" | "resume")]) => {
            set_paused(runtime, id, *action == "pause").await
        }
        ("POST", ["admin", "reload"]) => {
            let dry_run = query.get("dry_run").is_some_and(|v| v == "true" || v == "1");
            let if_match = parts.headers.get(http::header::IF_MATCH).and_then(|v| v.to_str().ok());
            reload(runtime, dry_run, if_match).await
        }
        ("GET", ["admin", "dead-letters"]) => {
            let filter = DeadLetterFilter {
                route: query.get("route").cloned(),
                include_replayed: query.get("all").is_some_and(|v| v == "true"),
                limit: query.get("limit").and_then(|l| l.parse().ok()),
                before: query.get("before").cloned(),
                error: query.get("error").filter(|e| !e.is_empty()).cloned(),
                since: query
                    .get("since")
                    .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
                    .map(|t| t.with_timezone(&chrono::Utc)),
            };
            match runtime.store().list_dead_letters(&filter).await {
                Ok(list) => {
                    let next = list.last().map(|d| d.id.clone());
                    Answer::ok(json!({ "items": list, "next_before": next }))
                }
                Err(e) => store_down(&e),
            }
        }
        ("POST", ["admin", "dead-letters", id, "replay"]) => {
            // An optional body `{ "headers": {…}, "body": … }` replays an edited message.
            let edit = if body.iter().all(u8::is_ascii_whitespace) {
                None
            } else {
                match serde_json::from_slice::<EditSpec>(body) {
                    Ok(e) => Some(Edit { headers: e.headers, body: crate::message::Body::Json(e.body) }),
                    Err(e) => {
                        return Answer::problem(
                            StatusCode::BAD_REQUEST,
                            "invalid-edit",
                            "The edit is not `{ \"headers\": {…}, \"body\": … }`",
                            e.to_string(),
                        )
                        .on(*id);
                    }
                }
            };
            replay(runtime, id, edit).await
        }
        ("GET", ["admin", "audit"]) => {
            let time = |k: &str| {
                query
                    .get(k)
                    .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
                    .map(|t| t.with_timezone(&chrono::Utc))
            };
            let filter = AuditFilter {
                actor: query.get("actor").cloned(),
                action: query.get("action").cloned(),
                outcome: query.get("outcome").cloned(),
                since: time("since"),
                until: time("until"),
                before_id: query.get("before_id").and_then(|v| v.parse().ok()),
                limit: query.get("limit").and_then(|v| v.parse().ok()).unwrap_or(0),
            };
            match runtime.store().audit_list(&filter).await {
                Ok(list) => {
                    let next = list.last().map(|r| r.id);
                    Answer::ok(json!({ "items": list, "next_before_id": next }))
                }
                Err(e) => store_down(&e),
            }
        }
        _ => Answer::problem(
            StatusCode::NOT_FOUND,
            "not-found",
            "No such admin call",
            format!("{} {}", parts.method, parts.uri.path()),
        ),
    }
}

/// Pauses (or resumes) route `id`: the API's and the console's one way to.
pub(super) async fn set_paused(runtime: &Runtime, id: &str, pause: bool) -> Answer {
    if runtime.routes().get(id).is_none() {
        return no_route(id);
    }
    match runtime.paused().set(id, pause).await {
        Ok(changed) => {
            tracing::info!(route = %id, paused = pause, "route {}", if pause { "paused" } else { "resumed" });
            Answer::ok(json!({ "route": id, "state": state(pause), "changed": changed })).on(id)
        }
        Err(e) => store_down(&e),
    }
}

/// Reloads (or, dry, shows what a reload would change) when the project's files are still
/// the version `if_match` names. The answer carries the version read as its ETag.
pub(super) async fn reload(runtime: &Runtime, dry_run: bool, if_match: Option<&str>) -> Answer {
    match runtime.reload_if(dry_run, if_match).await {
        Ok(report) => {
            let etag = report.etag.clone();
            let mut a = Answer::ok(json!(report));
            a.etag = Some(etag);
            a
        }
        Err(crate::runtime::ReloadError::Connector(e)) => Answer::problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "connector-unavailable",
            "A connector of the project cannot start",
            format!("{e}; the running routes are unchanged"),
        ),
        Err(crate::runtime::ReloadError::Invalid(diags)) => {
            let errors: Vec<String> = diags.to_string().lines().map(str::to_owned).collect();
            let mut a = Answer::problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-config",
                "The project does not validate",
                "the running routes are unchanged",
            );
            a.body["errors"] = json!(errors);
            a
        }
        Err(crate::runtime::ReloadError::Stale { expected, now }) => {
            let mut a = Answer::problem(
                StatusCode::PRECONDITION_FAILED,
                "project-changed",
                "The project's files changed since the dry run",
                format!(
                    "If-Match {expected} is not the project's version now ({now}); nothing was reloaded: dry-run again to see what a reload would apply"
                ),
            );
            a.etag = Some(now);
            a
        }
    }
}

/// An edited message for a replay, as the API takes it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EditSpec {
    #[serde(default)]
    headers: crate::message::Headers,
    body: Value,
}

/// Hands dead letter `id` back to its route (`edit`: with these headers and body instead).
pub(super) async fn replay(runtime: &Runtime, id: &str, edit: Option<Edit>) -> Answer {
    let table = runtime.routes();
    match crate::runtime::replay::replay_edited(&table, runtime.store(), id, edit).await {
        Ok(Replayed::Done) => Answer::ok(json!({ "id": id, "outcome": "done" })).on(id),
        Ok(Replayed::FailedAgain { failure, dead_letter_id }) => Answer::ok(json!({
            "id": id, "outcome": "failed_again", "error": failure.error.message, "dead_letter_id": dead_letter_id,
        }))
        .on(id),
        Err(e @ ReplayError::NotFound(_)) => {
            Answer::problem(StatusCode::NOT_FOUND, "not-found", "No such dead letter", e.to_string()).on(id)
        }
        Err(e @ (ReplayError::AlreadyReplayed(_) | ReplayError::RouteGone(_))) => {
            Answer::problem(StatusCode::CONFLICT, "cannot-replay", "The dead letter cannot be replayed", e.to_string())
                .on(id)
        }
        Err(ReplayError::Store(e)) => store_down(&e).on(id),
    }
}

/// `/readyz`: the store (and with it the embedded bus) and the cache answer.
pub(super) async fn readiness(runtime: &Runtime) -> (StatusCode, Value) {
    let store = runtime.store().ping().await.map_err(|e| e.to_string());
    let cache = runtime.cache().ping().await.map_err(|e| e.to_string());
    let check = |r: &Result<(), String>| {
        r.as_ref().map_or_else(|e| json!({ "ok": false, "error": e }), |()| json!({ "ok": true }))
    };
    let ready = store.is_ok() && cache.is_ok();
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": { "store": check(&store), "bus": check(&store), "cache": check(&cache) },
    });
    (if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body)
}

pub(super) fn describe(runtime: &Runtime, r: &Route) -> Value {
    let paused = runtime.paused().is(&r.id);
    let source = match &r.source {
        Source::Http(h) => {
            json!({ "http": { "method": h.method.as_str(), "path": h.path, "auth": h.auth_name, "async": h.is_async } })
        }
        Source::Schedule(_) => json!({ "schedule": {} }),
        Source::Connector(c) => json!({ "connector": {
            "name": c.connector,
            "consumer": c.consumer.describe(),
            "groups": c.consumer.groups().into_iter().map(|(topic, group)| json!({ "topic": topic, "group": group })).collect::<Vec<_>>(),
        } }),
    };
    json!({
        "id": &*r.id,
        "version": r.version,
        "state": state(paused),
        "description": r.description,
        "file": r.file.display().to_string(),
        "source": source,
        "steps": r.pipeline.len(),
        "in_flight": r.in_flight(),
        "max_in_flight": r.max_in_flight,
        "counters": r.counters.snapshot(),
    })
}

pub(super) fn state(paused: bool) -> &'static str {
    if paused { "paused" } else { "running" }
}

fn no_route(id: &str) -> Answer {
    Answer::problem(StatusCode::NOT_FOUND, "not-found", "No such route", format!("no route `{id}` is loaded")).on(id)
}

fn store_down(e: &crate::store::StoreError) -> Answer {
    Answer::problem(StatusCode::SERVICE_UNAVAILABLE, "store-unavailable", "The store is unavailable", e.to_string())
}

/// `a=1&b=two+words`: a query string, or an urlencoded form (the console's).
pub(super) fn query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (crate::gateway::percent_decode(k), crate::gateway::percent_decode(v))
        })
        .collect()
}
