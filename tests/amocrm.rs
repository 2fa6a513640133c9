//! The `amocrm` connector through the binary, against the amoCRM simulator
//! (`examples/simulators`): its operations, OAuth2 with a refresh token amoCRM rotates (kept in
//! the store, so a restart uses the current one), a 401 curing itself with a new token, 429 with
//! `Retry-After` and a truncated reply retried, and the leads source walking every page and
//! resuming from its checkpoint after a kill.

mod common;

use std::time::{Duration, Instant};

use common::{Junction, junction, post_json, project, sqlite_store};
use junction_simulators::Fault;
use junction_simulators::amocrm::{Amocrm, Options};
use serde_json::{Value, json};

fn config(sim: &Amocrm) -> String {
    let o = Options::default();
    format!(
        "routes: [routes/]\nconnectors:\n  crm:\n    kind: amocrm\n    base_url: \"{}\"\n    client_id: {}\n    client_secret: \"${{AMO_SECRET}}\"\n    redirect_uri: \"{}\"\n    refresh_token: \"${{AMO_REFRESH}}\"\n",
        sim.url, o.client_id, o.redirect_uri
    )
}

const ENV: [(&str, &str); 2] = [("AMO_SECRET", "sim-secret"), ("AMO_REFRESH", "sim-refresh-0")];

fn env(store: &str) -> Vec<(&str, &str)> {
    let mut env = vec![("JUNCTION_STORE", store)];
    env.extend_from_slice(&ENV);
    env
}

/// An http route `POST /<op>` calling `op` with the body as its arguments.
fn op_route(op: &str, extra: &str) -> (String, String) {
    (
        format!("routes/{op}.yaml"),
        format!(
            "route: {op}\nfrom: {{ http: {{ method: POST, path: /{op}, auth: none }} }}\nsteps:\n  - request: {{ connector: crm, op: {op}{extra} }}\non_error:\n  retry: {{ attempts: 4, initial: 50ms, max: 3s }}\n"
        ),
    )
}

fn ops_project(sim: &Amocrm) -> tempfile::TempDir {
    let routes = [
        op_route("get_lead", ", with: contacts"),
        op_route("list_leads", ""),
        op_route("update_lead", ""),
        op_route("add_note", ""),
        op_route("add_task", ""),
    ];
    let mut files: Vec<(String, String)> = vec![("junction.yaml".into(), config(sim))];
    files.extend(routes);
    let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    project(&files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_speak_amocrm_and_a_rotated_refresh_token_survives_a_restart() {
    let sim = Amocrm::start("127.0.0.1:0", Options::default()).await.expect("simulator");
    let lead = sim.add_lead(json!({ "name": "Рекламная кампания", "price": 1_500_000, "status_id": 142 }));
    sim.add_contact(lead, json!({ "name": "Анна Петрова" }));
    for n in 0..4 {
        sim.add_lead(json!({ "name": format!("other {n}") }));
    }
    let dir = ops_project(&sim);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &env(&store));

    let (status, got) = post_json(&j, "/get_lead", json!({ "id": lead })).await;
    assert_eq!(status, 200, "{got}\n{}", j.logs());
    assert_eq!(got["name"], "Рекламная кампания");
    assert_eq!(got["_embedded"]["contacts"][0]["is_main"], true, "with=contacts: {got}");

    let (status, page) = post_json(&j, "/list_leads", json!({ "limit": 2, "page": 1 })).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["next"], "2");
    let (_, last) = post_json(&j, "/list_leads", json!({ "limit": 2, "page": 3 })).await;
    assert_eq!((last["items"].as_array().map(Vec::len), &last["next"]), (Some(1), &Value::Null), "{last}");
    let (_, none) = post_json(&j, "/list_leads", json!({ "limit": 2, "page": 4 })).await;
    assert_eq!(none["items"], json!([]), "204 is an empty last page: {none}");

    let (status, updated) = post_json(&j, "/update_lead", json!({ "id": lead, "status_id": 143 })).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(sim.lead(lead).expect("lead")["status_id"], 143);

    let (status, note) = post_json(&j, "/add_note", json!({ "lead_id": lead, "text": "Медиаплан готов" })).await;
    assert_eq!(status, 200, "{note}");
    assert_eq!(note["entity_id"], lead);
    let notes = sim.notes();
    assert_eq!(notes[0]["note_type"], "common");
    assert_eq!(notes[0]["params"]["text"], "Медиаплан готов");

    let (status, task) =
        post_json(&j, "/add_task", json!({ "lead_id": lead, "text": "Позвонить", "complete_till": 1_900_000_000 }))
            .await;
    assert_eq!(status, 200, "{task}");
    assert_eq!(sim.tasks()[0]["entity_type"], "leads");

    let (status, missing) = post_json(&j, "/get_lead", json!({ "id": 999_999 })).await;
    assert_eq!(status, 422, "an unknown lead is refused, not retried: {missing}");

    // One token for all those calls; amoCRM rotated the refresh token it was fetched with.
    assert_eq!(sim.token_requests(), 1, "{}", j.logs());
    assert_ne!(sim.current_refresh_token(), "sim-refresh-0");
    let logs = j.logs();
    assert!(!logs.contains("sim-secret") && !logs.contains("sim-refresh") && !logs.contains("sim-access"), "{logs}");
    j.terminate();

    // Restarted with the same store while amoCRM revoked every access token: the stored access
    // token gets a 401, and the rotated refresh token (the configured one is revoked) gets a new one.
    sim.revoke_access_tokens();
    let j = Junction::start(dir.path(), &env(&store));
    let (status, got) = post_json(&j, "/get_lead", json!({ "id": lead })).await;
    assert_eq!(status, 200, "{got}\n{}", j.logs());
    assert_eq!(sim.token_requests(), 2, "{}", j.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amocrms_failures_are_retried_as_they_ask() {
    let sim = Amocrm::start("127.0.0.1:0", Options::default()).await.expect("simulator");
    let lead = sim.add_lead(json!({ "name": "x" }));
    let dir = ops_project(&sim);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &env(&store));

    // 429 with Retry-After: 1 — the retry waits that second, not the route's 50 ms.
    sim.fail_next([Fault::too_many_requests(Some(1))]);
    let (status, got) = post_json(&j, "/get_lead", json!({ "id": lead })).await;
    assert_eq!(status, 200, "{got}\n{}", j.logs());
    let seen = sim.requests();
    let gap = seen[seen.len() - 1].at.duration_since(seen[seen.len() - 2].at);
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");

    // A reply cut in the middle is not passed on as a body: retried, then the whole one.
    sim.fail_next([Fault::Truncate, Fault::status(503)]);
    let before = sim.requests().len();
    let (status, got) = post_json(&j, "/get_lead", json!({ "id": lead })).await;
    assert_eq!(status, 200, "{got}\n{}", j.logs());
    assert_eq!(got["id"], lead);
    assert_eq!(sim.requests().len() - before, 3, "truncated, 503, then the answer");
    assert!(j.logs().contains("not JSON"), "{}", j.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leads_source_walks_every_page_and_resumes_from_its_checkpoint() {
    let sim = Amocrm::start("127.0.0.1:0", Options::default()).await.expect("simulator");
    let ids: Vec<u64> = (0..7).map(|n| sim.add_lead(json!({ "name": format!("lead {n}") }))).collect();
    let dir = project(&[
        ("junction.yaml", &config(&sim)),
        (
            "routes/leads.yaml",
            "route: leads\nfrom: { connector: crm, leads: { every: 300ms, limit: 3 } }\nsteps:\n  - log: \"lead id=${body.id} name=${body.name};\"\n",
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &env(&store));
    for id in &ids {
        j.wait_for_log(&format!("lead id={id} "), Duration::from_secs(20));
    }
    // Three pages of 3, 3 and 1 were read (and 204 once the walk caught up).
    let count = |logs: &str, id: u64| logs.matches(&format!("lead id={id} ")).count();
    std::thread::sleep(Duration::from_millis(900));
    let logs = j.logs();
    for id in &ids {
        assert_eq!(count(&logs, *id), 1, "lead {id} delivered once over several walks:\n{logs}");
    }
    sim.update_lead(ids[2], json!({ "name": "renamed" }));
    j.wait_for_log("name=renamed;", Duration::from_secs(10));
    // The page's checkpoint is stored after its leads are delivered, and before the source
    // asks for anything more: the next request says it is stored.
    let asked = sim.requests().len();
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.requests().len() == asked {
        assert!(Instant::now() < deadline, "the source stopped asking");
        std::thread::sleep(Duration::from_millis(20));
    }
    j.crash();

    // Killed; a lead changes meanwhile. The restarted walk gives that one only.
    sim.update_lead(ids[5], json!({ "name": "changed while down" }));
    let j = Junction::start(dir.path(), &env(&store));
    j.wait_for_log("name=changed while down;", Duration::from_secs(20));
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs = j.logs();
    assert_eq!(logs.matches("lead id=").count(), 1, "only the changed lead after the restart:\n{logs}");
    let pages = sim.requests().iter().filter(|r| r.path == "/api/v4/leads" && r.query.contains("page=3")).count();
    assert!(pages >= 1, "the third page was read");
}

#[test]
fn amocrm_options_and_operations_are_checked_at_their_line_and_column() {
    let dir = project(&[
        (
            "junction.yaml",
            "routes: [routes/]\nconnectors:\n  crm:\n    kind: amocrm\n    base_url: https://example.amocrm.ru\n    client_id: x\n",
        ),
        (
            "routes/r.yaml",
            "route: r\nfrom: { http: { method: POST, path: /r, auth: none } }\nsteps:\n  - request: { connector: crm, op: get_leed }\n",
        ),
    ]);
    let (code, _, err) = junction(&["check", dir.path().to_str().expect("utf-8")], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("junction.yaml:4:")
            && err.contains("`long_lived_token`, or `client_id`, `client_secret` and `refresh_token`"),
        "{err}"
    );
    // The connector has errors, so its steps are told so where they use it.
    assert!(err.contains("routes/r.yaml:4:"), "{err}");
}

/// amoCRM's "lead status changed" webhook (form-encoded, unsigned, the secret in the URL's
/// query) is answered at once by an async route; its consumer re-fetches the lead before
/// trusting it. The secret goes no further than the check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_webhook_is_accepted_at_once_and_the_lead_re_fetched() {
    use sha2::Digest;
    let sim = Amocrm::start("127.0.0.1:0", Options::default()).await.expect("simulator");
    let lead = sim.add_lead(json!({ "name": "Осенняя кампания", "price": 900_000, "status_id": 143 }));
    let key_hash = hex::encode(sha2::Sha256::digest(b"hook secret"));
    let root = format!(
        "{}auth:\n  amocrm_hook:\n    api_key: {{ query: k, keys: [{{ id: amocrm, sha256: \"{key_hash}\" }}] }}\n",
        config(&sim)
    );
    let dir = project(&[
        ("junction.yaml", &root),
        ("transforms/amo_lead_id.rhai", "#{ id: body.leads.status[0].id }\n"),
        (
            "routes/hook.yaml",
            "route: lead-status\nfrom: { http: { method: POST, path: /webhooks/amocrm, auth: amocrm_hook, async: true } }\nsteps:\n  - transform: amo_lead_id.rhai\n  - request: { connector: crm, op: get_lead }\n  - log: \"lead ${body.id} is now ${body.status_id} (${body.name}); query=${meta.source.query};\"\n",
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &env(&store));
    let hook = j.url("/webhooks/amocrm?k=hook%20secret&account=1");
    let started = Instant::now();
    let status = sim.send_status_webhook(&hook, lead, 142).await.expect("webhook sent");
    assert_eq!(status, 202, "{}", j.logs());
    assert!(started.elapsed() < Duration::from_secs(2), "answered in {:?}", started.elapsed());
    // What the CRM holds now, not what the webhook said.
    j.wait_for_log(&format!("lead {lead} is now 142 (Осенняя кампания)"), Duration::from_secs(20));
    assert!(!j.logs().contains("hook secret") && !j.logs().contains("hook%20secret"), "{}", j.logs());
    assert!(j.logs().contains(r#"query=#{\"account\": \"1\"}"#), "the rest of the query is kept: {}", j.logs());

    let wrong = j.url("/webhooks/amocrm?k=guess");
    assert_eq!(sim.send_status_webhook(&wrong, lead, 142).await.expect("sent"), 401);
}

/// The README's amoCRM connector and its limits-and-breaker example pass `junction check`.
#[test]
fn the_readmes_amocrm_and_guard_examples_are_valid() {
    let env = [("AMO_CLIENT_ID", "id"), ("AMO_CLIENT_SECRET", "secret"), ("AMO_REFRESH_TOKEN", "refresh")];
    common::assert_readme_example_checks("connectors:\n  crm:\n    kind: amocrm", &env);
    common::assert_readme_example_checks(
        "connectors:\n  crm:\n    kind: http\n    base_url: https://example.amocrm.ru",
        &env,
    );
}

/// A lead changed in the middle of a walk moves to the end of the list; the walk asks each
/// page from its checkpoint, so the lead that shifted into a page already read is not skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_changed_during_a_walk_skips_no_other() {
    let sim = Amocrm::start("127.0.0.1:0", Options::default()).await.expect("simulator");
    let ids: Vec<u64> = (0..5).map(|n| sim.add_lead(json!({ "name": format!("lead {n}") }))).collect();
    // The first page at once, the second a while later: time to change a lead in between.
    sim.fail_next([Fault::Delay { ms: 0 }, Fault::Delay { ms: 1500 }]);
    let dir = project(&[
        ("junction.yaml", &config(&sim)),
        (
            "routes/leads.yaml",
            "route: leads\nfrom: { connector: crm, leads: { every: 300ms, limit: 2 } }\nsteps:\n  - log: \"lead id=${body.id} name=${body.name};\"\n",
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &env(&store));
    j.wait_for_log(&format!("lead id={} ", ids[1]), Duration::from_secs(20));
    sim.update_lead(ids[0], json!({ "name": "changed mid-walk" }));
    for id in &ids[2..] {
        j.wait_for_log(&format!("lead id={id} "), Duration::from_secs(10));
    }
    j.wait_for_log("name=changed mid-walk;", Duration::from_secs(10));
}
