//! The plan, proposal, contract and campaign repositories against both backends.

use std::collections::BTreeMap;

use junction_engine::store::Store;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::test_db::on_both_backends;
use super::*;
use crate::domain::{
    CampaignStatus, ContractStatus, Currency, Kpis, Money, PaymentStatus, Period, PlanStatus, ProposalStatus, RuleError,
};

on_both_backends!(
    plans_round_trip_and_number_per_deal,
    plan_lines_in_another_currency_are_refused,
    approving_over_budget_is_refused,
    a_second_approval_is_refused_naming_the_approved_plan,
    a_draft_cannot_skip_proposed,
    proposals_round_trip_and_follow_their_lifecycle,
    contracts_need_the_approved_plan_and_its_amount,
    campaigns_fit_their_line_and_upsert_by_platform_id,
    stats_replace_their_day_and_roll_up_spend,
    deal_summary_compares_budget_and_spend_per_channel,
    each_write_appends_its_event_numbered_per_aggregate,
    concurrent_plan_transitions_at_one_version_let_exactly_one_win,
    update_deal_overwrites_at_the_expected_version,
    only_records_nothing_refers_to_are_deleted,
    create_deal_never_overwrites,
);

fn dec(s: &str) -> Decimal {
    s.parse().expect("a decimal literal")
}

fn rub(s: &str) -> Money {
    Money::new(dec(s), Currency::RUB)
}

fn flight(from: &str, to: &str) -> Period {
    Period::new(from.parse().expect("a date"), to.parse().expect("a date")).expect("an ordered period")
}

/// A deal the domain accepts (a valid INN), with this budget in RUB.
async fn deal(store: &Store, crm_id: &str, budget: &str) -> DealRow {
    let deal = NewDeal {
        crm_id: crm_id.to_owned(),
        external_ids: BTreeMap::new(),
        advertiser_name: "Sberbank".to_owned(),
        advertiser_inn: "7707083893".to_owned(),
        advertiser_kpp: Some("773601001".to_owned()),
        owner: "anna".to_owned(),
        title: "Spring launch".to_owned(),
        budget: dec(budget),
        currency: "RUB".to_owned(),
        period_from: "2025-03-01".parse().expect("a date"),
        period_to: "2025-05-31".parse().expect("a date"),
        status: Some(crate::domain::DealStatus::Planning),
    };
    upsert_by_crm_id(store, deal).await.expect("create deal").0
}

fn line(channel: &str, budget: &str) -> NewPlanLine {
    NewPlanLine {
        channel: channel.to_owned(),
        platform: "yandex_direct".to_owned(),
        format: "banner".to_owned(),
        flight: flight("2025-03-01", "2025-03-31"),
        budget: rub(budget),
        kpis: Kpis::default(),
    }
}

fn plan(deal_id: Uuid, lines: Vec<NewPlanLine>) -> NewPlan {
    NewPlan { deal_id, source: "manual".to_owned(), prompt_template_version: None, model: None, lines }
}

/// A plan of these lines taken through draft → proposed → approved.
async fn approved(store: &Store, deal_id: Uuid, lines: Vec<NewPlanLine>) -> PlanRow {
    let p = add_media_plan(store, plan(deal_id, lines)).await.expect("add plan");
    let p = transition_plan(store, p.id, 1, PlanStatus::Proposed).await.expect("propose");
    transition_plan(store, p.id, 2, PlanStatus::Approved).await.expect("approve")
}

fn campaign(line: &PlanLineRow, platform_id: Option<&str>, budget: &str) -> NewCampaign {
    NewCampaign {
        media_plan_line_id: line.id,
        platform: line.platform.clone(),
        platform_campaign_id: platform_id.map(str::to_owned),
        name: "Spring banners".to_owned(),
        status: CampaignStatus::Active,
        flight: flight("2025-03-05", "2025-03-25"),
        budget: rub(budget),
    }
}

fn day(date: &str, spend: &str) -> NewDayStats {
    NewDayStats { day: date.parse().expect("a date"), impressions: 1000, clicks: 10, spend: rub(spend), conversions: 1 }
}

fn contract(deal_id: Uuid, amount: &str, reason: Option<&str>) -> NewContract {
    NewContract {
        deal_id,
        number: "C-2025/17".to_owned(),
        date: "2025-02-20".parse().expect("a date"),
        amount: rub(amount),
        amount_override_reason: reason.map(str::to_owned),
        billing_ids: BTreeMap::from([("1c".to_owned(), "00017".to_owned())]),
        payment_status: PaymentStatus::Unpaid,
    }
}

async fn events_of(store: &Store, aggregate_type: &str) -> Vec<OutboxEvent> {
    let all = pending(store, 1000).await.expect("pending");
    all.into_iter().filter(|e| e.aggregate_type == aggregate_type).collect()
}

async fn plans_round_trip_and_number_per_deal(store: Store) {
    let a = deal(&store, "a", "1000000").await;
    let b = deal(&store, "b", "1000000").await;
    let mut video = line("video", "0.1");
    video.kpis =
        Kpis { impressions: Some(50_000), cpm: Some(dec("150.5")), ctr: Some(dec("0.012")), ..Kpis::default() };
    let llm = NewPlan {
        source: "llm".to_owned(),
        prompt_template_version: Some("plan-v3".to_owned()),
        model: Some("gpt-4o".to_owned()),
        ..plan(a.id, vec![video, line("display", "0.2")])
    };
    let first = add_media_plan(&store, llm).await.expect("first plan");
    let second = add_media_plan(&store, plan(a.id, vec![line("search", "5")])).await.expect("second plan");
    let other = add_media_plan(&store, plan(b.id, vec![line("search", "5")])).await.expect("other deal");
    assert_eq!((first.number, second.number, other.number), (1, 2, 1));
    assert_eq!(
        (first.status, first.version, first.total, first.currency.as_str()),
        (PlanStatus::Draft, 1, dec("0.3"), "RUB")
    );
    assert_eq!(first.lines.iter().map(|l| l.position).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        (first.lines[0].impressions, first.lines[0].cpm, first.lines[0].ctr),
        (Some(50_000), Some(dec("150.5")), Some(dec("0.012")))
    );
    assert_eq!((first.lines[1].clicks, first.lines[1].cpm), (None, None));
    assert_eq!(get_plan(&store, first.id).await.expect("get"), Some(first.clone()));
    assert_eq!(list_plans(&store, a.id).await.expect("list"), [first.clone(), second]);
    assert_eq!(approved_plan(&store, a.id).await.expect("approved"), None);
    let json = serde_json::to_value(&first).expect("a row serializes");
    assert_eq!((json["total"].clone(), json["lines"][0]["cpm"].clone()), ("0.3".into(), "150.5".into()));

    let err = add_media_plan(&store, plan(Uuid::now_v7(), vec![line("video", "1")])).await.expect_err("no deal");
    assert!(matches!(err, MasterDealStoreError::NotFound { what: "master deal", .. }), "{err:?}");
    let bad = NewPlan { source: "llm".to_owned(), ..plan(a.id, vec![line("video", "1")]) };
    let err = add_media_plan(&store, bad).await.expect_err("llm without template");
    assert!(matches!(err, MasterDealStoreError::Invalid(_)), "{err:?}");
}

async fn plan_lines_in_another_currency_are_refused(store: Store) {
    let d = deal(&store, "a", "1000").await;
    let mut dollars = line("video", "10");
    dollars.budget = Money::new(dec("10"), Currency::USD);
    let err = add_media_plan(&store, plan(d.id, vec![line("video", "1"), dollars])).await.expect_err("USD line");
    assert!(matches!(err, MasterDealStoreError::Rule(RuleError::Money(_))), "{err:?}");
    assert!(list_plans(&store, d.id).await.expect("list").is_empty());
}

async fn approving_over_budget_is_refused(store: Store) {
    let d = deal(&store, "a", "1000").await;
    let p =
        add_media_plan(&store, plan(d.id, vec![line("video", "600"), line("display", "400.01")])).await.expect("add");
    transition_plan(&store, p.id, 1, PlanStatus::Proposed).await.expect("propose");
    let err = transition_plan(&store, p.id, 2, PlanStatus::Approved).await.expect_err("over budget");
    assert!(matches!(err, MasterDealStoreError::Rule(RuleError::PlanOverBudget { .. })), "{err:?}");
    assert!(err.to_string().contains("0.01"), "{err}");
    let still = get_plan(&store, p.id).await.expect("get").expect("present");
    assert_eq!((still.status, still.version), (PlanStatus::Proposed, 2));
}

async fn a_second_approval_is_refused_naming_the_approved_plan(store: Store) {
    let d = deal(&store, "a", "1000").await;
    let first = approved(&store, d.id, vec![line("video", "500")]).await;
    let second = add_media_plan(&store, plan(d.id, vec![line("video", "400")])).await.expect("add");
    transition_plan(&store, second.id, 1, PlanStatus::Proposed).await.expect("propose");
    let err = transition_plan(&store, second.id, 2, PlanStatus::Approved).await.expect_err("one approved per deal");
    assert!(
        matches!(err, MasterDealStoreError::Rule(RuleError::AnotherPlanApproved { approved, approved_number: 1 }) if approved == first.id),
        "{err:?}"
    );
    assert!(err.to_string().contains(&first.id.to_string()), "{err}");
    assert_eq!(approved_plan(&store, d.id).await.expect("approved"), Some(first));
}

async fn a_draft_cannot_skip_proposed(store: Store) {
    let d = deal(&store, "a", "1000").await;
    let p = add_media_plan(&store, plan(d.id, vec![line("video", "5")])).await.expect("add");
    let err = transition_plan(&store, p.id, 1, PlanStatus::Approved).await.expect_err("draft -> approved");
    assert!(matches!(err, MasterDealStoreError::Transition(_)), "{err:?}");
    assert!(err.to_string().contains("it can go to: proposed"), "{err}");
    let err = transition_plan(&store, p.id, 7, PlanStatus::Proposed).await.expect_err("stale");
    assert!(
        matches!(err, MasterDealStoreError::Conflict { what: "media plan", expected: 7, actual: 1, .. }),
        "{err:?}"
    );
    let err = transition_plan(&store, Uuid::now_v7(), 1, PlanStatus::Proposed).await.expect_err("missing");
    assert!(matches!(err, MasterDealStoreError::NotFound { what: "media plan", .. }), "{err:?}");
}

async fn proposals_round_trip_and_follow_their_lifecycle(store: Store) {
    let d = deal(&store, "a", "1000").await;
    let p = add_media_plan(&store, plan(d.id, vec![line("video", "5")])).await.expect("add");
    let new = NewProposal {
        media_plan_id: p.id,
        body_markdown: "# КП".to_owned(),
        body_html: Some("<h1>КП</h1>".to_owned()),
        generated_by: "llm:gpt-4o".to_owned(),
        prompt_template_version: Some("kp-v1".to_owned()),
    };
    let kp = attach_proposal(&store, new.clone()).await.expect("attach");
    assert_eq!((kp.deal_id, kp.media_plan_id, kp.status, kp.version), (d.id, p.id, ProposalStatus::Draft, 1));
    assert_eq!(get_proposal(&store, kp.id).await.expect("get"), Some(kp.clone()));
    let err = transition_proposal(&store, kp.id, 1, ProposalStatus::Accepted).await.expect_err("not sent yet");
    assert!(matches!(err, MasterDealStoreError::Transition(_)), "{err:?}");
    let sent = transition_proposal(&store, kp.id, 1, ProposalStatus::Sent).await.expect("send");
    let accepted = transition_proposal(&store, kp.id, 2, ProposalStatus::Accepted).await.expect("accept");
    assert_eq!((sent.version, accepted.status, accepted.version), (2, ProposalStatus::Accepted, 3));
    assert_eq!(list_proposals(&store, d.id).await.expect("list"), [accepted]);
    let err = attach_proposal(&store, NewProposal { media_plan_id: Uuid::now_v7(), ..new }).await.expect_err("no plan");
    assert!(matches!(err, MasterDealStoreError::NotFound { what: "media plan", .. }), "{err:?}");
}

async fn contracts_need_the_approved_plan_and_its_amount(store: Store) {
    let d = deal(&store, "a", "1000").await;
    let err = upsert_contract(&store, contract(d.id, "1000", None), Expected::AnyVersion)
        .await
        .expect_err("no approved plan");
    assert!(matches!(err, MasterDealStoreError::Rule(RuleError::NoApprovedPlan { .. })), "{err:?}");
    approved(&store, d.id, vec![line("video", "600"), line("display", "400")]).await;

    let err = upsert_contract(&store, contract(d.id, "900", None), Expected::AnyVersion).await.expect_err("mismatch");
    assert!(matches!(err, MasterDealStoreError::Rule(RuleError::ContractAmountMismatch { .. })), "{err:?}");
    let (created, was_created) =
        upsert_contract(&store, contract(d.id, "900", Some("10% agency discount")), Expected::AnyVersion)
            .await
            .expect("with reason");
    assert!(was_created);
    assert_eq!((created.amount, created.status, created.version), (dec("900"), ContractStatus::Draft, 1));
    assert_eq!(created.billing_ids["1c"], "00017");
    assert_eq!(get_contract(&store, created.id).await.expect("get"), Some(created.clone()));

    let (updated, was_created) =
        upsert_contract(&store, contract(d.id, "1000.00", None), Expected::Version(1)).await.expect("update");
    assert!(!was_created);
    assert_eq!((updated.id, updated.version, updated.amount), (created.id, 2, dec("1000.00")));
    let err = upsert_contract(&store, contract(d.id, "1000", None), Expected::Version(1)).await.expect_err("stale");
    assert!(matches!(err, MasterDealStoreError::Conflict { what: "contract", expected: 1, actual: 2, .. }), "{err:?}");
    let err = upsert_contract(&store, contract(d.id, "1000", None), Expected::New).await.expect_err("exists");
    assert!(matches!(err, MasterDealStoreError::VersionRequired { what: "contract", actual: 2, .. }), "{err:?}");

    let sent = transition_contract(&store, created.id, 2, ContractStatus::Sent).await.expect("send");
    let signed = transition_contract(&store, created.id, sent.version, ContractStatus::Signed).await.expect("sign");
    assert_eq!((signed.status, signed.version), (ContractStatus::Signed, 4));
    assert_eq!(list_contracts(&store, d.id).await.expect("list"), [signed]);
}

async fn campaigns_fit_their_line_and_upsert_by_platform_id(store: Store) {
    let d = deal(&store, "a", "1000").await;
    let draft = add_media_plan(&store, plan(d.id, vec![line("video", "500")])).await.expect("add");
    let err = upsert_campaign(&store, campaign(&draft.lines[0], None, "100"), Expected::AnyVersion)
        .await
        .expect_err("draft plan");
    assert!(matches!(err, MasterDealStoreError::Rule(RuleError::LineNotApproved { .. })), "{err:?}");

    let p = approved(&store, d.id, vec![line("video", "500")]).await;
    let l = &p.lines[0];
    let err = upsert_campaign(&store, campaign(l, Some("yd-1"), "500.01"), Expected::AnyVersion)
        .await
        .expect_err("over line");
    assert!(matches!(err, MasterDealStoreError::Rule(RuleError::CampaignOverLineBudget { .. })), "{err:?}");

    let (c, created) =
        upsert_campaign(&store, campaign(l, Some("yd-1"), "500"), Expected::AnyVersion).await.expect("create");
    assert!(created);
    assert_eq!((c.deal_id, c.budget, c.spend, c.version, c.currency.as_str()), (d.id, dec("500"), dec("0"), 1, "RUB"));
    let paused = NewCampaign { status: CampaignStatus::Paused, ..campaign(l, Some("yd-1"), "400") };
    let (again, created) = upsert_campaign(&store, paused, Expected::Version(1)).await.expect("update");
    assert!(!created);
    assert_eq!((again.id, again.version, again.status, again.budget), (c.id, 2, CampaignStatus::Paused, dec("400")));
    assert_eq!(get_campaign(&store, c.id).await.expect("get"), Some(again.clone()));

    let (x, _) = upsert_campaign(&store, campaign(l, None, "1"), Expected::AnyVersion).await.expect("no platform id");
    let (y, _) = upsert_campaign(&store, campaign(l, None, "1"), Expected::AnyVersion).await.expect("no platform id");
    assert_ne!(x.id, y.id, "without a platform id every upsert creates");
    assert_eq!(list_campaigns(&store, d.id).await.expect("list").len(), 3);
}

async fn stats_replace_their_day_and_roll_up_spend(store: Store) {
    let d = deal(&store, "a", "1000").await;
    let p = approved(&store, d.id, vec![line("video", "500")]).await;
    let (c, _) = upsert_campaign(&store, campaign(&p.lines[0], Some("yd-1"), "500"), Expected::AnyVersion)
        .await
        .expect("create");

    let c2 = record_campaign_stats(&store, c.id, vec![day("2025-03-05", "0.1"), day("2025-03-06", "0.2")])
        .await
        .expect("two days");
    assert_eq!((c2.spend, c2.version, c2.stats.len()), (dec("0.3"), 2, 2));
    let c3 = record_campaign_stats(&store, c.id, vec![day("2025-03-05", "1.5")]).await.expect("again");
    assert_eq!((c3.spend, c3.version), (dec("1.7"), 3));
    assert_eq!(c3.stats.iter().map(|s| s.spend).collect::<Vec<_>>(), [dec("1.5"), dec("0.2")]);
    assert_eq!(get_campaign(&store, c.id).await.expect("get"), Some(c3));

    let mut dollars = day("2025-03-07", "1");
    dollars.spend = Money::new(dec("1"), Currency::USD);
    let err = record_campaign_stats(&store, c.id, vec![dollars]).await.expect_err("USD");
    assert!(matches!(err, MasterDealStoreError::Rule(RuleError::Money(_))), "{err:?}");
    let err = record_campaign_stats(&store, Uuid::now_v7(), vec![day("2025-03-05", "1")]).await.expect_err("missing");
    assert!(matches!(err, MasterDealStoreError::NotFound { what: "campaign", .. }), "{err:?}");

    let events = events_of(&store, "campaign").await;
    let last = events.last().expect("events");
    assert_eq!(last.event_type, "masterdeal.campaign.stats_recorded");
    assert_eq!(
        (last.payload["spend"].clone(), last.payload["deal_id"].clone()),
        ("1.7".into(), d.id.to_string().into())
    );
    assert_eq!(last.payload["days"].as_array().map(Vec::len), Some(1));
    assert!(last.payload.get("stats").is_none());
}

async fn deal_summary_compares_budget_and_spend_per_channel(store: Store) {
    let d = deal(&store, "a", "1000").await;
    let err = deal_summary(&store, d.id).await.expect_err("no approved plan");
    assert!(matches!(err, MasterDealStoreError::NotFound { .. }), "{err:?}");
    let p = approved(&store, d.id, vec![line("video", "100"), line("display", "200"), line("video", "50")]).await;
    for (i, spend) in [(0, "10"), (2, "5"), (1, "20")] {
        let id = format!("yd-{i}");
        let (c, _) = upsert_campaign(&store, campaign(&p.lines[i], Some(&id), "50"), Expected::AnyVersion)
            .await
            .expect("campaign");
        record_campaign_stats(&store, c.id, vec![day("2025-03-05", spend)]).await.expect("stats");
    }
    let summary = deal_summary(&store, d.id).await.expect("summary");
    let rows: Vec<_> = summary.channels.iter().map(|c| (c.channel.as_str(), c.budget, c.spend)).collect();
    assert_eq!(rows, [("video", dec("150"), dec("15")), ("display", dec("200"), dec("20"))]);
    assert_eq!((summary.budget, summary.spend, summary.media_plan_id), (dec("350"), dec("35"), p.id));
}

async fn each_write_appends_its_event_numbered_per_aggregate(store: Store) {
    let d = deal(&store, "a", "1000").await;
    let p = approved(&store, d.id, vec![line("video", "1000")]).await;
    let kp = NewProposal {
        media_plan_id: p.id,
        body_markdown: "md".to_owned(),
        body_html: Some("html".to_owned()),
        generated_by: "manual:alice".to_owned(),
        prompt_template_version: None,
    };
    let kp = attach_proposal(&store, kp).await.expect("attach");
    transition_proposal(&store, kp.id, 1, ProposalStatus::Sent).await.expect("send");
    let (k, _) = upsert_contract(&store, contract(d.id, "1000", None), Expected::AnyVersion).await.expect("contract");
    upsert_contract(&store, contract(d.id, "1000", None), Expected::AnyVersion).await.expect("contract again");
    transition_contract(&store, k.id, 2, ContractStatus::Sent).await.expect("send");
    let (c, _) =
        upsert_campaign(&store, campaign(&p.lines[0], Some("yd"), "10"), Expected::AnyVersion).await.expect("campaign");
    record_campaign_stats(&store, c.id, vec![day("2025-03-05", "1")]).await.expect("stats");

    let expected: [(&str, Uuid, &[&str]); 4] = [
        ("media_plan", p.id, &["added", "proposed", "approved"]),
        ("proposal", kp.id, &["attached", "sent"]),
        ("contract", k.id, &["created", "updated", "sent"]),
        ("campaign", c.id, &["created", "stats_recorded"]),
    ];
    for (aggregate, id, kinds) in expected {
        let events = events_of(&store, aggregate).await;
        let prefix = format!("masterdeal.{aggregate}.");
        let types: Vec<_> =
            events.iter().map(|e| e.event_type.strip_prefix(&prefix).unwrap_or(&e.event_type)).collect();
        assert_eq!(types, kinds, "{aggregate}");
        assert_eq!(
            events.iter().map(|e| e.aggregate_seq).collect::<Vec<_>>(),
            (1..=kinds.len() as i64).collect::<Vec<_>>()
        );
        for e in &events {
            assert_eq!(e.aggregate_id, id.to_string(), "{aggregate}");
            assert_eq!(e.payload["deal_id"], d.id.to_string(), "{aggregate} {}", e.event_type);
        }
    }
    let plan_events = events_of(&store, "media_plan").await;
    let approved_now = get_plan(&store, p.id).await.expect("get").expect("present");
    assert_eq!(plan_events[2].payload, serde_json::to_value(&approved_now).expect("serializes"));
}

async fn concurrent_plan_transitions_at_one_version_let_exactly_one_win(store: Store) {
    let d = deal(&store, "a", "1000").await;
    let p = add_media_plan(&store, plan(d.id, vec![line("video", "5")])).await.expect("add");
    let p = transition_plan(&store, p.id, 1, PlanStatus::Proposed).await.expect("propose");
    let (a, b) = tokio::join!(
        transition_plan(&store, p.id, p.version, PlanStatus::Approved),
        transition_plan(&store, p.id, p.version, PlanStatus::Rejected),
    );
    let (won, lost) = match (a, b) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
        other => panic!("expected one winner and one conflict, got {other:?}"),
    };
    assert_eq!(won.version, 3);
    assert!(
        matches!(lost, MasterDealStoreError::Conflict { expected: 2, actual: 3, .. }),
        "the loser should see a conflict: {lost:?}"
    );
    let events = events_of(&store, "media_plan").await;
    assert_eq!(events.len(), 3, "added, proposed and the winner's only");
}

async fn update_deal_overwrites_at_the_expected_version(store: Store) {
    let d = deal(&store, "a", "1000").await;
    let other = deal(&store, "b", "1000").await;
    let renamed = NewDeal {
        crm_id: d.crm_id.clone(),
        external_ids: d.external_ids.clone(),
        advertiser_name: d.advertiser_name.clone(),
        advertiser_inn: d.advertiser_inn.clone(),
        advertiser_kpp: d.advertiser_kpp.clone(),
        owner: d.owner.clone(),
        title: "Renamed".to_owned(),
        budget: dec("2000.50"),
        currency: d.currency.clone(),
        period_from: d.period_from,
        period_to: d.period_to,
        status: Some(d.status),
    };
    let updated = update_deal(&store, d.id, 1, renamed.clone()).await.expect("update");
    assert_eq!((updated.title.as_str(), updated.budget, updated.version), ("Renamed", dec("2000.50"), 2));
    let err = update_deal(&store, d.id, 1, renamed.clone()).await.expect_err("stale");
    assert!(
        matches!(err, MasterDealStoreError::Conflict { what: "master deal", expected: 1, actual: 2, .. }),
        "{err:?}"
    );
    let taken = NewDeal { crm_id: other.crm_id.clone(), ..renamed };
    let err = update_deal(&store, d.id, 2, taken).await.expect_err("CRM id of another deal");
    assert!(matches!(err, MasterDealStoreError::Invalid(_)), "{err:?}");
    let events = events_of(&store, "master_deal").await;
    let ours: Vec<_> = events.iter().filter(|e| e.aggregate_id == d.id.to_string()).map(|e| e.aggregate_seq).collect();
    assert_eq!(ours, [1, 2]);
}

/// Deletes go leaf first: each record refuses while anything refers to it or once it has a
/// history, honours its version, and writes its `deleted` event.
async fn only_records_nothing_refers_to_are_deleted(store: Store) {
    let d = deal(&store, "a", "1000").await;
    let p = approved(&store, d.id, vec![line("video", "500")]).await;
    let draft = add_media_plan(&store, plan(d.id, vec![line("display", "100")])).await.expect("a second plan");
    let proposal = attach_proposal(
        &store,
        NewProposal {
            media_plan_id: draft.id,
            body_markdown: "# KP".to_owned(),
            body_html: Some("<h1>KP</h1>".to_owned()),
            generated_by: "manual:anna".to_owned(),
            prompt_template_version: None,
        },
    )
    .await
    .expect("a proposal");
    let (c, _) = upsert_contract(&store, contract(d.id, "500", None), Expected::AnyVersion).await.expect("a contract");
    let draft_campaign = NewCampaign { status: CampaignStatus::Draft, ..campaign(&p.lines[0], Some("yd-1"), "100") };
    let (camp, _) = upsert_campaign(&store, draft_campaign, Expected::AnyVersion).await.expect("a campaign");

    let not_deletable = |e: MasterDealStoreError, what: &str| {
        assert!(matches!(&e, MasterDealStoreError::NotDeletable { what: w, .. } if *w == what), "{e:?}");
        e.to_string()
    };
    let e = delete_deal(&store, d.id, d.version).await.expect_err("it has plans");
    assert!(not_deletable(e, "master deal").contains("2 media plans refer to it"));
    let e = delete_plan(&store, p.id, p.version).await.expect_err("approved");
    assert!(not_deletable(e, "media plan").contains("it is approved"));
    let e = delete_plan(&store, draft.id, 1).await.expect_err("it has a proposal");
    assert!(not_deletable(e, "media plan").contains("1 proposals refer to it"));
    let e = delete_proposal(&store, proposal.id, 7).await.expect_err("stale");
    assert!(matches!(e, MasterDealStoreError::Conflict { expected: 7, actual: 1, .. }), "{e:?}");
    let e = delete_proposal(&store, Uuid::now_v7(), 1).await.expect_err("unknown");
    assert!(matches!(e, MasterDealStoreError::NotFound { what: "proposal", .. }), "{e:?}");

    assert_eq!(delete_proposal(&store, proposal.id, 1).await.expect("a draft proposal").id, proposal.id);
    assert_eq!(delete_plan(&store, draft.id, 1).await.expect("now unused").id, draft.id);
    assert_eq!(get_plan(&store, draft.id).await.expect("get"), None);
    let with_stats = record_campaign_stats(&store, camp.id, vec![day("2025-03-06", "1")]).await.expect("stats");
    let e = delete_campaign(&store, camp.id, with_stats.version).await.expect_err("it has stats");
    assert!(not_deletable(e, "campaign").contains("days of stats"));
    let sent = transition_contract(&store, c.id, 1, ContractStatus::Sent).await.expect("send");
    let e = delete_contract(&store, c.id, sent.version).await.expect_err("sent");
    assert!(not_deletable(e, "contract").contains("terminated, not deleted"));

    let (second, _) = upsert_contract(
        &store,
        NewContract { number: "C-2".to_owned(), ..contract(d.id, "500", None) },
        Expected::AnyVersion,
    )
    .await
    .expect("a draft contract");
    assert_eq!(delete_contract(&store, second.id, 1).await.expect("a draft contract").id, second.id);
    let spare = NewCampaign { status: CampaignStatus::Draft, ..campaign(&p.lines[0], Some("yd-2"), "50") };
    let (spare, _) = upsert_campaign(&store, spare, Expected::AnyVersion).await.expect("a spare campaign");
    assert_eq!(delete_campaign(&store, spare.id, 1).await.expect("draft, no stats").id, spare.id);
    assert_eq!(get_campaign(&store, spare.id).await.expect("get"), None);

    let lone = deal(&store, "b", "1").await;
    assert_eq!(delete_deal(&store, lone.id, lone.version).await.expect("no children").id, lone.id);
    assert_eq!(get(&store, lone.id).await.expect("get"), None);
    for (aggregate, id, event) in [
        ("master_deal", lone.id, "masterdeal.deal.deleted"),
        ("media_plan", draft.id, "masterdeal.media_plan.deleted"),
        ("proposal", proposal.id, "masterdeal.proposal.deleted"),
    ] {
        let last = events_of(&store, aggregate).await.into_iter().rev().find(|e| e.aggregate_id == id.to_string());
        assert_eq!(last.map(|e| e.event_type), Some(event.to_owned()), "{aggregate}");
    }
}

async fn create_deal_never_overwrites(store: Store) {
    let first = deal(&store, "a", "1000").await;
    let again = NewDeal { title: "Another title".to_owned(), ..new_deal_like(&first) };
    let e = create_deal(&store, again).await.expect_err("the CRM id exists");
    assert!(matches!(e, MasterDealStoreError::Conflict { expected: 0, actual: 1, .. }), "{e:?}");
    assert_eq!(get(&store, first.id).await.expect("get").map(|d| d.title), Some(first.title.clone()));
    let fresh = NewDeal { crm_id: "b".to_owned(), ..new_deal_like(&first) };
    let created = create_deal(&store, fresh).await.expect("a new CRM id");
    assert_eq!((created.crm_id.as_str(), created.version), ("b", 1));
}

fn new_deal_like(d: &DealRow) -> NewDeal {
    NewDeal {
        crm_id: d.crm_id.clone(),
        external_ids: BTreeMap::new(),
        advertiser_name: d.advertiser_name.clone(),
        advertiser_inn: d.advertiser_inn.clone(),
        advertiser_kpp: d.advertiser_kpp.clone(),
        owner: d.owner.clone(),
        title: d.title.clone(),
        budget: d.budget,
        currency: d.currency.clone(),
        period_from: d.period_from,
        period_to: d.period_to,
        status: Some(d.status),
    }
}
