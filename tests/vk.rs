//! The `vk_ads` connector through the binary, against the VK Ads simulator: ad plans created
//! once per key (VK has no idempotency keys), paused and resumed, listed page by page; one token
//! kept in the store and renewed with its refresh token — across restarts, and never a new one
//! per process, since VK allows five; the limit reached said plainly; a 429 without
//! `Retry-After` waited out by its `X-RateLimit-*-Remaining` header; daily statistics re-read
//! over their trailing days from a checkpoint that survives a kill.

mod common;

use std::time::Duration;

use common::{Junction, junction, post_json, project, sqlite_store};
use junction_simulators::Fault;
use junction_simulators::vk::{TOKEN_LIMIT, VkAds};
use serde_json::json;

const CLIENT: &str = "vk-client-1";
const SECRET: &str = "vk-secret-s3cret";

fn root(sim: &VkAds) -> String {
    format!(
        "routes: [routes/]\nconnectors:\n  vk:\n    kind: vk_ads\n    base_url: \"{}\"\n    client_id: {CLIENT}\n    client_secret: \"${{VK_CLIENT_SECRET}}\"\n",
        sim.url
    )
}

fn op_route(op: &str) -> (String, String) {
    (
        format!("routes/{op}.yaml"),
        format!(
            "route: {op}\nfrom: {{ http: {{ method: POST, path: /{op}, auth: none }} }}\nsteps:\n  - request: {{ connector: vk, op: {op} }}\non_error:\n  retry: {{ attempts: 3, initial: 20ms, max: 2s }}\n"
        ),
    )
}

fn files(sim: &VkAds) -> Vec<(String, String)> {
    let mut files = vec![("junction.yaml".to_owned(), root(sim))];
    for op in ["add_campaign", "get_campaigns", "pause_campaign", "resume_campaign", "update_campaign", "statistics"] {
        files.push(op_route(op));
    }
    files
}

fn env(store: &str) -> Vec<(&str, &str)> {
    vec![("JUNCTION_STORE", store), ("VK_CLIENT_SECRET", SECRET)]
}

fn start(dir: &std::path::Path, store: &str) -> Junction {
    Junction::start(dir, &env(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ad_plans_are_created_once_per_key_paused_resumed_and_listed_page_by_page() {
    let sim = VkAds::start("127.0.0.1:0", CLIENT, SECRET).await.expect("simulator");
    for n in 0..120 {
        sim.add_plan(&format!("Старая кампания {n}"), "active");
    }
    let files = files(&sim);
    let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let dir = project(&files);
    let (_tmp, store) = sqlite_store();
    let j = start(dir.path(), &store);

    let plan = json!({ "name": "Весна 2027", "objective": "traffic", "ad_groups": [] });
    let (status, added) = post_json(&j, "/add_campaign", json!({ "key": "line-1", "campaign": plan })).await;
    assert_eq!(status, 200, "{added}\n{}", j.logs());
    assert_eq!(added["created"], true);
    assert!(added["name"].as_str().is_some_and(|n| n.ends_with("[jn:line-1]")), "{added}");
    // Asked again (a retry whose first try went through): found past the first pages, not made.
    let (_, again) = post_json(&j, "/add_campaign", json!({ "key": "line-1", "campaign": plan })).await;
    assert_eq!((again["id"].clone(), again["created"].clone()), (added["id"].clone(), json!(false)), "{again}");
    assert_eq!(sim.creates(), 1);

    // VK's validation error (400 `validation_failed` with the field) is a refusal.
    let (status, refused) =
        post_json(&j, "/add_campaign", json!({ "key": "line-2", "campaign": { "name": "x", "status": "paused" } }))
            .await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused.to_string().contains("validation_failed"), "{refused}");

    let id = added["id"].clone();
    let status_of = || sim.plans().into_iter().find(|p| p["id"] == id).map(|p| p["status"].clone());
    assert_eq!(post_json(&j, "/pause_campaign", json!({ "id": id })).await.0, 200);
    assert_eq!(status_of(), Some(json!("blocked")));
    assert_eq!(post_json(&j, "/resume_campaign", json!({ "id": id })).await.0, 200);
    assert_eq!(status_of(), Some(json!("active")));
    let (status, _) =
        post_json(&j, "/update_campaign", json!({ "id": id, "fields": { "budget_limit_day": "1500" } })).await;
    assert_eq!(status, 200);
    let (status, missing) = post_json(&j, "/pause_campaign", json!({ "id": 1 })).await;
    assert_eq!(status, 422, "an unknown plan is VK's 404, refused: {missing}");

    let (status, all) = post_json(&j, "/get_campaigns", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(all["items"].as_array().map(Vec::len), Some(121), "every page of 50");

    // A 429 with no Retry-After, only X-RateLimit-RPS-Remaining: 0 — waited a second, not failed.
    sim.rate_limit_next(1);
    let (status, one) = post_json(&j, "/get_campaigns", json!({ "ids": [id] })).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["items"].as_array().map(Vec::len), Some(1));
    // A 503 once: retried.
    sim.fail_next([Fault::status(503)]);
    assert_eq!(post_json(&j, "/get_campaigns", json!({ "ids": [id] })).await.0, 200);
    assert!(!j.logs().contains(SECRET), "the secret is not logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stored_token_serves_restarts_and_is_renewed_by_its_refresh_token() {
    let sim = VkAds::start("127.0.0.1:0", CLIENT, SECRET).await.expect("simulator");
    sim.add_plan("Кампания", "active");
    let files = files(&sim);
    let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let dir = project(&files);
    let (_tmp, store) = sqlite_store();
    // Tokens that live 62 s are renewed a minute early: each is stale a second or two later.
    sim.set_token_lifetime(62);
    for _ in 0..3 {
        let j = start(dir.path(), &store);
        let (status, out) = post_json(&j, "/get_campaigns", json!({})).await;
        assert_eq!(status, 200, "{out}\n{}", j.logs());
        j.terminate();
    }
    assert_eq!(sim.grants("client_credentials"), 1, "one token for three processes: it is kept in the store");
    assert_eq!(sim.tokens(), 1);
    let refreshed = sim.grants("refresh_token");
    std::thread::sleep(Duration::from_millis(2100));
    let j = start(dir.path(), &store);
    assert_eq!(post_json(&j, "/get_campaigns", json!({})).await.0, 200);
    assert_eq!(
        sim.grants("refresh_token"),
        refreshed + 1,
        "an expiring token is refreshed (its answer's expires_in a string)"
    );
    assert_eq!((sim.grants("client_credentials"), sim.tokens()), (1, 1), "not a second token");
    j.terminate();

    // Every slot taken by other programs, and this connector's token gone: the limit is said.
    let (_tmp2, store2) = sqlite_store();
    sim.take_tokens(CLIENT, TOKEN_LIMIT);
    let j = start(dir.path(), &store2);
    let (status, out) = post_json(&j, "/get_campaigns", json!({})).await;
    assert_eq!(status, 503, "{out}");
    assert!(out.to_string().contains("limit of live tokens"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_reread_their_trailing_days_and_resume_from_their_checkpoint() {
    let sim = VkAds::start("127.0.0.1:0", CLIENT, SECRET).await.expect("simulator");
    let plan = sim.add_plan("Кампания", "active");
    let blocked = sim.add_plan("Остановленная", "blocked");
    let today = chrono::Utc::now().date_naive();
    let day = |back: i64| (today - chrono::Duration::days(back)).to_string();
    for back in 0..=6 {
        sim.set_stats(plan, &day(back), 1000 + back, 10 + back, &format!("{}.92", 23328 + back));
    }
    sim.set_stats(blocked, &day(1), 5, 1, "0.5");
    let route = format!(
        "route: stats\nfrom: {{ connector: vk, statistics: {{ every: 300ms, since: \"{}\", trailing_days: 2 }} }}\nsteps:\n  - log: \"stat ${{body.campaign_id}} ${{body.day}} cost=${{body.cost}} key=${{meta.key}};\"\n",
        day(6)
    );
    let dir = project(&[("junction.yaml", &root(&sim)), ("routes/stats.yaml", &route)]);
    let (_tmp, store) = sqlite_store();
    let j = start(dir.path(), &store);
    for back in 0..=6 {
        j.wait_for_log(&format!("stat {plan} {} ", day(back)), Duration::from_secs(30));
    }
    assert!(
        j.logs().contains(&format!("stat {plan} {} cost=23328.92 key={plan}:{};", day(0), day(0))),
        "money exact, keyed by (plan, day): {}",
        j.logs()
    );
    j.wait_for_log(&format!("stat {blocked} {} cost=0.5", day(1)), Duration::from_secs(10));
    let first = sim.statistics_asked();
    assert_eq!((first[0].1.clone(), first[0].2.clone()), (day(6), day(0)));
    assert!(first[0].0.contains(&plan.to_string()) && first[0].0.contains(&blocked.to_string()), "{first:?}");
    std::thread::sleep(Duration::from_millis(500));
    j.crash();

    let before = sim.statistics_asked().len();
    let j = start(dir.path(), &store);
    j.wait_for_log(&format!("stat {plan} {} ", day(0)), Duration::from_secs(30));
    let after = sim.statistics_asked();
    assert_eq!(
        (after[before].1.clone(), after[before].2.clone()),
        (day(2), day(0)),
        "from the checkpoint less the trailing days"
    );
    assert!(!j.logs().contains(&format!("stat {plan} {} ", day(6))), "{}", j.logs());
}

#[test]
fn vk_options_are_checked_at_their_line_and_column() {
    let dir = project(&[
        (
            "junction.yaml",
            "routes: [routes/]\nconnectors:\n  vk: { kind: vk_ads, client_id: a, client_secret: \"${VK_SECRET}\" }\n",
        ),
        ("routes/s.yaml", "route: s\nfrom: { connector: vk, statistics: { since: last-week } }\nsteps:\n  - log: x\n"),
    ]);
    let (code, _, err) = junction(&["check", dir.path().to_str().expect("utf-8")], &[("VK_SECRET", "s")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("routes/s.yaml:2:") && err.contains("`since` is a date"), "{err}");
}

#[test]
fn a_secret_written_into_the_file_is_refused_at_its_line_and_column() {
    let dir = project(&[(
        "junction.yaml",
        "routes: []\nconnectors:\n  vk:\n    kind: vk_ads\n    client_id: a\n    client_secret: hunter2\n  api:\n    kind: http\n    base_url: https://example.com\n    auth: { api_key: { header: X-Key, value: k3y } }\n",
    )]);
    let (code, out, err) = junction(&["check", dir.path().to_str().expect("utf-8")], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("junction.yaml:6:20: `client_secret` is a secret: give it from the environment"), "{err}");
    assert!(err.contains("junction.yaml:10:46: `value` is a secret"), "{err}");
    assert!(!out.contains("hunter2") && !err.contains("hunter2"), "the secret is not repeated");
}

#[test]
fn the_readmes_vk_connector_is_valid() {
    let env = [("VK_CLIENT_ID", "id"), ("VK_CLIENT_SECRET", "secret"), ("VK_AGENCY_CLIENT", "client-a")];
    common::assert_readme_example_checks("connectors:\n  vk:\n    kind: vk_ads", &env);
}
