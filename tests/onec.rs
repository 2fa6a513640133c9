//! The `onec_odata` connector through the binary, against the 1C OData simulator: an invoice
//! created once per contract however often the create is retried — also when 1C committed it
//! and then answered 500 — and by two instances at once; posted; changed with `If-Match`
//! (412 when it changed meanwhile); payments polled page by page.

mod common;

use std::time::Duration;

use common::{Junction, junction, post_json, project, redis_url, sqlite_store};
use junction_simulators::Fault;
use junction_simulators::onec::{INVOICES, OneC, PAYMENTS};
use serde_json::{Value, json};

fn project_for(sim: &OneC) -> tempfile::TempDir {
    let root = format!(
        "routes: [routes/]\nconnectors:\n  billing:\n    kind: onec_odata\n    base_url: \"{}\"\n    user: \"${{ONEC_USER}}\"\n    password: \"${{ONEC_PASSWORD}}\"\n",
        sim.url
    );
    let op = |op: &str| {
        format!(
            "route: {op}\nfrom: {{ http: {{ method: POST, path: /{op}, auth: none }} }}\nsteps:\n  - request: {{ connector: billing, op: {op} }}\non_error:\n  retry: {{ attempts: 4, initial: 50ms, max: 1s }}\n"
        )
    };
    let files = [
        ("junction.yaml".to_owned(), root),
        ("routes/create_invoice.yaml".to_owned(), op("create_invoice")),
        ("routes/post_invoice.yaml".to_owned(), op("post_invoice")),
        ("routes/get_invoice.yaml".to_owned(), op("get_invoice")),
        ("routes/update_invoice.yaml".to_owned(), op("update_invoice")),
        ("routes/query.yaml".to_owned(), op("query")),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    project(&files)
}

const CREDENTIALS: [(&str, &str); 2] = [("ONEC_USER", "Администратор"), ("ONEC_PASSWORD", "p@ss")];

/// Instances share Redis, where one create per key at a time is claimed.
fn env<'a>(store: &'a str, redis: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![("JUNCTION_STORE", store), ("JUNCTION_CACHE", redis)];
    env.extend_from_slice(&CREDENTIALS);
    env
}

fn invoice_fields() -> Value {
    json!({ "Контрагент_Key": "5f7c2a10-0000-0000-0000-000000000001", "СуммаДокумента": 1_500_000, "ВалютаДокумента_Key": "RUB" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_is_made_once_however_the_create_is_retried() {
    let sim = OneC::start("127.0.0.1:0", CREDENTIALS[0].1, CREDENTIALS[1].1).await.expect("simulator");
    let dir = project_for(&sim);
    let (_tmp, store) = sqlite_store();
    let redis = redis_url();
    let j = Junction::start(dir.path(), &env(&store, &redis));
    // Keys unique to this run: claims in Redis outlive a test that failed half-way.
    let (c42, c43) = (format!("c-42-{}", common::tag()), format!("c-43-{}", common::tag()));

    // 1C commits the document and then answers 500: the retry finds it instead of making another.
    sim.fail_next_create_after_commit(500);
    let (status, made) =
        post_json(&j, "/create_invoice", json!({ "contract_id": c42, "fields": invoice_fields() })).await;
    assert_eq!(status, 200, "{made}\n{}", j.logs());
    assert_eq!(sim.creates(), 1, "{}", j.logs());
    assert_eq!(made["invoice"]["Комментарий"], format!("junction:{c42}"));
    assert_eq!(made["created"], false, "the retry found the committed invoice: {made}");

    // Asked again later (a replayed message): the same invoice.
    let (_, again) = post_json(&j, "/create_invoice", json!({ "contract_id": c42, "fields": invoice_fields() })).await;
    assert_eq!(again["ref"], made["ref"]);
    assert_eq!(sim.creates(), 1);

    // Ten creates of one new contract at once, across two instances: one invoice.
    let (_tmp2, store2) = sqlite_store();
    let k = Junction::start(dir.path(), &env(&store2, &redis));
    let mut calls = Vec::new();
    for n in 0..10 {
        let url = if n % 2 == 0 { j.url("/create_invoice") } else { k.url("/create_invoice") };
        let contract = c43.clone();
        calls.push(tokio::spawn(async move {
            let body = json!({ "contract_id": contract, "fields": invoice_fields() });
            let resp = reqwest::Client::new().post(url).json(&body).send().await.expect("send");
            resp.json::<Value>().await.expect("json")["ref"].clone()
        }));
    }
    let mut refs = Vec::new();
    for c in calls {
        refs.push(c.await.expect("join"));
    }
    refs.sort_by_key(Value::to_string);
    refs.dedup();
    assert_eq!(refs.len(), 1, "{refs:?}");
    assert_eq!(sim.creates(), 2, "one invoice per contract");
    let invoices = sim.documents(INVOICES);
    assert_eq!(invoices.iter().filter(|i| i["Комментарий"] == format!("junction:{c43}").as_str()).count(), 1);

    // Posted; changed with the version it was read at; a stale version is refused with 412.
    let (status, posted) = post_json(&j, "/post_invoice", json!({ "ref": made["ref"] })).await;
    assert_eq!(status, 200, "{posted}");
    let (_, read) = post_json(&j, "/get_invoice", json!({ "contract_id": c42 })).await;
    assert_eq!(read["posted"], true, "{read}");
    let (status, changed) = post_json(
        &j,
        "/update_invoice",
        json!({ "ref": read["ref"], "data_version": read["data_version"], "fields": { "СуммаДокумента": 1_600_000 } }),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_ne!(changed["data_version"], read["data_version"]);
    let (status, stale) = post_json(
        &j,
        "/update_invoice",
        json!({ "ref": read["ref"], "data_version": read["data_version"], "fields": { "СуммаДокумента": 1 } }),
    )
    .await;
    assert_eq!(status, 422, "a stale version is refused, not retried: {stale}");
    assert!(stale.to_string().contains("412"), "{stale}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_are_read_page_by_page() {
    let sim = OneC::start("127.0.0.1:0", CREDENTIALS[0].1, CREDENTIALS[1].1).await.expect("simulator");
    for n in 0..5 {
        sim.add(PAYMENTS, json!({ "СуммаДокумента": 100 * n, "Комментарий": format!("payment {n}") }));
    }
    let dir = project_for(&sim);
    let (_tmp, store) = sqlite_store();
    let redis = redis_url();
    let j = Junction::start(dir.path(), &env(&store, &redis));
    let mut seen = Vec::new();
    let mut skip = json!(0);
    loop {
        let (status, page) = post_json(
            &j,
            "/query",
            json!({ "entity": PAYMENTS, "top": 2, "skip": skip, "select": "Ref_Key,Комментарий" }),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        seen.extend(page["items"].as_array().cloned().unwrap_or_default());
        if page["next"].is_null() {
            break;
        }
        skip = page["next"].clone();
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen[4]["Комментарий"], "payment 4");
    assert!(seen[0].get("СуммаДокумента").is_none(), "$select kept only what was asked");

    // A 503 is retried; wrong credentials are refused, not retried.
    sim.fail_next([Fault::status(503)]);
    let (status, _) = post_json(&j, "/query", json!({ "entity": PAYMENTS, "top": 1 })).await;
    assert_eq!(status, 200);
    let (_tmp2, store2) = sqlite_store();
    let wrong = Junction::start(dir.path(), &[("JUNCTION_STORE", &store2), ("ONEC_USER", "x"), ("ONEC_PASSWORD", "y")]);
    let (status, refused) = post_json(&wrong, "/query", json!({ "entity": PAYMENTS })).await;
    assert_eq!(status, 422, "{refused}");
    std::thread::sleep(Duration::from_millis(10));
}

#[test]
fn onec_options_are_checked_at_their_line_and_column() {
    let dir = project(&[(
        "junction.yaml",
        "routes: []\nconnectors:\n  billing:\n    kind: onec_odata\n    base_url: http://1c.example/buh/hs/api\n    user: u\n    password: \"${ONEC_PASSWORD:-p}\"\n",
    )]);
    let (code, _, err) = junction(&["check", dir.path().to_str().expect("utf-8")], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("junction.yaml:5:15: base_url is the infobase's OData root"), "{err}");
}

#[test]
fn the_readmes_onec_connector_is_valid() {
    common::assert_readme_example_checks("connectors:\n  billing:\n    kind: onec_odata", &CREDENTIALS);
}
