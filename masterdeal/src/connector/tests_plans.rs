//! The plan-to-campaign ops through the endpoint against both store backends.

use junction_engine::store::Store;
use serde_json::{Value, json};

use super::tests::{call, master_deal};
use crate::store::test_db::on_both_backends;

on_both_backends!(
    add_media_plan_numbers_and_totals_in_the_deals_currency,
    approve_media_plan_needs_a_proposed_plan_within_budget,
    attach_proposal_takes_the_plans_deal,
    upsert_contract_creates_then_updates_and_checks_the_amount,
    upsert_campaign_checks_its_line,
    record_campaign_stats_rolls_up_spend,
    deal_summary_sums_per_channel,
    transitions_of_plans_proposals_and_contracts,
    update_deal_replaces_fields_at_the_expected_version,
);

#[test]
fn new_ops_build_without_a_store() {
    for op in [
        "add_media_plan",
        "approve_media_plan",
        "attach_proposal",
        "upsert_contract",
        "upsert_campaign",
        "record_campaign_stats",
        "deal_summary",
        "update_deal",
        "transition_media_plan",
        "transition_proposal",
        "transition_contract",
        "check_media_plan",
        "finish_generation",
        "fail_generation",
    ] {
        super::tests::endpoint(None, op).unwrap_or_else(|e| panic!("{op}: {e}"));
    }
}

/// A deal with a 1000 RUB budget; returns its id.
async fn deal(store: &Store, crm_id: &str) -> Value {
    let mut deal = master_deal(crm_id);
    deal["budget"] = json!("1000");
    let created = call(store, "upsert_deal_by_external_id", deal).await.expect("create deal");
    created["id"].clone()
}

fn plan_input(deal_id: &Value, budgets: &[Value]) -> Value {
    let channels = ["video", "display"];
    let lines: Vec<_> = budgets
        .iter()
        .zip(channels.iter().cycle())
        .map(|(budget, channel)| {
            json!({
                "channel": channel, "platform": "yandex_direct", "format": "banner",
                "flight_from": "2025-03-01", "flight_to": "2025-03-31", "budget": budget, "cpm": 150.5,
            })
        })
        .collect();
    json!({ "deal_id": deal_id, "lines": lines })
}

/// A plan of the deal, proposed through the store and approved through the op.
async fn approved_plan(store: &Store, deal_id: &Value, budgets: &[Value]) -> Value {
    let plan = call(store, "add_media_plan", plan_input(deal_id, budgets)).await.expect("add plan");
    propose(store, &plan).await;
    call(store, "approve_media_plan", json!({ "id": plan["id"], "expected_version": 2 })).await.expect("approve")
}

async fn propose(store: &Store, plan: &Value) {
    let input = json!({ "id": plan["id"], "to": "proposed", "expected_version": 1 });
    call(store, "transition_media_plan", input).await.expect("propose");
}

fn campaign_input(line_id: &Value, platform_id: &str, budget: &str) -> Value {
    json!({
        "media_plan_line_id": line_id, "platform": "yandex_direct", "platform_campaign_id": platform_id,
        "name": "Spring", "status": "active", "flight_from": "2025-03-05", "flight_to": "2025-03-25",
        "budget": budget,
    })
}

async fn add_media_plan_numbers_and_totals_in_the_deals_currency(store: Store) {
    let deal_id = deal(&store, "P-1").await;
    let first = call(&store, "add_media_plan", plan_input(&deal_id, &[json!(0.1), json!("0.2")])).await.expect("add");
    assert_eq!((first["number"].clone(), first["total"].clone()), (json!(1), json!("0.3")));
    assert_eq!((first["currency"].clone(), first["status"].clone()), (json!("RUB"), json!("draft")));
    assert_eq!(first["lines"][0]["cpm"], "150.5");
    let second = call(&store, "add_media_plan", plan_input(&deal_id, &[json!(1)])).await.expect("add");
    assert_eq!(second["number"], 2);
    let mut usd = plan_input(&deal_id, &[json!(1)]);
    usd["currency"] = json!("USD");
    let err = call(&store, "add_media_plan", usd).await.expect_err("USD lines in a RUB deal");
    assert!(err.contains("USD"), "{err}");
}

async fn approve_media_plan_needs_a_proposed_plan_within_budget(store: Store) {
    let deal_id = deal(&store, "P-2").await;
    let plan = call(&store, "add_media_plan", plan_input(&deal_id, &[json!(1500)])).await.expect("add");
    let approve = json!({ "id": plan["id"], "expected_version": 1 });
    let err = call(&store, "approve_media_plan", approve).await.expect_err("a draft is proposed first");
    assert!(err.contains("it can go to: proposed"), "{err}");
    propose(&store, &plan).await;
    let err = call(&store, "approve_media_plan", json!({ "id": plan["id"], "expected_version": 2 }))
        .await
        .expect_err("over budget");
    assert!(err.contains("over the deal budget"), "{err}");
    let ok = approved_plan(&store, &deal_id, &[json!(1000)]).await;
    assert_eq!((ok["status"].clone(), ok["version"].clone()), (json!("approved"), json!(3)));
}

async fn attach_proposal_takes_the_plans_deal(store: Store) {
    let deal_id = deal(&store, "P-3").await;
    let plan = call(&store, "add_media_plan", plan_input(&deal_id, &[json!(10)])).await.expect("add");
    let input = json!({
        "media_plan_id": plan["id"], "body_markdown": "# КП", "body_html": "<h1>КП</h1>",
        "generated_by": "llm:gpt-4o", "prompt_template_version": "kp-v1",
    });
    let kp = call(&store, "attach_proposal", input).await.expect("attach");
    assert_eq!((kp["deal_id"].clone(), kp["status"].clone()), (deal_id, json!("draft")));
}

async fn upsert_contract_creates_then_updates_and_checks_the_amount(store: Store) {
    let deal_id = deal(&store, "P-4").await;
    let mut input = json!({
        "deal_id": deal_id, "number": "C-1", "date": "2025-02-20", "amount": 1000, "currency": "RUB",
        "billing_ids": { "1c": "17" },
    });
    let err = call(&store, "upsert_contract", input.clone()).await.expect_err("no approved plan");
    assert!(err.contains("no approved media plan"), "{err}");
    approved_plan(&store, &deal_id, &[json!(600), json!(400)]).await;
    let created = call(&store, "upsert_contract", input.clone()).await.expect("create");
    assert_eq!((created["created"].clone(), created["payment_status"].clone()), (json!(true), json!("unpaid")));
    input["amount"] = json!("900");
    let err = call(&store, "upsert_contract", input.clone()).await.expect_err("mismatch");
    assert!(err.contains("override reason"), "{err}");
    input["amount_override_reason"] = json!("discount");
    input["expected_version"] = json!(1);
    let updated = call(&store, "upsert_contract", input).await.expect("update");
    assert_eq!((updated["created"].clone(), updated["version"].clone()), (json!(false), json!(2)));
}

async fn upsert_campaign_checks_its_line(store: Store) {
    let deal_id = deal(&store, "P-5").await;
    let plan = approved_plan(&store, &deal_id, &[json!(500)]).await;
    let line = &plan["lines"][0]["id"];
    let err = call(&store, "upsert_campaign", campaign_input(line, "yd-1", "500.01")).await.expect_err("over");
    assert!(err.contains("over its plan line budget"), "{err}");
    let c = call(&store, "upsert_campaign", campaign_input(line, "yd-1", "500")).await.expect("create");
    assert_eq!(
        (c["created"].clone(), c["currency"].clone(), c["spend"].clone()),
        (json!(true), json!("RUB"), json!("0"))
    );
    let again = call(&store, "upsert_campaign", campaign_input(line, "yd-1", "100")).await.expect("update");
    assert_eq!((again["id"].clone(), again["version"].clone()), (c["id"].clone(), json!(2)));
}

async fn record_campaign_stats_rolls_up_spend(store: Store) {
    let deal_id = deal(&store, "P-6").await;
    let plan = approved_plan(&store, &deal_id, &[json!(500)]).await;
    let c = call(&store, "upsert_campaign", campaign_input(&plan["lines"][0]["id"], "yd-1", "500")).await.expect("c");
    let days =
        json!([{ "day": "2025-03-05", "spend": 0.1, "impressions": 100 }, { "day": "2025-03-06", "spend": "0.2" }]);
    let row =
        call(&store, "record_campaign_stats", json!({ "campaign_id": c["id"], "days": days })).await.expect("stats");
    assert_eq!((row["spend"].clone(), row["stats"][0]["impressions"].clone()), (json!("0.3"), json!(100)));
    let again = json!({ "campaign_id": c["id"], "days": [{ "day": "2025-03-05", "spend": "1" }] });
    let row = call(&store, "record_campaign_stats", again).await.expect("replace a day");
    assert_eq!(row["spend"], "1.2");
}

async fn deal_summary_sums_per_channel(store: Store) {
    let deal_id = deal(&store, "P-7").await;
    let err = call(&store, "deal_summary", json!({ "deal_id": deal_id })).await.expect_err("no approved plan");
    assert!(err.contains("does not exist"), "{err}");
    let plan = approved_plan(&store, &deal_id, &[json!(600), json!(400)]).await;
    let c = call(&store, "upsert_campaign", campaign_input(&plan["lines"][1]["id"], "yd-1", "400")).await.expect("c");
    let days = json!([{ "day": "2025-03-05", "spend": "25.5" }]);
    call(&store, "record_campaign_stats", json!({ "campaign_id": c["id"], "days": days })).await.expect("stats");
    let summary = call(&store, "deal_summary", json!({ "deal_id": deal_id })).await.expect("summary");
    assert_eq!(
        summary["channels"],
        json!([
            { "channel": "video", "budget": "600", "spend": "0" },
            { "channel": "display", "budget": "400", "spend": "25.5" },
        ])
    );
    assert_eq!((summary["budget"].clone(), summary["spend"].clone()), (json!("1000"), json!("25.5")));
}

async fn transitions_of_plans_proposals_and_contracts(store: Store) {
    let deal_id = deal(&store, "P-8").await;
    let plan = approved_plan(&store, &deal_id, &[json!(1000)]).await;
    let err = call(&store, "transition_media_plan", json!({ "id": plan["id"], "to": "draft", "expected_version": 3 }))
        .await
        .expect_err("approved is final");
    assert!(err.contains("is final"), "{err}");
    let input = json!({ "media_plan_id": plan["id"], "body_markdown": "md", "body_html": "html", "generated_by": "manual:alice" });
    let kp = call(&store, "attach_proposal", input).await.expect("attach");
    let sent = call(&store, "transition_proposal", json!({ "id": kp["id"], "to": "sent", "expected_version": 1 }))
        .await
        .expect("send");
    assert_eq!((sent["status"].clone(), sent["version"].clone()), (json!("sent"), json!(2)));
    let input =
        json!({ "deal_id": deal_id, "number": "C-8", "date": "2025-02-20", "amount": "1000", "currency": "RUB" });
    let contract = call(&store, "upsert_contract", input).await.expect("contract");
    let err =
        call(&store, "transition_contract", json!({ "id": contract["id"], "to": "signed", "expected_version": 1 }))
            .await
            .expect_err("sent first");
    assert!(err.contains("it can go to: sent"), "{err}");
    let err = call(&store, "transition_contract", json!({ "id": contract["id"], "to": "sent", "expected_version": 5 }))
        .await
        .expect_err("stale");
    assert!(err.contains("reload it"), "{err}");
}

async fn update_deal_replaces_fields_at_the_expected_version(store: Store) {
    let created = call(&store, "upsert_deal_by_external_id", master_deal("U-1")).await.expect("create");
    let mut input = master_deal("U-1");
    input["name"] = json!("Renamed");
    input["id"] = created["id"].clone();
    input["expected_version"] = json!(1);
    let updated = call(&store, "update_deal", input.clone()).await.expect("update");
    assert_eq!((updated["title"].clone(), updated["version"].clone()), (json!("Renamed"), json!(2)));
    let err = call(&store, "update_deal", input).await.expect_err("stale");
    assert!(err.contains("version 2, not the expected 1"), "{err}");
}
