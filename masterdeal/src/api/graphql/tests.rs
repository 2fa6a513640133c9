//! GraphQL end to end through `handle`: records written by mutations and read back nested,
//! store errors as codes, the depth and complexity limits, and a malformed body.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use junction_engine::cache::Cache;
use serde_json::{Value, json};

use super::handle;
use crate::api::MasterDealApi;
use crate::api::wire::Req;
use crate::store::test_db::{self, TestStore};

/// An API over a fresh SQLite store and an in-process cache; keep the `TestStore` alive as
/// long as the API.
async fn api() -> (MasterDealApi, TestStore) {
    let t = test_db::sqlite().await;
    let cache = Cache::open("memory").await.expect("an in-process cache");
    (MasterDealApi::new(crate::store::Database::engine(Some(t.store.clone())), Some(cache)), t)
}

async fn post(api: &MasterDealApi, body: impl Into<Bytes>) -> (StatusCode, Value) {
    let req = Req {
        params: HashMap::new(),
        query: HashMap::new(),
        headers: HeaderMap::new(),
        body: body.into(),
        request_id: Arc::from("test"),
        mounted_at: Arc::from("/api"),
    };
    let resp = handle(api, &req).await;
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("an in-memory body").to_bytes();
    (status, serde_json::from_slice(&bytes).expect("the answer is JSON"))
}

/// The GraphQL response to `query`, which is answered with 200 whether it fails or not.
async fn send(api: &MasterDealApi, query: &str, variables: Value) -> Value {
    let body = json!({ "query": query, "variables": variables }).to_string();
    let (status, response) = post(api, body).await;
    assert_eq!(status, StatusCode::OK, "{response}");
    response
}

/// Runs a query that must succeed; its `data`.
async fn ok(api: &MasterDealApi, query: &str, variables: Value) -> Value {
    let response = send(api, query, variables).await;
    assert!(response.get("errors").is_none(), "unexpected errors: {response}");
    response["data"].clone()
}

/// Runs a query that must fail; its first error.
async fn error(api: &MasterDealApi, query: &str, variables: Value) -> Value {
    send(api, query, variables).await["errors"][0].clone()
}

const UPSERT_DEAL: &str = r#"mutation($crm: String!) {
  upsertDeal(input: {
    externalId: $crm, name: "Spring launch", owner: "anna", budget: "1000000.00", currency: "RUB",
    status: "draft", periodFrom: "2025-03-01", periodTo: "2025-05-31",
    advertiser: { name: "Sberbank", inn: "7707083893", kpp: "773601001" }
  }) { id version status }
}"#;

async fn deal(api: &MasterDealApi, crm: &str) -> String {
    let data = ok(api, UPSERT_DEAL, json!({ "crm": crm })).await;
    data["upsertDeal"]["id"].as_str().expect("an id").to_owned()
}

const ADD_PLAN: &str = r#"mutation($deal: ID!) {
  addMediaPlan(dealId: $deal, input: { lines: [
    { channel: "search", platform: "yandex_direct", format: "text", flightFrom: "2025-03-01",
      flightTo: "2025-03-31", budget: "300000.10", impressions: 100000, cpm: "150.5" },
    { channel: "video", platform: "vk", format: "preroll", flightFrom: "2025-04-01",
      flightTo: "2025-04-30", budget: "200000.20" }
  ]}) { id version total lines { id } }
}"#;

const TRANSITION_PLAN: &str = r#"mutation($id: ID!, $to: String!, $v: Int!) {
  transitionMediaPlan(id: $id, to: $to, expectedVersion: $v) { status version }
}"#;

const ATTACH_PROPOSAL: &str = r#"mutation($plan: ID!) {
  attachProposal(mediaPlanId: $plan, input: {
    bodyMarkdown: "**Offer**", bodyHtml: "<b>Offer</b>", generatedBy: "manual:anna"
  }) { id }
}"#;

const UPSERT_CONTRACT: &str = r#"mutation($deal: ID!) {
  upsertContract(dealId: $deal, input: {
    number: "C-1", date: "2025-02-20", amount: "500000.30", currency: "RUB", billingIds: [{ system: "1c", id: "42" }]
  }) { id status }
}"#;

const UPSERT_CAMPAIGN: &str = r#"mutation($line: ID!) {
  upsertCampaign(input: {
    mediaPlanLineId: $line, platform: "yandex_direct", platformCampaignId: "YD-1", name: "Search",
    flightFrom: "2025-03-01", flightTo: "2025-03-31", budget: "300000.10"
  }) { id }
}"#;

const RECORD_STATS: &str = r#"mutation($c: ID!) {
  recordCampaignStats(campaignId: $c, days: [
    { day: "2025-03-01", impressions: 1000, clicks: 10, spend: "1500.05" },
    { day: "2025-03-02", impressions: 2000, clicks: 20, spend: "2500.10", conversions: 2 }
  ]) { spend }
}"#;

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("{v} is not a string")).to_owned()
}

/// A deal with an approved plan of two lines, a proposal, a contract and a campaign with
/// stats, all written through mutations; returns the deal's id.
async fn a_full_deal(api: &MasterDealApi) -> String {
    let deal = deal(api, "crm:D-1").await;
    let plan = ok(api, ADD_PLAN, json!({ "deal": deal })).await["addMediaPlan"].clone();
    assert_eq!(plan["total"], "500000.30");
    let (plan_id, line_id) = (text(&plan["id"]), text(&plan["lines"][0]["id"]));
    // Read once so the draft sits in the plan cache: the transitions must evict it.
    let cached = ok(api, "query($id: ID!) { mediaPlan(id: $id) { status } }", json!({ "id": plan_id })).await;
    assert_eq!(cached["mediaPlan"]["status"], "draft");
    ok(api, TRANSITION_PLAN, json!({ "id": plan_id, "to": "proposed", "v": 1 })).await;
    ok(api, TRANSITION_PLAN, json!({ "id": plan_id, "to": "approved", "v": 2 })).await;
    ok(api, ATTACH_PROPOSAL, json!({ "plan": plan_id })).await;
    ok(api, UPSERT_CONTRACT, json!({ "deal": deal })).await;
    let campaign = ok(api, UPSERT_CAMPAIGN, json!({ "line": line_id })).await;
    ok(api, RECORD_STATS, json!({ "c": text(&campaign["upsertCampaign"]["id"]) })).await;
    deal
}

const DEAL_TREE: &str = r#"query($id: ID!) {
  deal(id: $id) {
    id crmId externalIds { system id } advertiserInn budget currency status version
    mediaPlans { id number status total lines { position channel budget impressions cpm ctr } proposals { status } }
    proposals { generatedBy status }
    contracts { number amount status paymentStatus billingIds { system id } }
    campaigns { name spend currency stats { day impressions clicks spend conversions } }
    summary { budget spend channels { channel budget spend } }
  }
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deal_reads_back_with_everything_below_it() {
    let (api, _t) = api().await;
    let deal = a_full_deal(&api).await;
    let data = ok(&api, DEAL_TREE, json!({ "id": deal })).await;
    let d = &data["deal"];
    assert_eq!(d["crmId"], "D-1");
    assert_eq!(d["externalIds"], json!([{ "system": "crm", "id": "D-1" }]));
    assert_eq!(d["budget"], "1000000.00", "money keeps its digits");
    let plan = &d["mediaPlans"][0];
    assert_eq!(plan["status"], "approved");
    assert_eq!(
        plan["lines"][0],
        json!({
            "position": 1, "channel": "search", "budget": "300000.10", "impressions": 100000, "cpm": "150.5", "ctr": null
        })
    );
    assert_eq!(plan["proposals"], json!([{ "status": "draft" }]));
    assert_eq!(d["proposals"][0]["generatedBy"], "manual:anna");
    assert_eq!(d["contracts"][0]["amount"], "500000.30");
    assert_eq!(d["contracts"][0]["paymentStatus"], "unpaid");
    assert_eq!(d["contracts"][0]["billingIds"], json!([{ "system": "1c", "id": "42" }]));
    let campaign = &d["campaigns"][0];
    assert_eq!(campaign["spend"], "4000.15");
    assert_eq!(
        campaign["stats"][1],
        json!({
            "day": "2025-03-02", "impressions": 2000, "clicks": 20, "spend": "2500.10", "conversions": 2
        })
    );
    assert_eq!(d["summary"]["budget"], "500000.30");
    assert_eq!(d["summary"]["spend"], "4000.15");
    assert_eq!(d["summary"]["channels"][0], json!({ "channel": "search", "budget": "300000.10", "spend": "4000.15" }));

    let cached =
        ok(&api, "query($id: ID!) { mediaPlan(id: $id) { status version } }", json!({ "id": plan["id"] })).await;
    assert_eq!(
        cached["mediaPlan"],
        json!({ "status": "approved", "version": 3 }),
        "the transitions evicted the cached draft"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_approved_plan_the_summary_is_null_and_unknown_ids_are_null() {
    let (api, _t) = api().await;
    let deal = deal(&api, "crm:D-2").await;
    let data = ok(&api, "query($id: ID!) { deal(id: $id) { summary { budget } } }", json!({ "id": deal })).await;
    assert_eq!(data["deal"]["summary"], Value::Null);
    let missing = ok(&api, r#"{ deal(id: "0192f000-0000-7000-8000-000000000000") { id } }"#, json!({})).await;
    assert_eq!(missing["deal"], Value::Null);
    let bad = error(&api, r#"{ deal(id: "nope") { id } }"#, json!({})).await;
    assert_eq!(bad["extensions"]["code"], "INVALID_INPUT", "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deals_page_by_cursor() {
    let (api, _t) = api().await;
    for crm in ["crm:P-1", "crm:P-2", "crm:P-3"] {
        deal(&api, crm).await;
    }
    let page =
        r#"query($after: String) { deals(status: "draft", first: 2, after: $after) { items { crmId } nextCursor } }"#;
    let first = ok(&api, page, json!({})).await;
    assert_eq!(first["deals"]["items"], json!([{ "crmId": "P-1" }, { "crmId": "P-2" }]));
    let cursor = first["deals"]["nextCursor"].clone();
    assert!(cursor.is_string(), "a full page has a next cursor");
    let second = ok(&api, page, json!({ "after": cursor })).await;
    assert_eq!(second["deals"], json!({ "items": [{ "crmId": "P-3" }], "nextCursor": null }));
}

const TRANSITION_DEAL: &str = r#"mutation($id: ID!, $to: String!, $v: Int!) {
  transitionDeal(id: $id, to: $to, expectedVersion: $v) { status version }
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_transition_is_a_conflict() {
    let (api, _t) = api().await;
    let deal = deal(&api, "crm:D-3").await;
    let moved = ok(&api, TRANSITION_DEAL, json!({ "id": deal, "to": "planning", "v": 1 })).await;
    assert_eq!(moved["transitionDeal"], json!({ "status": "planning", "version": 2 }));
    let e = error(&api, TRANSITION_DEAL, json!({ "id": deal, "to": "proposal_sent", "v": 1 })).await;
    assert_eq!(e["extensions"]["code"], "CONFLICT", "{e}");
    assert_eq!(e["extensions"]["currentVersion"], 2);
    assert!(e["message"].as_str().is_some_and(|m| m.contains("reload it and retry")), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_transition_names_the_allowed_ones() {
    let (api, _t) = api().await;
    let deal = deal(&api, "crm:D-4").await;
    let e = error(&api, TRANSITION_DEAL, json!({ "id": deal, "to": "signed", "v": 1 })).await;
    assert_eq!(e["extensions"]["code"], "FORBIDDEN_TRANSITION", "{e}");
    assert_eq!(e["extensions"]["allowed"], json!(["planning", "cancelled"]));
    let unknown = error(&api, TRANSITION_DEAL, json!({ "id": deal, "to": "won", "v": 1 })).await;
    assert_eq!(unknown["extensions"]["code"], "INVALID_INPUT", "{unknown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_too_deep_query_is_refused() {
    let (api, _t) = api().await;
    // Introspection types nest without end: the one way to build a deep query here.
    let deep = "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } }";
    let e = error(&api, deep, json!({})).await;
    assert!(e["message"].as_str().is_some_and(|m| m.contains("nested too deep")), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_too_complex_query_is_refused() {
    let (api, _t) = api().await;
    let fields: String =
        (0..600).map(|i| format!(r#"d{i}: deal(id: "0192f000-0000-7000-8000-000000000000") {{ id }} "#)).collect();
    let e = error(&api, &format!("{{ {fields} }}"), json!({})).await;
    assert!(e["message"].as_str().is_some_and(|m| m.contains("too complex")), "{e}");
}

/// Lists count by their size: a page of deals each with its plans and their proposals is
/// thousands of queries, refused before any runs; a small page of the same is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_lists_count_by_their_size() {
    let (api, _t) = api().await;
    let wide = "{ deals(first: 1000) { items { mediaPlans { proposals { id } } } } }";
    let e = error(&api, wide, json!({})).await;
    assert!(e["message"].as_str().is_some_and(|m| m.contains("too complex")), "{e}");
    ok(&api, "{ deals(first: 2) { items { mediaPlans { proposals { id } } } } }", json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_json_is_a_400_problem() {
    let (api, _t) = api().await;
    let (status, body) = post(&api, "query { deals { items { id } } }").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("not a GraphQL request")), "{body}");
}
