//! The `http` kind's paging source, the generic REST poller: a list walked page by page on a
//! schedule — next pages from `Link` headers (GitHub's shape) and from `start`/`next` in the
//! body (Bitrix24's) — each item delivered once over many walks, items added at the end picked
//! up by the next walk, and a restart resuming from the checkpoint.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{Junction, junction, project, sqlite_store};
use serde_json::{Value, json};

type Items = Arc<Mutex<Vec<u64>>>;

const PAGE: usize = 2;

/// GitHub's way: `?page=N`, the next page in a `Link` header.
async fn feed(State(items): State<Items>, Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    let items = items.lock().expect("lock").clone();
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let slice: Vec<Value> = items
        .iter()
        .skip((page - 1) * PAGE)
        .take(PAGE)
        .map(|id| json!({ "id": id, "title": format!("issue {id}") }))
        .collect();
    let mut resp = axum::Json(Value::Array(slice)).into_response();
    if items.len() > page * PAGE {
        // An absolute URL, as GitHub gives.
        let host = q.get("host").cloned().unwrap_or_default();
        let link = format!(
            "<http://{host}/feed?host={host}&page={}>; rel=\"next\", <http://{host}/feed?page=1>; rel=\"first\"",
            page + 1
        );
        resp.headers_mut().insert(header::LINK, link.parse().expect("header"));
    }
    resp
}

/// Bitrix24's way: `?start=N`, `{result, next, total}`, no `next` on the last page.
async fn deals(State(items): State<Items>, Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    let items = items.lock().expect("lock").clone();
    let start: usize = q.get("start").and_then(|p| p.parse().ok()).unwrap_or(0);
    let slice: Vec<Value> =
        items.iter().skip(start).take(PAGE).map(|id| json!({ "ID": id.to_string(), "TITLE": "Сделка" })).collect();
    let mut body = json!({ "result": slice, "total": items.len(), "time": { "start": 1 } });
    if items.len() > start + PAGE {
        body["next"] = json!(start + PAGE);
    }
    axum::Json(body).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_walked_by_link_headers_and_by_start_next_and_resume_after_a_kill() {
    let issues: Items = Arc::new(Mutex::new((1..=5).collect()));
    let bitrix: Items = Arc::new(Mutex::new((101..=105).collect()));
    let app = Router::new()
        .route("/feed", get(feed).with_state(issues.clone()))
        .route("/rest/crm.deal.list", get(deals).with_state(bitrix.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = project(&[
        (
            "junction.yaml",
            &format!("routes: [routes/]\nconnectors:\n  api:\n    kind: http\n    base_url: \"http://{addr}\"\n"),
        ),
        (
            "routes/issues.yaml",
            &format!(
                "route: issues\nfrom: {{ connector: api, pages: {{ path: \"/feed?host={addr}&page=1\", every: 200ms, next: link }} }}\nsteps:\n  - log: \"issue id=${{body.id}} key=${{meta.key}};\"\n"
            ),
        ),
        (
            "routes/deals.yaml",
            "route: deals\nfrom: { connector: api, pages: { path: /rest/crm.deal.list, every: 200ms, items: /result, id: /ID, next: { param: start, value: /next } } }\nsteps:\n  - log: \"deal id=${body.ID};\"\n",
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let count = |logs: &str, what: &str| logs.matches(what).count();
    for id in 1..=5 {
        j.wait_for_log(&format!("issue id={id} key={id};"), Duration::from_secs(20));
    }
    for id in 101..=105 {
        j.wait_for_log(&format!("deal id={id};"), Duration::from_secs(20));
    }
    // Several walks later, each once.
    std::thread::sleep(Duration::from_millis(700));
    let logs = j.logs();
    for id in 1..=5 {
        assert_eq!(count(&logs, &format!("issue id={id} ")), 1, "issue {id} once:\n{logs}");
    }
    for id in 101..=105 {
        assert_eq!(count(&logs, &format!("deal id={id};")), 1, "deal {id} once:\n{logs}");
    }

    // The lists grow at their end: the next walk asks the last page again and goes on.
    issues.lock().expect("lock").extend(6..=8);
    bitrix.lock().expect("lock").extend(106..=108);
    j.wait_for_log("issue id=8 ", Duration::from_secs(20));
    j.wait_for_log("deal id=108;", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    let logs = j.logs();
    for id in 5..=8 {
        assert_eq!(count(&logs, &format!("issue id={id} ")), 1, "issue {id} once:\n{logs}");
    }
    j.crash();

    // Killed; more come meanwhile. The restarted walks give those only.
    issues.lock().expect("lock").extend(9..=10);
    bitrix.lock().expect("lock").extend(109..=110);
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    j.wait_for_log("issue id=10 ", Duration::from_secs(30));
    j.wait_for_log("deal id=110;", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    let logs = j.logs();
    assert_eq!(count(&logs, "issue id="), 2, "only the new issues after the restart:\n{logs}");
    assert_eq!(count(&logs, "deal id="), 2, "only the new deals after the restart:\n{logs}");
}

#[test]
fn a_paging_source_says_what_next_is_at_its_line_and_column() {
    let dir = project(&[
        ("junction.yaml", "routes: [routes/]\nconnectors:\n  api: { kind: http, base_url: \"http://127.0.0.1:1\" }\n"),
        (
            "routes/p.yaml",
            "route: p\nfrom: { connector: api, pages: { path: /x, next: { cursor: /next } } }\nsteps:\n  - log: x\n",
        ),
    ]);
    let (code, _, err) = junction(&["check", dir.path().to_str().expect("utf-8")], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("routes/p.yaml:2:") && err.contains("`next` is `link`"), "{err}");
}
