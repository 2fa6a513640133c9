//! MasterDeal's REST and GraphQL APIs through the running binary, on SQLite and Postgres:
//! auth, ETag/If-Match, stale writes and forbidden moves (409), the whole deal → plan →
//! proposal → contract → campaign → stats chain, cursor paging, and the OpenAPI document.

mod common;

use common::{Junction, PgDatabase, deal_input, junction, project, sqlite_store};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const KEY: &str = "partner-key-123";

fn api_project() -> tempfile::TempDir {
    let hash = hex::encode(Sha256::digest(KEY));
    project(&[
        (
            "junction.yaml",
            &format!(
                "routes: [routes/]\n\
                 auth:\n  partners:\n    api_key: {{ keys: [{{ id: acme, sha256: \"{hash}\" }}] }}\n\
                 connectors:\n  masterdeal:\n    kind: masterdeal\n    api: {{ path: /api, auth: partners }}\n"
            ),
        ),
        ("routes/.keep", ""),
    ])
}

struct Api {
    j: Junction,
    c: Client,
}

impl Api {
    fn req(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.c.request(method, self.j.url(&format!("/api{path}"))).header("x-api-key", KEY)
    }

    async fn call(&self, rb: RequestBuilder) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let resp = rb.send().await.expect("the API answers");
        let (status, headers) = (resp.status(), resp.headers().clone());
        let text = resp.text().await.expect("a body");
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, headers, body)
    }

    async fn post(
        &self,
        path: &str,
        body: Value,
        if_match: Option<i64>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut rb = self.req(reqwest::Method::POST, path).json(&body);
        if let Some(v) = if_match {
            rb = rb.header("if-match", format!("\"{v}\""));
        }
        self.call(rb).await
    }

    async fn get(&self, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.call(self.req(reqwest::Method::GET, path)).await
    }
}

fn problem_type(body: &Value) -> &str {
    body["type"].as_str().unwrap_or_default().trim_start_matches("https://junction.dev/problems/")
}

async fn whole_chain(store: &str) {
    let dir = api_project();
    let api = Api { j: Junction::start(dir.path(), &[("JUNCTION_STORE", store)]), c: Client::new() };

    // Same auth as any endpoint: no key, no data.
    let resp = api.c.get(api.j.url("/api/deals")).send().await.expect("send");
    assert_eq!(resp.status(), 401, "{}", api.j.logs());

    // Create: 201, Location and ETag.
    let (status, headers, deal) = api.post("/deals", deal_input("D-1"), None).await;
    assert_eq!(status, 201, "{deal}\n{}", api.j.logs());
    let id = deal["id"].as_str().expect("an id").to_owned();
    assert_eq!(headers["location"], format!("/api/deals/{id}").as_str());
    assert_eq!(headers["etag"], "\"1\"");
    assert_eq!(deal["budget"], "1000000.00", "money stays an exact decimal string");

    // Read, and a conditional read.
    let (status, headers, got) = api.get(&format!("/deals/{id}")).await;
    assert_eq!((status.as_u16(), got["crm_id"].as_str()), (200, Some("D-1")));
    assert_eq!(headers["etag"], "\"1\"");
    let (status, _, _) =
        api.call(api.req(reqwest::Method::GET, &format!("/deals/{id}")).header("if-none-match", "\"1\"")).await;
    assert_eq!(status, 304);

    // An existing deal is never overwritten blind: a second POST needs the version it read,
    // and an update cannot move the status (that is what transitions are for).
    let (status, _, p) = api.post("/deals", deal_input("D-1"), None).await;
    assert_eq!((status.as_u16(), problem_type(&p)), (428, "precondition-required"), "{p}");
    let mut renamed = deal_input("D-1");
    renamed["name"] = json!("Spring campaign, renamed");
    let (status, headers, updated) = api.post("/deals", renamed.clone(), Some(1)).await;
    assert_eq!((status.as_u16(), updated["title"].as_str()), (200, Some("Spring campaign, renamed")), "{updated}");
    assert_eq!(headers["etag"], "\"2\"");
    renamed["status"] = json!("signed");
    let put = api.req(reqwest::Method::PUT, &format!("/deals/{id}")).header("if-match", "\"2\"").json(&renamed);
    let (status, _, p) = api.call(put).await;
    assert_eq!((status.as_u16(), problem_type(&p)), (422, "invalid-input"), "{p}");
    renamed.as_object_mut().map(|r| r.remove("status"));
    let put = api.req(reqwest::Method::PUT, &format!("/deals/{id}")).header("if-match", "\"2\"").json(&renamed);
    let (status, _, back) = api.call(put).await;
    assert_eq!(
        (status.as_u16(), back["status"].as_str(), back["version"].as_i64()),
        (200, Some("draft"), Some(3)),
        "{back}"
    );

    // A transition needs the version; with it, it moves; a stale one is 409.
    let path = format!("/deals/{id}/transitions");
    let (status, _, p) = api.post(&path, json!({ "to": "planning" }), None).await;
    assert_eq!((status.as_u16(), problem_type(&p)), (428, "precondition-required"), "{p}");
    let (status, headers, moved) = api.post(&path, json!({ "to": "planning" }), Some(3)).await;
    assert_eq!((status.as_u16(), moved["status"].as_str()), (200, Some("planning")), "{moved}");
    assert_eq!(headers["etag"], "\"4\"");
    let (status, _, p) = api.post(&path, json!({ "to": "proposal_sent" }), Some(3)).await;
    assert_eq!((status.as_u16(), problem_type(&p)), (409, "stale-version"), "{p}");
    assert_eq!(p["current_version"], 4, "{p}");
    let (status, _, p) = api.post(&path, json!({ "to": "completed" }), Some(4)).await;
    assert_eq!((status.as_u16(), problem_type(&p)), (409, "forbidden-transition"), "{p}");
    assert_eq!(p["allowed"], json!(["proposal_sent", "cancelled"]), "{p}");

    // Two concurrent writers of one version: exactly one wins, the other gets 409.
    let (a, b) = tokio::join!(
        api.post(&path, json!({ "to": "proposal_sent" }), Some(4)),
        api.post(&path, json!({ "to": "cancelled" }), Some(4)),
    );
    let mut statuses = [a.0.as_u16(), b.0.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{} / {}", a.2, b.2);
    let winner = if a.0 == 200 { a.2 } else { b.2 };
    assert_eq!(winner["version"], 5);

    // A media plan over the budget cannot be approved; one within it can.
    let plan_input = |budget: &str| {
        json!({ "source": "llm", "model": "gpt-4o", "prompt_template_version": "v3", "lines": [
            { "channel": "search", "platform": "yandex_direct", "format": "text", "flight_from": "2026-03-01",
              "flight_to": "2026-03-31", "budget": budget, "clicks": 12000 },
            { "channel": "video", "platform": "vk", "format": "preroll", "flight_from": "2026-04-01",
              "flight_to": "2026-04-30", "budget": "250000.50", "impressions": 900000 },
        ]})
    };
    let other = api.post("/deals", deal_input("D-2"), None).await.2;
    let other_id = other["id"].as_str().expect("an id").to_owned();
    let (status, headers, big) = api.post(&format!("/deals/{other_id}/media-plans"), plan_input("900000"), None).await;
    assert_eq!(status, 201, "{big}");
    let big_id = big["id"].as_str().expect("an id");
    assert_eq!(headers["location"], format!("/api/media-plans/{big_id}").as_str());
    api.post(&format!("/media-plans/{big_id}/transitions"), json!({ "to": "proposed" }), Some(1)).await;
    let (status, _, p) =
        api.post(&format!("/media-plans/{big_id}/transitions"), json!({ "to": "approved" }), Some(2)).await;
    assert_eq!((status.as_u16(), problem_type(&p)), (422, "rule-violation"), "{p}");

    let (status, _, plan) = api.post(&format!("/deals/{other_id}/media-plans"), plan_input("500000"), None).await;
    assert_eq!(
        (status.as_u16(), plan["number"].as_i64(), plan["total"].as_str()),
        (201, Some(2), Some("750000.50")),
        "{plan}"
    );
    let plan_id = plan["id"].as_str().expect("an id").to_owned();
    // Read through the cache, then changed: the next read shows the change.
    assert_eq!(api.get(&format!("/media-plans/{plan_id}")).await.2["status"], "draft");
    let plan_path = format!("/media-plans/{plan_id}/transitions");
    assert_eq!(api.post(&plan_path, json!({ "to": "proposed" }), Some(1)).await.0, 200);
    assert_eq!(api.get(&format!("/media-plans/{plan_id}")).await.2["status"], "proposed", "the cache was invalidated");
    let (status, _, approved) = api.post(&plan_path, json!({ "to": "approved" }), Some(2)).await;
    assert_eq!((status.as_u16(), approved["status"].as_str()), (200, Some("approved")), "{approved}");

    // The commercial proposal for that plan.
    let (status, _, proposal) = api
        .post(
            &format!("/media-plans/{plan_id}/proposals"),
            json!({ "body_markdown": "# КП", "body_html": "<h1>КП</h1>", "generated_by": "llm:gpt-4o" }),
            None,
        )
        .await;
    assert_eq!((status.as_u16(), proposal["status"].as_str()), (201, Some("draft")), "{proposal}");

    // A contract must match the approved plan's total.
    let contract = |amount: &str| {
        json!({ "number": "C-2026-001", "date": "2026-02-20", "amount": amount, "currency": "RUB",
                "payment_status": "unpaid", "billing_ids": { "erp": "E-1" } })
    };
    let (status, _, p) = api.post(&format!("/deals/{other_id}/contracts"), contract("1"), None).await;
    assert_eq!((status.as_u16(), problem_type(&p)), (422, "rule-violation"), "{p}");
    let (status, _, signed) = api.post(&format!("/deals/{other_id}/contracts"), contract("750000.50"), None).await;
    assert_eq!(status, 201, "{signed}");
    let contract_id = signed["id"].as_str().expect("an id").to_owned();
    let (status, _, p) = api.post(&format!("/deals/{other_id}/contracts"), contract("750000.50"), None).await;
    assert_eq!((status.as_u16(), problem_type(&p)), (428, "precondition-required"), "an existing number: {p}");
    let path = format!("/contracts/{contract_id}/transitions");
    assert_eq!(api.post(&path, json!({ "to": "sent" }), Some(1)).await.0, 200);
    let (status, _, signed) = api.post(&path, json!({ "to": "signed" }), Some(2)).await;
    assert_eq!((status.as_u16(), signed["status"].as_str()), (200, Some("signed")), "{signed}");

    // A campaign on the search line, its stats, and the deal's summary.
    let line_id = approved["lines"][0]["id"].as_str().expect("a line id").to_owned();
    let (status, _, campaign) = api
        .post(
            "/campaigns",
            json!({ "media_plan_line_id": line_id, "platform": "yandex_direct", "platform_campaign_id": "YD-9",
                    "name": "Spring search", "status": "active", "flight_from": "2026-03-01",
                    "flight_to": "2026-03-31", "budget": "400000" }),
            None,
        )
        .await;
    assert_eq!(status, 201, "{campaign}");
    let campaign_id = campaign["id"].as_str().expect("an id").to_owned();
    let mut again = campaign.clone();
    if let Some(c) = again.as_object_mut() {
        let keys = ["media_plan_line_id", "platform", "platform_campaign_id", "name", "status", "budget"];
        c.retain(|k, _| keys.contains(&k.as_str()));
    }
    again["flight_from"] = json!("2026-03-01");
    again["flight_to"] = json!("2026-03-31");
    let (status, _, p) = api.post("/campaigns", again, None).await;
    assert_eq!((status.as_u16(), problem_type(&p)), (428, "precondition-required"), "an existing campaign: {p}");
    // The deal's budget cannot drop below its approved plan.
    let mut poorer = deal_input("D-2");
    poorer["budget"] = json!("1");
    let put = api.req(reqwest::Method::PUT, &format!("/deals/{other_id}")).header("if-match", "\"1\"").json(&poorer);
    let (status, _, p) = api.call(put).await;
    assert_eq!((status.as_u16(), problem_type(&p)), (422, "rule-violation"), "{p}");
    let days = json!({ "days": [
        { "day": "2026-03-01", "impressions": 1000, "clicks": 50, "spend": "1200.10", "conversions": 2 },
        { "day": "2026-03-02", "impressions": 1500, "clicks": 70, "spend": "1300.20", "conversions": 3 },
    ]});
    let (status, _, with_stats) = api.post(&format!("/campaigns/{campaign_id}/stats"), days, None).await;
    assert_eq!((status.as_u16(), with_stats["spend"].as_str()), (200, Some("2500.30")), "{with_stats}");
    let (status, _, summary) = api.get(&format!("/deals/{other_id}/summary")).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["spend"], "2500.30", "{summary}");
    assert_eq!(
        summary["channels"][0],
        json!({ "channel": "search", "budget": "500000", "spend": "2500.30" }),
        "{summary}"
    );

    // Lists of a deal's children.
    for (path, n) in [("media-plans", 2), ("proposals", 1), ("contracts", 1), ("campaigns", 1)] {
        let (status, _, list) = api.get(&format!("/deals/{other_id}/{path}")).await;
        assert_eq!((status.as_u16(), list["items"].as_array().map(Vec::len)), (200, Some(n)), "{path}: {list}");
    }

    // A deal's lists filter by status and page by cursor too.
    let plans = format!("/deals/{other_id}/media-plans");
    let (_, _, approved_only) = api.get(&format!("{plans}?status=approved")).await;
    let numbers: Vec<i64> =
        approved_only["items"].as_array().expect("items").iter().filter_map(|p| p["number"].as_i64()).collect();
    assert_eq!(numbers, [2], "{approved_only}");
    let (_, _, page1) = api.get(&format!("{plans}?limit=1")).await;
    assert_eq!(page1["items"][0]["number"], 1, "{page1}");
    let next = page1["next_cursor"].as_str().expect("a next page");
    let (_, _, page2) = api.get(&format!("{plans}?limit=1&cursor={next}")).await;
    assert_eq!(page2["items"][0]["number"], 2, "{page2}");
    let next = page2["next_cursor"].as_str().expect("a full page has a next cursor");
    let (_, _, page3) = api.get(&format!("{plans}?limit=1&cursor={next}")).await;
    assert_eq!((page3["items"].as_array().map(Vec::len), page3["next_cursor"].is_null()), (Some(0), true), "{page3}");
    let (status, _, p) = api.get(&format!("{plans}?status=won")).await;
    assert_eq!((status.as_u16(), problem_type(&p)), (400, "bad-request"), "{p}");
    let (status, _, p) = api.get("/deals?status=won").await;
    assert_eq!((status.as_u16(), problem_type(&p)), (400, "bad-request"), "{p}");

    // Cursor paging over three deals, two per page.
    api.post("/deals", deal_input("D-3"), None).await;
    let (_, _, first) = api.get("/deals?limit=2").await;
    assert_eq!(first["items"].as_array().map(Vec::len), Some(2), "{first}");
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (_, _, second) = api.get(&format!("/deals?limit=2&cursor={cursor}")).await;
    let crm_ids: Vec<&str> =
        second["items"].as_array().expect("items").iter().filter_map(|d| d["crm_id"].as_str()).collect();
    assert_eq!(crm_ids, ["D-3"], "{second}");
    assert_eq!(second["next_cursor"], Value::Null);
    let (status, _, p) = api.get("/deals?cursor=nonsense").await;
    assert_eq!((status.as_u16(), problem_type(&p)), (400, "bad-request"), "{p}");

    // Deletes need the version, and only records nothing refers to can go.
    let d3 = second["items"][0]["id"].as_str().expect("an id").to_owned();
    let delete = |path: String, version: Option<i64>| {
        let rb = api.req(reqwest::Method::DELETE, &path);
        match version {
            Some(v) => rb.header("if-match", format!("\"{v}\"")),
            None => rb,
        }
    };
    let (status, _, p) = api.call(delete(format!("/deals/{d3}"), None)).await;
    assert_eq!((status.as_u16(), problem_type(&p)), (428, "precondition-required"), "{p}");
    let (status, _, gone) = api.call(delete(format!("/deals/{d3}"), Some(1))).await;
    assert_eq!((status.as_u16(), gone["crm_id"].as_str()), (200, Some("D-3")), "{gone}");
    assert_eq!(api.get(&format!("/deals/{d3}")).await.0, 404);
    let (status, _, p) = api.call(delete(format!("/deals/{other_id}"), Some(1))).await;
    assert_eq!((status.as_u16(), problem_type(&p)), (409, "not-deletable"), "{p}");
    let (status, _, p) = api.call(delete(format!("/media-plans/{big_id}"), Some(2))).await;
    assert_eq!((status.as_u16(), problem_type(&p)), (409, "not-deletable"), "{p}");
    assert!(p["detail"].as_str().is_some_and(|d| d.contains("it is proposed; reject it instead")), "{p}");

    // Two creates of one new external_id at once: one creates, the other is told it exists.
    let (a, b) = tokio::join!(api.post("/deals", deal_input("D-9"), None), api.post("/deals", deal_input("D-9"), None));
    let mut statuses = [a.0.as_u16(), b.0.as_u16()];
    statuses.sort_unstable();
    assert!(statuses == [201, 409] || statuses == [201, 428], "{statuses:?}: {} / {}", a.2, b.2);

    // Bad input is answered, never fatal.
    let (status, _, p) = api.call(api.req(reqwest::Method::POST, "/deals").body("{not json")).await;
    assert_eq!((status.as_u16(), problem_type(&p)), (400, "malformed-json"), "{p}");
    let (status, _, p) = api.get("/deals/not-a-uuid").await;
    assert_eq!(status, 400, "{p}");
    let (status, _, p) = api.get(&format!("/deals/{}", uuid::Uuid::now_v7())).await;
    assert_eq!((status.as_u16(), problem_type(&p)), (404, "not-found"), "{p}");
    let (status, _, _) = api.get("/nothing-here").await;
    assert_eq!(status, 404);
    let (status, _, _) = api.call(api.req(reqwest::Method::DELETE, "/deals")).await;
    assert_eq!(status, 405);

    // GraphQL at /api/graphql: same auth, and the records the REST calls wrote, nested.
    let gql = |query: &str, variables: Value| {
        api.req(reqwest::Method::POST, "/graphql").json(&json!({ "query": query, "variables": variables }))
    };
    let resp =
        api.c.post(api.j.url("/api/graphql")).json(&json!({ "query": "{ deals { items { id } } }" })).send().await;
    assert_eq!(resp.expect("send").status(), 401, "GraphQL has REST's auth");
    let tree = r#"query($id: ID!) { deal(id: $id) {
        crmId status
        mediaPlans { number status lines { channel budget } proposals { status } }
        contracts { number status amount }
        campaigns { name spend stats { day spend } }
        summary { budget spend channels { channel budget spend } }
    } }"#;
    let (status, _, data) = api.call(gql(tree, json!({ "id": other_id }))).await;
    assert_eq!(status, 200, "{data}");
    assert!(data.get("errors").is_none(), "{data}");
    let d = &data["data"]["deal"];
    assert_eq!(d["crmId"], "D-2", "{d}");
    assert_eq!(d["mediaPlans"][1]["status"], "approved", "{d}");
    assert_eq!(d["mediaPlans"][1]["proposals"], json!([{ "status": "draft" }]), "{d}");
    assert_eq!(d["contracts"][0], json!({ "number": "C-2026-001", "status": "signed", "amount": "750000.50" }), "{d}");
    assert_eq!(d["campaigns"][0]["spend"], "2500.30", "{d}");
    assert_eq!(d["campaigns"][0]["stats"].as_array().map(Vec::len), Some(2), "{d}");
    assert_eq!(d["summary"]["channels"][0], summary["channels"][0], "GraphQL and REST agree: {d}");
    let forbidden = r#"mutation($id: ID!) { transitionDeal(id: $id, to: "signed", expectedVersion: 1) { version } }"#;
    let (status, _, data) = api.call(gql(forbidden, json!({ "id": other_id }))).await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["errors"][0]["extensions"]["code"], "FORBIDDEN_TRANSITION", "{data}");
    let stale = r#"mutation($id: ID!) { transitionDeal(id: $id, to: "planning", expectedVersion: 7) { version } }"#;
    let (_, _, data) = api.call(gql(stale, json!({ "id": id }))).await;
    assert_eq!(data["errors"][0]["extensions"]["code"], "CONFLICT", "{data}");

    // GraphQL updates a deal's fields (not its status) and refuses to delete one in use.
    let update = r#"mutation($id: ID!) { updateDeal(id: $id, expectedVersion: 1, input: {
        externalId: "crm:D-2", name: "Renamed by GraphQL", owner: "boris", budget: "1000000.00", currency: "RUB",
        status: "draft", advertiser: { name: "Romashka LLC", inn: "7707083893" } }) { title owner version } }"#;
    let (_, _, data) = api.call(gql(update, json!({ "id": other_id }))).await;
    assert_eq!(
        data["data"]["updateDeal"],
        json!({ "title": "Renamed by GraphQL", "owner": "boris", "version": 2 }),
        "{data}"
    );
    let blind = update.replace("updateDeal(id: $id, expectedVersion: 1, ", "upsertDeal(");
    let (_, _, data) = api.call(gql(&blind.replace("mutation($id: ID!)", "mutation"), json!({}))).await;
    assert_eq!(data["errors"][0]["extensions"]["code"], "PRECONDITION_REQUIRED", "{data}");
    let remove = r#"mutation($id: ID!) { deleteDeal(id: $id, expectedVersion: 2) }"#;
    let (_, _, data) = api.call(gql(remove, json!({ "id": other_id }))).await;
    assert_eq!(data["errors"][0]["extensions"]["code"], "NOT_DELETABLE", "{data}");

    // The API is in the gateway's OpenAPI document, with the mount's security.
    let doc: Value = api.c.get(api.j.url("/openapi.json")).send().await.expect("send").json().await.expect("json");
    let op = &doc["paths"]["/api/deals/{id}/transitions"]["post"];
    assert_eq!(op["security"], json!([{ "partners": [] }]), "{op}");
    assert!(op["responses"]["409"].is_object() && op["responses"]["428"].is_object(), "{op}");
    assert!(doc["components"]["schemas"]["MediaPlan"].is_object());

    // Every event the chain wrote to the outbox matches its schema in schemas/masterdeal/.
    events_match_their_schemas(store).await;
}

/// The schema file of an event type: `masterdeal.media_plan.approved` → `media_plan.json`.
fn schema_of(event_type: &str) -> std::path::PathBuf {
    let file = match event_type {
        "masterdeal.campaign.stats_recorded" => "campaign_stats_recorded",
        "masterdeal.campaign.overspend" => "campaign_overspend",
        other => other.split('.').nth(1).expect("masterdeal.<aggregate>.<change>"),
    };
    common::root().join(format!("schemas/masterdeal/{file}.json"))
}

async fn events_match_their_schemas(store: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(store).await.expect("the test's store opens");
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT event_type, payload FROM masterdeal_outbox ORDER BY seq")
        .fetch_all(&pool)
        .await
        .expect("outbox");
    let types: std::collections::BTreeSet<&str> = rows.iter().map(|(t, _)| t.as_str()).collect();
    for expected in [
        "masterdeal.deal.created",
        "masterdeal.deal.status_changed",
        "masterdeal.media_plan.added",
        "masterdeal.media_plan.approved",
        "masterdeal.proposal.attached",
        "masterdeal.contract.signed",
        "masterdeal.campaign.created",
        "masterdeal.campaign.stats_recorded",
        "masterdeal.deal.deleted",
    ] {
        assert!(types.contains(expected), "no {expected} among {types:?}");
    }
    for (event_type, payload) in &rows {
        let path = schema_of(event_type);
        let schema: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("the schema exists")).expect("JSON");
        let validator = jsonschema::validator_for(&schema).expect("a valid schema");
        let payload: Value = serde_json::from_str(payload).expect("a JSON payload");
        let errors: Vec<String> =
            validator.iter_errors(&payload).map(|e| format!("{}: {e}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{event_type} breaks {}: {errors:?}\n{payload}", path.display());
    }
    pool.close().await;
}

#[tokio::test]
async fn rest_and_graphql_end_to_end_sqlite() {
    let (_tmp, store) = sqlite_store();
    whole_chain(&store).await;
}

#[tokio::test]
async fn rest_and_graphql_end_to_end_postgres() {
    let db = PgDatabase::create().await;
    whole_chain(&db.url).await;
}

/// A connector's `api:` is checked like a route, each mistake at its position.
#[test]
fn api_config_mistakes_are_reported_where_they_are() {
    let config = "routes: [routes/]\n\
             auth:\n  partners:\n    api_key: { keys: [{ id: acme, sha256: \"{hash}\" }] }\n\
             connectors:\n\
             \x20 crm:\n    kind: http\n    base_url: http://127.0.0.1:1\n    api: { path: /crm, auth: none }\n\
             \x20 md:\n    kind: masterdeal\n    api: { path: api, auth: partners }\n\
             \x20 md2:\n    kind: masterdeal\n    api: { path: /v1, auth: none }\n\
             \x20 md3:\n    kind: masterdeal\n    api: { path: /v1/deep, auth: none }\n\
             \x20 md4:\n    kind: masterdeal\n    api: { path: /v2, auth: partner }\n"
        .replace("{hash}", &hex::encode(Sha256::digest(KEY)));
    let dir = project(&[("junction.yaml", &config), ("routes/.keep", "")]);
    let (code, _, err) = junction(&["check", dir.path().to_str().expect("utf-8")], &[]);
    assert_eq!(code, 1, "{err}");
    for expected in [
        "junction.yaml:9:10: connector `crm` (kind `http`) serves no HTTP API; remove `api:`",
        "junction.yaml:12:18: an API's `path` is a fixed prefix below `/`, like `/api`",
        "junction.yaml:18:18: `/v1/deep` overlaps the API of connector `md2` at `/v1`",
        "junction.yaml:21:29: unknown auth scheme `partner` (did you mean `partners`?)",
        "4 errors found",
    ] {
        assert!(err.contains(expected), "no `{expected}` in:\n{err}");
    }
}

/// The gateway's layers apply to the API as to a route: the body limit and the rate limit.
#[tokio::test]
async fn the_api_has_the_gateways_body_and_rate_limits() {
    let dir = project(&[
        (
            "junction.yaml",
            "routes: [routes/]\nconnectors:\n  masterdeal:\n    kind: masterdeal\n    \
             api: { path: /api, auth: none, max_body: 1KiB, rate_limit: { per_second: 0.01, burst: 3 } }\n",
        ),
        ("routes/.keep", ""),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let c = Client::new();
    let big = json!({ "external_id": "crm:X", "name": "x".repeat(2048) });
    let resp = c.post(j.url("/api/deals")).json(&big).send().await.expect("send");
    assert_eq!(resp.status(), 413, "{}", j.logs());
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(c.get(j.url("/api/deals")).send().await.expect("send").status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429], "the 413 took the first token of the burst of 3");
}

/// A route under the API's path serves its own method there; the API serves the others.
#[tokio::test]
async fn routes_win_their_methods_and_the_api_serves_the_rest() {
    let dir = project(&[
        (
            "junction.yaml",
            "routes: [routes/]\nconnectors:\n  masterdeal:\n    kind: masterdeal\n    api: { path: /api, auth: none }\n",
        ),
        (
            "routes/echo.yaml",
            "route: echo\nfrom:\n  http: { method: POST, path: /api/deals, auth: none }\nsteps:\n  - set: { body: { by: '\"route\"' } }\n",
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let c = Client::new();
    let by_route: Value =
        c.post(j.url("/api/deals")).json(&json!({})).send().await.expect("send").json().await.expect("json");
    assert_eq!(by_route, json!({ "by": "route" }), "{}", j.logs());
    let resp = c.get(j.url("/api/deals")).send().await.expect("send");
    assert_eq!(resp.status(), 200, "the API's GET /deals, not the route's 405");
    let page: Value = resp.json().await.expect("json");
    assert_eq!(page["items"], json!([]), "{page}");
    // The document says the same: the route's POST, the API's GET.
    let doc: Value = c.get(j.url("/openapi.json")).send().await.expect("send").json().await.expect("json");
    assert_eq!(doc["paths"]["/api/deals"]["post"]["operationId"], "echo", "{}", doc["paths"]["/api/deals"]);
    assert_eq!(doc["paths"]["/api/deals"]["get"]["operationId"], "masterdeal_list_deals");
}

/// Browsers may call the API from the origins its `cors:` lists: preflights name every
/// method and the conditional-request headers; answers expose the ETag.
#[tokio::test]
async fn the_api_answers_browsers_from_its_cors_origins() {
    let hash = hex::encode(Sha256::digest(KEY));
    let config = format!(
        "routes: [routes/]\nauth:\n  partners:\n    api_key: {{ keys: [{{ id: acme, sha256: \"{hash}\" }}] }}\n\
         connectors:\n  masterdeal:\n    kind: masterdeal\n    \
         api: {{ path: /api, auth: partners, cors: {{ origins: [\"https://bi.example\"] }} }}\n"
    );
    let dir = project(&[("junction.yaml", &config), ("routes/.keep", "")]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let c = Client::new();
    let preflight = |origin: &str| {
        c.request(reqwest::Method::OPTIONS, j.url("/api/deals/x"))
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "if-match, x-api-key")
    };
    let resp = preflight("https://bi.example").send().await.expect("send");
    assert_eq!(resp.status(), 204, "{}", j.logs());
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(header("access-control-allow-origin"), "https://bi.example");
    assert_eq!(header("access-control-allow-methods"), "GET, POST, PUT, DELETE");
    let allowed = header("access-control-allow-headers");
    assert!(
        ["if-match", "if-none-match", "x-api-key", "content-type"].iter().all(|h| allowed.contains(h)),
        "{allowed}"
    );
    let resp = preflight("https://evil.example").send().await.expect("send");
    assert_eq!(resp.status(), 403);

    let resp = c
        .get(j.url("/api/deals"))
        .header("origin", "https://bi.example")
        .header("x-api-key", KEY)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], "https://bi.example");
    let exposed = resp.headers()["access-control-expose-headers"].to_str().expect("ascii").to_owned();
    assert!(exposed.contains("etag") && exposed.contains("location"), "{exposed}");
}
