//! The `yandex_direct` connector through the binary, against the Yandex Direct simulator:
//! campaigns added once per key (Direct has no idempotency keys), per-item errors inside a 200
//! refused, suspend and resume, points running out pausing that client only, a report polled
//! until it is built, and daily statistics re-reading their trailing days from a checkpoint
//! that survives a kill.

mod common;

use std::time::Duration;

use common::{Junction, junction, post_json, project, sqlite_store};
use junction_simulators::direct::Direct;
use serde_json::json;

const TOKEN: &str = "y0_direct-token";

fn root(sim: &Direct) -> String {
    format!(
        "routes: [routes/]\nconnectors:\n  ads:\n    kind: yandex_direct\n    base_url: \"{}\"\n    token: \"${{DIRECT_TOKEN}}\"\n    client_login: client-a\n",
        sim.url
    )
}

fn op_route(op: &str, extra: &str) -> (String, String) {
    (
        format!("routes/{op}.yaml"),
        format!(
            "route: {op}\nfrom: {{ http: {{ method: POST, path: /{op}, auth: none }} }}\nsteps:\n  - request: {{ connector: ads, op: {op}{extra} }}\non_error:\n  retry: {{ attempts: 2, initial: 20ms, max: 100ms }}\n"
        ),
    )
}

fn env(store: &str) -> Vec<(&str, &str)> {
    vec![("JUNCTION_STORE", store), ("DIRECT_TOKEN", TOKEN)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_are_added_once_per_key_and_points_pause_only_their_client() {
    let sim = Direct::start("127.0.0.1:0", TOKEN).await.expect("simulator");
    let mut files = vec![("junction.yaml".to_owned(), root(&sim))];
    for (op, extra) in [
        ("add_campaign", ""),
        ("get_campaigns", ""),
        ("suspend_campaign", ""),
        ("resume_campaign", ""),
        ("update_campaign", ""),
    ] {
        files.push(op_route(op, extra));
    }
    let (path, route) = op_route("get_campaigns", ", client_login: client-b");
    files.push((
        path.replace("get_campaigns", "get_b"),
        route.replace("route: get_campaigns", "route: get_b").replace("path: /get_campaigns", "path: /get_b"),
    ));
    let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let dir = project(&files);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &env(&store));

    let campaign =
        json!({ "Name": "Весна 2027", "StartDate": "2026-12-08", "TextCampaign": { "BiddingStrategy": {} } });
    let (status, added) = post_json(&j, "/add_campaign", json!({ "key": "line-1", "campaign": campaign })).await;
    assert_eq!(status, 200, "{added}\n{}", j.logs());
    assert_eq!(added["created"], true);
    assert!(added["name"].as_str().is_some_and(|n| n.ends_with("[jn:line-1]")), "{added}");
    // Asked again (a retry whose first try went through, a replay): the same campaign.
    let (_, again) = post_json(&j, "/add_campaign", json!({ "key": "line-1", "campaign": campaign })).await;
    assert_eq!((again["id"].clone(), again["created"].clone()), (added["id"].clone(), json!(false)));
    assert_eq!(sim.adds(), 1);

    // A per-item error inside HTTP 200 is a refusal, not a success.
    let (status, refused) =
        post_json(&j, "/add_campaign", json!({ "key": "line-2", "campaign": { "Name": "no start" } })).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused.to_string().contains("8000"), "{refused}");

    let id = added["id"].clone();
    let (status, _) = post_json(&j, "/suspend_campaign", json!({ "id": id })).await;
    assert_eq!(status, 200);
    assert_eq!(sim.campaigns()[0]["State"], "SUSPENDED");
    post_json(&j, "/resume_campaign", json!({ "id": id })).await;
    assert_eq!(sim.campaigns()[0]["State"], "ON");
    let (status, _) = post_json(
        &j,
        "/update_campaign",
        json!({ "id": id, "fields": { "Name": "Весна 2027 (обновлено) [jn:line-1]" } }),
    )
    .await;
    assert_eq!(status, 200);

    // client-a's points run out: its calls stop (error 152), client-b's go on.
    sim.set_units("client-a", 5);
    let (status, out) = post_json(&j, "/get_campaigns", json!({})).await;
    assert_eq!(status, 503, "{out}");
    let (status, b) = post_json(&j, "/get_b", json!({})).await;
    assert_eq!(status, 200, "another client is not held back: {b}");
    assert!(j.logs().contains("points ran out"), "{}", j.logs());
    let calls_before = sim.calls();
    let (status, again) = post_json(&j, "/get_campaigns", json!({})).await;
    assert_eq!(status, 503, "{again}");
    assert!(again.to_string().contains("calls resume in"), "failed at once: {again}");
    assert_eq!(sim.calls(), calls_before, "no request spent on a client without points");
    assert!(!j.logs().contains(TOKEN), "{}", j.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_are_polled_until_built_and_resume_from_their_checkpoint() {
    let sim = Direct::start("127.0.0.1:0", TOKEN).await.expect("simulator");
    let today = chrono::Utc::now().date_naive();
    let day = |back: i64| (today - chrono::Duration::days(back)).to_string();
    for back in 0..=6 {
        sim.set_stats(705, &day(back), 1000 + back, 10 + back, 1_234_560_000 * (back + 1));
    }
    let route = format!(
        "route: stats\nfrom: {{ connector: ads, statistics: {{ every: 300ms, since: \"{}\", trailing_days: 2 }} }}\nsteps:\n  - log: \"stat ${{body.campaign_id}} ${{body.day}} cost=${{body.cost}} key=${{meta.key}};\"\n",
        day(6)
    );
    let dir = project(&[("junction.yaml", &root(&sim)), ("routes/stats.yaml", &route)]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &env(&store));
    for back in 0..=6 {
        j.wait_for_log(&format!("stat 705 {} ", day(back)), Duration::from_secs(30));
    }
    // Polled: 201, 202, then the TSV; money from micros; keyed by (campaign, day).
    assert!(j.logs().contains(&format!("stat 705 {} cost=1234.56 key=705:{};", day(0), day(0))), "{}", j.logs());
    let first = sim.reports_asked();
    assert_eq!(first[0], (day(6), day(0)));
    assert!(first.len() >= 3, "asked until built: {first:?}");
    // The checkpoint is stored once the walk's rows are delivered.
    std::thread::sleep(Duration::from_millis(500));
    j.crash();

    let before = sim.reports_asked().len();
    let j = Junction::start(dir.path(), &env(&store));
    j.wait_for_log(&format!("stat 705 {} ", day(0)), Duration::from_secs(30));
    let after = sim.reports_asked();
    assert_eq!(after[before], (day(2), day(0)), "from the checkpoint less the trailing days, not from `since`");
    assert!(!j.logs().contains(&format!("stat 705 {} ", day(6))), "{}", j.logs());
}

#[test]
fn direct_options_are_checked_at_their_line_and_column() {
    let dir = project(&[
        (
            "junction.yaml",
            "routes: [routes/]\nconnectors:\n  ads: { kind: yandex_direct, base_url: https://api.direct.yandex.com, token: \"${DIRECT_TOKEN:-t}\" }\n",
        ),
        ("routes/s.yaml", "route: s\nfrom: { connector: ads, statistics: { since: yesterday } }\nsteps:\n  - log: x\n"),
    ]);
    let (code, _, err) = junction(&["check", dir.path().to_str().expect("utf-8")], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("routes/s.yaml:2:") && err.contains("`since` is a date"), "{err}");
}

#[test]
fn the_readmes_direct_connector_is_valid() {
    let env = [("DIRECT_TOKEN", "t"), ("DIRECT_CLIENT_LOGIN", "client-a")];
    common::assert_readme_example_checks("connectors:\n  ads:\n    kind: yandex_direct", &env);
}
