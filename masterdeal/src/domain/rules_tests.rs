//! Each invariant in `rules`, holding and broken.

use super::*;
use crate::domain::test_support::{campaign, deal, period, plan, rub, stats, usd};
use crate::domain::{ContractStatus, PaymentStatus};

fn contract(amount: Money, reason: Option<&str>) -> Contract {
    Contract {
        id: Uuid::from_u128(3),
        deal_id: Uuid::from_u128(1),
        number: "MD-2025/042".to_owned(),
        date: crate::domain::test_support::day("2025-02-20"),
        amount,
        amount_override_reason: reason.map(str::to_owned),
        status: ContractStatus::Draft,
        billing_ids: Default::default(),
        payment_status: PaymentStatus::Unpaid,
    }
}

#[test]
fn plan_at_or_under_budget_holds() {
    let deal = deal("1000");
    assert_eq!(plan_within_budget(&deal, &plan(PlanStatus::Approved, &[rub("600"), rub("400")])), Ok(()));
    assert_eq!(plan_within_budget(&deal, &plan(PlanStatus::Approved, &[rub("0.1"), rub("0.2")])), Ok(()));
}

#[test]
fn plan_over_budget_says_by_how_much() {
    let err =
        plan_within_budget(&deal("1000"), &plan(PlanStatus::Approved, &[rub("600"), rub("400.01")])).expect_err("over");
    assert_eq!(err, RuleError::PlanOverBudget { total: rub("1000.01"), budget: rub("1000"), over: rub("0.01") });
    assert!(err.to_string().contains("by 0.01 RUB"), "{err}");
}

#[test]
fn plan_in_another_currency_or_deal_is_refused() {
    let deal = deal("1000");
    let err = plan_within_budget(&deal, &plan(PlanStatus::Approved, &[usd("1")])).expect_err("USD");
    assert!(matches!(err, RuleError::Money(MoneyError::CurrencyMismatch { .. })), "{err}");
    let mut other = plan(PlanStatus::Approved, &[rub("1")]);
    other.deal_id = Uuid::from_u128(9);
    assert!(matches!(plan_within_budget(&deal, &other), Err(RuleError::WrongDeal { .. })));
}

#[test]
fn contract_equal_to_plan_holds() {
    let plan = plan(PlanStatus::Approved, &[rub("600"), rub("400")]);
    assert_eq!(contract_matches_plan(&contract(rub("1000.00"), None), &plan), Ok(()));
}

#[test]
fn contract_differing_from_plan_needs_a_reason() {
    let plan = plan(PlanStatus::Approved, &[rub("600"), rub("400")]);
    let err = contract_matches_plan(&contract(rub("900"), None), &plan).expect_err("mismatch");
    assert_eq!(err, RuleError::ContractAmountMismatch { amount: rub("900"), plan_total: rub("1000") });
    assert!(contract_matches_plan(&contract(rub("900"), Some("  ")), &plan).is_err());
    assert_eq!(contract_matches_plan(&contract(rub("900"), Some("10% agency discount")), &plan), Ok(()));
}

#[test]
fn contract_needs_an_approved_plan() {
    let plan = plan(PlanStatus::Proposed, &[rub("1000")]);
    let err = contract_matches_plan(&contract(rub("1000"), None), &plan).expect_err("not approved");
    assert_eq!(err, RuleError::PlanNotApproved { version: 1, status: "proposed" });
}

#[test]
fn campaign_inside_its_line_holds() {
    let plan = plan(PlanStatus::Approved, &[rub("500")]);
    let line = &plan.lines[0];
    let mut c = campaign(line, rub("500"), rub("0"));
    assert_eq!(campaign_within_line(&c, line), Ok(()));
    c.flight = period("2025-03-10", "2025-03-20");
    assert_eq!(campaign_within_line(&c, line), Ok(()));
}

#[test]
fn campaign_over_line_budget_or_flight_is_refused() {
    let plan = plan(PlanStatus::Approved, &[rub("500")]);
    let line = &plan.lines[0];
    let over = campaign(line, rub("500.01"), rub("0"));
    assert!(matches!(campaign_within_line(&over, line), Err(RuleError::CampaignOverLineBudget { .. })));
    let mut late = campaign(line, rub("100"), rub("0"));
    late.flight = period("2025-03-15", "2025-04-02");
    let err = campaign_within_line(&late, line).expect_err("outside flight");
    assert!(err.to_string().contains("2025-03-15..2025-04-02"), "{err}");
    late.plan_line_id = Uuid::from_u128(7);
    assert!(matches!(campaign_within_line(&late, line), Err(RuleError::WrongLine { .. })));
}

#[test]
fn spend_equal_to_stats_holds_and_other_campaigns_are_ignored() {
    let plan = plan(PlanStatus::Approved, &[rub("500")]);
    let c = campaign(&plan.lines[0], rub("500"), rub("0.3"));
    let batch = [
        stats(c.id, "2025-03-01", "0.1"),
        stats(c.id, "2025-03-02", "0.2"),
        stats(Uuid::from_u128(77), "2025-03-02", "99"),
    ];
    assert_eq!(campaign_spend_matches(&c, &batch), Ok(()));
}

#[test]
fn spend_differing_from_stats_is_refused() {
    let plan = plan(PlanStatus::Approved, &[rub("500")]);
    let c = campaign(&plan.lines[0], rub("500"), rub("0.4"));
    let err = campaign_spend_matches(&c, &[stats(c.id, "2025-03-01", "0.3")]).expect_err("mismatch");
    assert_eq!(err, RuleError::SpendMismatch { recorded: rub("0.4"), from_stats: rub("0.3") });
}
