//! The request/reply cases of every adapter operation (#5's conformance for calls): each
//! operation, through a route with retries, against its simulator, is
//! - answered;
//! - retried past one 503;
//! - retried past one reply slower than the connector's `timeout`;
//! - refused, not retried, when the system answers 400 (the route answers 422 and the message
//!   is dead-lettered);
//! - unavailable (503) when nothing listens where the connector points.

mod common;

use std::future::Future;

use common::{Junction, post_json, project, sqlite_store};
use junction_simulators::Fault;
use serde_json::{Value, json};

/// Each connector calls with this timeout; a slow reply takes three times as long.
const TIMEOUT: &str = "400ms";
const SLOW_MS: u64 = 1200;

/// A route `POST /<connector>/<op>` calling the operation with the body as its arguments.
fn op_route(connector: &str, op: &str) -> (String, String) {
    (
        format!("routes/{connector}_{op}.yaml"),
        format!(
            "route: {connector}_{op}\nfrom: {{ http: {{ method: POST, path: /{connector}/{op}, auth: none }} }}\nsteps:\n  - request: {{ connector: {connector}, op: {op} }}\non_error:\n  retry: {{ attempts: 3, initial: 20ms, max: 200ms }}\n"
        ),
    )
}

fn start(
    config: &str,
    routes: &[(String, String)],
    env: &[(&str, &str)],
) -> (tempfile::TempDir, tempfile::TempDir, Junction) {
    let mut files = vec![("junction.yaml".to_owned(), format!("routes: [routes/]\nconnectors:\n{config}"))];
    files.extend_from_slice(routes);
    let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let dir = project(&files);
    let (tmp, store) = sqlite_store();
    let mut env = env.to_vec();
    env.push(("JUNCTION_STORE", &store));
    let j = Junction::start(dir.path(), &env);
    (dir, tmp, j)
}

/// What a simulator is told, for the cases.
struct Sim<'a> {
    fail_next: &'a dyn Fn(Vec<Fault>),
    /// Drops the faults no request took; how many there were.
    clear: &'a dyn Fn() -> usize,
}

/// Runs the cases of `path`, its arguments made afresh for each (`args().await`).
async fn cases<F: Future<Output = Value>>(j: &Junction, sim: &Sim<'_>, path: &str, args: impl Fn() -> F) {
    let (status, body) = post_json(j, path, args().await).await;
    assert_eq!(status, 200, "{path} answered: {body}\n{}", j.logs());
    // Each fault is followed by a harmless one: a retry takes it, a call that is not retried
    // leaves it.
    let sentinel = Fault::Delay { ms: 0 };
    for (what, fault, expect) in [
        ("503 once", Fault::status(503), 200),
        ("slower than the timeout once", Fault::Delay { ms: SLOW_MS }, 200),
        ("refused with 400", Fault::status(400), 422),
    ] {
        (sim.fail_next)(vec![fault.clone(), sentinel.clone()]);
        let args = args().await;
        let started = std::time::Instant::now();
        let (status, body) = post_json(j, path, args).await;
        let took = started.elapsed();
        assert_eq!(status, expect, "{path}, {what}: {body}\n{}", j.logs());
        if matches!(fault, Fault::Delay { .. }) {
            // Cut off at the timeout and sent again, not waited out.
            assert!(took < std::time::Duration::from_millis(SLOW_MS), "{path}, {what}: took {took:?}");
        }
        let left = (sim.clear)();
        if expect == 422 {
            assert_eq!(left, 1, "{path}, {what}: refused, so not sent again");
            assert!(body["dead_letter_id"].is_string(), "{path}, {what}: dead-lettered: {body}");
        }
    }
}

/// A connector of the same kind pointing where nothing listens: 503, unavailable.
async fn unavailable(j: &Junction, path: &str, args: Value) {
    let (status, body) = post_json(j, path, args).await;
    assert_eq!(status, 503, "{path} with nothing listening: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_amocrm_operation() {
    use junction_simulators::amocrm::{Amocrm, Options};
    let sim = Amocrm::start("127.0.0.1:0", Options::default()).await.expect("simulator");
    let lead = sim.add_lead(json!({ "name": "Сделка", "price": 100 }));
    let o = Options::default();
    let connector = |name: &str, url: &str| {
        format!(
            "  {name}:\n    kind: amocrm\n    base_url: \"{url}\"\n    timeout: {TIMEOUT}\n    client_id: {}\n    client_secret: \"${{AMO_SECRET}}\"\n    redirect_uri: \"{}\"\n    refresh_token: \"${{AMO_REFRESH}}\"\n",
            o.client_id, o.redirect_uri
        )
    };
    let ops = ["get_lead", "list_leads", "update_lead", "add_note", "add_task"];
    let mut routes: Vec<(String, String)> = ops.iter().map(|op| op_route("crm", op)).collect();
    routes.push(op_route("dead", "get_lead"));
    let config = connector("crm", &sim.url) + &connector("dead", "http://127.0.0.1:1");
    let (_d, _s, j) = start(&config, &routes, &[("AMO_SECRET", &o.client_secret), ("AMO_REFRESH", &o.refresh_token)]);
    let s = Sim { fail_next: &|f| sim.fail_next(f), clear: &|| sim.clear_faults() };
    cases(&j, &s, "/crm/get_lead", || async { json!({ "id": lead }) }).await;
    cases(&j, &s, "/crm/list_leads", || async { json!({}) }).await;
    cases(&j, &s, "/crm/update_lead", || async { json!({ "id": lead, "price": 200 }) }).await;
    cases(&j, &s, "/crm/add_note", || async { json!({ "lead_id": lead, "text": "КП отправлено" }) }).await;
    cases(&j, &s, "/crm/add_task", || async {
        json!({ "lead_id": lead, "text": "Позвонить", "complete_till": 1_893_456_000 })
    })
    .await;
    unavailable(&j, "/dead/get_lead", json!({ "id": lead })).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_onec_operation() {
    use junction_simulators::onec::{INVOICES, OneC, PAYMENTS};
    let sim = OneC::start("127.0.0.1:0", "user", "p@ss").await.expect("simulator");
    sim.add(PAYMENTS, json!({ "СуммаДокумента": 100 }));
    let connector = |name: &str, url: &str| {
        format!(
            "  {name}:\n    kind: onec_odata\n    base_url: \"{url}\"\n    timeout: {TIMEOUT}\n    user: user\n    password: \"${{ONEC_PASSWORD}}\"\n"
        )
    };
    let ops = ["create_invoice", "post_invoice", "get_invoice", "update_invoice", "query"];
    let mut routes: Vec<(String, String)> = ops.iter().map(|op| op_route("billing", op)).collect();
    routes.push(op_route("dead", "query"));
    let config = connector("billing", &sim.url) + &connector("dead", "http://127.0.0.1:1/odata/standard.odata");
    let (_d, _s, j) = start(&config, &routes, &[("ONEC_PASSWORD", "p@ss")]);
    let s = Sim { fail_next: &|f| sim.fail_next(f), clear: &|| sim.clear_faults() };
    let contract = format!("c-{}", common::tag());
    let fields = json!({ "Контрагент_Key": "5f7c2a10-0000-0000-0000-000000000001", "СуммаДокумента": 1_500_000 });
    cases(&j, &s, "/billing/create_invoice", || async { json!({ "contract_id": contract, "fields": fields }) }).await;
    assert_eq!(sim.creates(), 1, "however the create was retried, one invoice");
    let invoice = || sim.documents(INVOICES).into_iter().next().expect("the invoice");
    let reference = invoice()["Ref_Key"].clone();
    cases(&j, &s, "/billing/post_invoice", || async { json!({ "ref": reference }) }).await;
    cases(&j, &s, "/billing/get_invoice", || async { json!({ "ref": reference }) }).await;
    cases(&j, &s, "/billing/update_invoice", || async {
        json!({ "ref": reference, "data_version": invoice()["DataVersion"], "fields": { "СуммаДокумента": 1_600_000 } })
    })
    .await;
    cases(&j, &s, "/billing/query", || async { json!({ "entity": PAYMENTS, "top": 10 }) }).await;
    unavailable(&j, "/dead/query", json!({ "entity": PAYMENTS })).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_yandex_direct_operation() {
    use junction_simulators::direct::Direct;
    let sim = Direct::start("127.0.0.1:0", "direct-token").await.expect("simulator");
    let today = chrono::Utc::now().date_naive().to_string();
    sim.set_stats(701, &today, 1000, 10, 1_000_000);
    let connector = |name: &str, url: &str| {
        format!(
            "  {name}:\n    kind: yandex_direct\n    base_url: \"{url}\"\n    timeout: {TIMEOUT}\n    token: \"${{DIRECT_TOKEN}}\"\n"
        )
    };
    let ops = ["add_campaign", "get_campaigns", "update_campaign", "suspend_campaign", "resume_campaign", "report"];
    let mut routes: Vec<(String, String)> = ops.iter().map(|op| op_route("ads", op)).collect();
    routes.push(op_route("dead", "get_campaigns"));
    let config = connector("ads", &sim.url) + &connector("dead", "http://127.0.0.1:1");
    let (_d, _s, j) = start(&config, &routes, &[("DIRECT_TOKEN", "direct-token")]);
    let s = Sim { fail_next: &|f| sim.fail_next(f), clear: &|| sim.clear_faults() };
    let campaign = json!({ "key": "line-1", "campaign": { "Name": "Весна", "StartDate": today } });
    cases(&j, &s, "/ads/add_campaign", || async { campaign.clone() }).await;
    assert_eq!(sim.adds(), 1, "however the add was retried, one campaign");
    let id = sim.campaigns()[0]["Id"].clone();
    cases(&j, &s, "/ads/get_campaigns", || async { json!({ "ids": [id] }) }).await;
    cases(&j, &s, "/ads/update_campaign", || async {
        json!({ "id": id, "fields": { "Name": "Весна [jn:line-1]" } })
    })
    .await;
    cases(&j, &s, "/ads/suspend_campaign", || async { json!({ "id": id }) }).await;
    cases(&j, &s, "/ads/resume_campaign", || async { json!({ "id": id }) }).await;
    cases(&j, &s, "/ads/report", || async { json!({ "date_from": today, "date_to": today }) }).await;
    unavailable(&j, "/dead/get_campaigns", json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vk_ads_operation() {
    use junction_simulators::vk::VkAds;
    let sim = VkAds::start("127.0.0.1:0", "vk-client", "vk-secret").await.expect("simulator");
    let connector = |name: &str, url: &str| {
        format!(
            "  {name}:\n    kind: vk_ads\n    base_url: \"{url}\"\n    timeout: {TIMEOUT}\n    client_id: vk-client\n    client_secret: \"${{VK_SECRET}}\"\n"
        )
    };
    let ops = ["add_campaign", "get_campaigns", "update_campaign", "pause_campaign", "resume_campaign", "statistics"];
    let mut routes: Vec<(String, String)> = ops.iter().map(|op| op_route("vk", op)).collect();
    routes.push(op_route("dead", "get_campaigns"));
    let config = connector("vk", &sim.url) + &connector("dead", "http://127.0.0.1:1");
    let (_d, _s, j) = start(&config, &routes, &[("VK_SECRET", "vk-secret")]);
    let s = Sim { fail_next: &|f| sim.fail_next(f), clear: &|| sim.clear_faults() };
    let plan = json!({ "key": "line-1", "campaign": { "name": "Весна", "objective": "traffic", "ad_groups": [] } });
    cases(&j, &s, "/vk/add_campaign", || async { plan.clone() }).await;
    assert_eq!(sim.creates(), 1, "however the create was retried, one ad plan");
    let id = sim.plans()[0]["id"].clone();
    let today = chrono::Utc::now().date_naive().to_string();
    cases(&j, &s, "/vk/get_campaigns", || async { json!({ "ids": [id] }) }).await;
    cases(&j, &s, "/vk/update_campaign", || async { json!({ "id": id, "fields": { "budget_limit_day": "900" } }) })
        .await;
    cases(&j, &s, "/vk/pause_campaign", || async { json!({ "id": id }) }).await;
    cases(&j, &s, "/vk/resume_campaign", || async { json!({ "id": id }) }).await;
    cases(&j, &s, "/vk/statistics", || async { json!({ "ids": [id], "date_from": today, "date_to": today }) }).await;
    unavailable(&j, "/dead/get_campaigns", json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_clickhouse_load() {
    use junction_simulators::clickhouse::ClickHouse;
    let sim = ClickHouse::start("127.0.0.1:0", "default", "").await.expect("simulator");
    let connector = |name: &str, url: &str| {
        format!(
            "  {name}:\n    kind: clickhouse\n    url: \"{url}\"\n    timeout: {TIMEOUT}\n    batch: {{ rows: 1, every: 10ms }}\n    tables:\n      stats: {{ key: [id], columns: {{ id: UInt64, clicks: UInt64 }} }}\n"
        )
    };
    let load = |name: &str| {
        (
            format!("routes/{name}.yaml"),
            format!(
                "route: {name}\nfrom: {{ http: {{ method: POST, path: /{name}/load, auth: none }} }}\nsteps:\n  - to: {{ connector: {name}, table: stats }}\non_error:\n  retry: {{ attempts: 3, initial: 20ms, max: 200ms }}\n"
            ),
        )
    };
    let config = connector("olap", &sim.url) + &connector("dead", "http://127.0.0.1:1");
    let (_d, _s, j) = start(&config, &[load("olap"), load("dead")], &[]);
    let s = Sim { fail_next: &|f| sim.fail_next(f), clear: &|| sim.clear_faults() };
    let n = std::sync::atomic::AtomicU64::new(0);
    cases(&j, &s, "/olap/load", || async {
        json!({ "id": n.fetch_add(1, std::sync::atomic::Ordering::Relaxed), "clicks": 1 })
    })
    .await;
    unavailable(&j, "/dead/load", json!({ "id": 1, "clicks": 1 })).await;
}
