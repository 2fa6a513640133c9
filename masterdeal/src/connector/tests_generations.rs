//! Drafting with a model through the endpoint, on both store backends: a generation asked
//! for writes its event, the domain checks a drafted plan, a generation ends once (or fails,
//! and is done after all by a replay), and a proposal is drafted only for an approved plan.

use junction_engine::store::Store;
use serde_json::{Value, json};
use uuid::Uuid;

use super::tests::{call, master_deal};
use crate::domain::GenerationKind;
use crate::store::{self, MasterDealStoreError, test_db::on_both_backends};

on_both_backends!(
    a_generation_is_asked_for_with_its_event_and_ends_once,
    the_domain_checks_a_drafted_plan_against_its_deal,
    a_proposal_is_drafted_only_for_an_approved_plan,
);

/// A deal of 1000 RUB from 2027-03-01 to 2027-05-31; its id.
async fn deal(store: &Store, crm_id: &str) -> Uuid {
    let mut deal = master_deal(crm_id);
    deal["budget"] = json!("1000.00");
    deal["period"] = json!({ "from": "2027-03-01", "to": "2027-05-31" });
    let created = call(store, "upsert_deal_by_external_id", deal).await.expect("create deal");
    created["id"].as_str().and_then(|id| id.parse().ok()).expect("an id")
}

fn line(channel: &str, budget: &str, to: &str) -> Value {
    json!({ "channel": channel, "platform": "vk_ads", "format": "feed", "flight_from": "2027-03-01", "flight_to": to, "budget": budget })
}

async fn a_generation_is_asked_for_with_its_event_and_ends_once(store: Store) {
    let deal_id = deal(&store, "G-1").await;
    let g = store::request_generation(&store, GenerationKind::MediaPlan, deal_id).await.expect("asked");
    assert_eq!((g.kind, g.subject_id, g.result_id.is_none()), (GenerationKind::MediaPlan, deal_id, true));
    let events = store::pending(&store, 1000).await.expect("pending");
    let event = events.iter().find(|e| e.aggregate_id == g.id.to_string()).expect("the generation's event");
    assert_eq!(event.event_type, "masterdeal.media_plan_generation.requested");
    assert_eq!(event.payload["generation_id"], json!(g.id));
    assert_eq!(event.payload["deal"]["id"], json!(deal_id), "the deal the route prompts with");
    let missing = store::request_generation(&store, GenerationKind::MediaPlan, Uuid::now_v7()).await;
    assert!(matches!(missing, Err(MasterDealStoreError::NotFound { what: "master deal", .. })), "{missing:?}");

    // Done once: a second finish is a forbidden move, so a redelivery cannot store twice unseen.
    let result_id = Uuid::now_v7();
    let done = call(&store, "finish_generation", json!({ "id": g.id, "result_id": result_id })).await.expect("done");
    assert_eq!((done["status"].as_str(), done["result_id"].clone()), (Some("done"), json!(result_id)));
    let again = call(&store, "finish_generation", json!({ "id": g.id, "result_id": result_id })).await;
    assert!(again.is_err_and(|e| e.contains("`done` is final")));

    // Failed from a route's dead letter, then done after all when the dead letter is replayed.
    let g = store::request_generation(&store, GenerationKind::MediaPlan, deal_id).await.expect("asked");
    let envelope = json!({
        "dead_letter_id": "dl-1", "route": "draft-media-plan", "step": "3:enrich", "attempts": 1,
        "error": "no target gave a valid answer for media-plan/1",
        "message": { "id": "m-1", "body": { "generation_id": g.id } },
    });
    let failed = call(&store, "fail_generation", envelope).await.expect("failed");
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["problem"]["dead_letter_id"], "dl-1");
    assert!(failed["problem"]["detail"].as_str().is_some_and(|d| d.contains("no target gave a valid answer")));
    let replayed = call(&store, "finish_generation", json!({ "id": g.id, "result_id": result_id })).await;
    assert_eq!(replayed.expect("a replay finishes a failed one")["problem"], Value::Null);
    let not_a_dead_letter = call(&store, "fail_generation", json!({ "error": "x" })).await;
    assert!(not_a_dead_letter.is_err_and(|e| e.contains("generation_id")));
}

async fn the_domain_checks_a_drafted_plan_against_its_deal(store: Store) {
    let deal_id = deal(&store, "G-2").await;
    let input = json!({ "generation_id": Uuid::now_v7(), "deal": { "id": deal_id } });
    let fits = json!({ "lines": [line("social", "600.00", "2027-05-31"), line("video", "400.00", "2027-04-30")], "total": "1000.00" });
    let answer = call(&store, "check_media_plan", json!({ "output": fits, "input": input })).await.expect("checked");
    assert_eq!(answer, json!({ "errors": [] }));
    let over = json!({ "lines": [line("social", "600.00", "2027-06-30"), line("radio", "500.00", "2027-04-30")], "total": "1100.00" });
    let answer = call(&store, "check_media_plan", json!({ "output": over, "input": { "deal_id": deal_id } }))
        .await
        .expect("checked");
    let errors: Vec<&str> = answer["errors"].as_array().expect("errors").iter().filter_map(Value::as_str).collect();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors.iter().any(|e| e.starts_with("/lines/0: the flight 2027-03-01..2027-06-30 is outside")),
        "{errors:#?}"
    );
    assert!(errors.iter().any(|e| e.starts_with("/lines/1/channel: `radio`")), "{errors:#?}");
    assert!(errors.iter().any(|e| e.contains("over the deal's budget 1000.00 RUB by 100.00")), "{errors:#?}");
    let no_deal = call(&store, "check_media_plan", json!({ "output": fits, "input": {} })).await;
    assert!(no_deal.is_err_and(|e| e.contains("`deal.id` or `deal_id`")));
}

async fn a_proposal_is_drafted_only_for_an_approved_plan(store: Store) {
    let deal_id = deal(&store, "G-3").await;
    let plan = call(
        &store,
        "add_media_plan",
        json!({ "deal_id": deal_id, "lines": [line("social", "900.00", "2027-05-31")] }),
    )
    .await
    .expect("plan");
    let plan_id: Uuid = plan["id"].as_str().and_then(|id| id.parse().ok()).expect("id");
    let refused = store::request_generation(&store, GenerationKind::Proposal, plan_id).await;
    assert!(
        refused
            .is_err_and(|e| e.to_string().contains("media plan 1 is `draft`: approve it before drafting its proposal"))
    );
    for (to, version) in [("proposed", 1), ("approved", 2)] {
        call(&store, "transition_media_plan", json!({ "id": plan_id, "to": to, "expected_version": version }))
            .await
            .expect(to);
    }
    let g = store::request_generation(&store, GenerationKind::Proposal, plan_id).await.expect("asked");
    let events = store::pending(&store, 1000).await.expect("pending");
    let event = events.iter().find(|e| e.aggregate_id == g.id.to_string()).expect("its event");
    assert_eq!(event.event_type, "masterdeal.proposal_generation.requested");
    assert_eq!(event.payload["media_plan"]["lines"][0]["channel"], "social", "the plan the route prompts with");
    assert_eq!(event.payload["deal"]["id"], json!(deal_id));

    // What the model wrote is stored with its HTML rendered and sanitised.
    let kp = call(&store, "attach_proposal", json!({
        "media_plan_id": plan_id, "body_markdown": "# КП\n\n**ok** <script>alert(1)</script>", "generated_by": "llm:openai:gpt-4o-mini",
    }))
    .await
    .expect("attached");
    let html = kp["body_html"].as_str().expect("html");
    assert!(
        html.starts_with("<h1>КП</h1>") && html.contains("<strong>ok</strong>") && !html.contains("script"),
        "{kp}"
    );
}
