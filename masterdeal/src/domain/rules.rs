//! The invariants that tie the aggregates together (plan vs deal budget, contract vs plan,
//! campaign vs plan line, spend vs stats), checked before a write is accepted.

use std::cmp::Ordering;

use uuid::Uuid;

use super::{
    Campaign, CampaignStats, Contract, Lifecycle, MasterDeal, MediaPlan, Money, MoneyError, Period, PlanLine,
    PlanStatus, roll_up,
};

/// A write that would break a domain invariant; each message says how to fix the data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("the media plan belongs to deal {plan_deal}, not to deal {deal}: use a plan of this deal")]
    WrongDeal { deal: Uuid, plan_deal: Uuid },
    #[error(
        "the media plan totals {total}, over the deal budget {budget} by {over}: \
         cut line budgets or raise the deal budget"
    )]
    PlanOverBudget { total: Money, budget: Money, over: Money },
    #[error("media plan version {version} is `{status}`: approve it before signing a contract on it")]
    PlanNotApproved { version: i32, status: &'static str },
    #[error(
        "the contract amount {amount} differs from the approved plan total {plan_total}: \
         set the amount to the plan total or give an override reason"
    )]
    ContractAmountMismatch { amount: Money, plan_total: Money },
    #[error("the campaign is for plan line {campaign_line}, not {line}: check it against its own line")]
    WrongLine { campaign_line: Uuid, line: Uuid },
    #[error(
        "the campaign budget {budget} is over its plan line budget {line_budget}: \
         lower the campaign budget or raise the line's"
    )]
    CampaignOverLineBudget { budget: Money, line_budget: Money },
    #[error(
        "the campaign flight {flight} is outside its plan line's flight {line_flight}: \
         move the campaign dates inside the line's"
    )]
    FlightOutsideLine { flight: Period, line_flight: Period },
    #[error(
        "the campaign's recorded spend {recorded} differs from the sum of its daily stats \
         {from_stats}: re-sync the spend from the stats"
    )]
    SpendMismatch { recorded: Money, from_stats: Money },
    #[error(
        "campaign {campaign} refers to plan line {line}, which is not in media plan version \
         {version}: link the campaign to a line of this plan"
    )]
    UnknownPlanLine { campaign: Uuid, line: Uuid, version: i32 },
    #[error(
        "media plan {approved_number} (`{approved}`) is already the deal's approved plan, and a \
         deal has only one: reject this plan or keep the approved one"
    )]
    AnotherPlanApproved { approved: Uuid, approved_number: i32 },
    #[error("deal {deal} has no approved media plan: approve one before writing its contract")]
    NoApprovedPlan { deal: Uuid },
    #[error(
        "plan line {line} belongs to media plan {number}, which is `{status}`: campaigns run \
         only on lines of the deal's approved plan"
    )]
    LineNotApproved { line: Uuid, number: i32, status: &'static str },
    #[error("media plan {number} is `{status}`: approve it before drafting its proposal")]
    ProposalOfUnapprovedPlan { number: i64, status: &'static str },
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// A plan's total may not exceed the deal budget; checked when a plan is approved.
pub fn plan_within_budget(deal: &MasterDeal, plan: &MediaPlan) -> Result<(), RuleError> {
    if plan.deal_id != deal.id {
        return Err(RuleError::WrongDeal { deal: deal.id, plan_deal: plan.deal_id });
    }
    let total = plan.total(deal.budget.currency)?;
    if total.try_cmp(deal.budget)? == Ordering::Greater {
        let over = total.checked_sub(deal.budget)?;
        return Err(RuleError::PlanOverBudget { total, budget: deal.budget, over });
    }
    Ok(())
}

/// A contract's amount equals the approved plan's total, unless it states why not.
pub fn contract_matches_plan(contract: &Contract, plan: &MediaPlan) -> Result<(), RuleError> {
    if contract.deal_id != plan.deal_id {
        return Err(RuleError::WrongDeal { deal: contract.deal_id, plan_deal: plan.deal_id });
    }
    if plan.status != PlanStatus::Approved {
        return Err(RuleError::PlanNotApproved { version: plan.version, status: plan.status.as_str() });
    }
    // A blank reason is no reason: it would let a typo in the amount through unexplained.
    let overridden = contract.amount_override_reason.as_deref().is_some_and(|reason| !reason.trim().is_empty());
    if overridden {
        return Ok(());
    }
    let plan_total = plan.total(contract.amount.currency)?;
    if contract.amount.try_cmp(plan_total)? != Ordering::Equal {
        return Err(RuleError::ContractAmountMismatch { amount: contract.amount, plan_total });
    }
    Ok(())
}

/// A campaign spends at most its line's budget, within its line's flight.
pub fn campaign_within_line(campaign: &Campaign, line: &PlanLine) -> Result<(), RuleError> {
    if campaign.plan_line_id != line.id {
        return Err(RuleError::WrongLine { campaign_line: campaign.plan_line_id, line: line.id });
    }
    if campaign.budget.try_cmp(line.budget)? == Ordering::Greater {
        return Err(RuleError::CampaignOverLineBudget { budget: campaign.budget, line_budget: line.budget });
    }
    if !line.flight.contains(campaign.flight) {
        return Err(RuleError::FlightOutsideLine { flight: campaign.flight, line_flight: line.flight });
    }
    Ok(())
}

/// A campaign's recorded spend is the sum of its daily stats; stats of other campaigns in
/// `stats` are ignored so a whole day's batch can be passed as is.
pub fn campaign_spend_matches(campaign: &Campaign, stats: &[CampaignStats]) -> Result<(), RuleError> {
    let own = stats.iter().filter(|s| s.campaign_id == campaign.id);
    let from_stats = roll_up(campaign.spend.currency, own)?.spend;
    if campaign.spend.try_cmp(from_stats)? != Ordering::Equal {
        return Err(RuleError::SpendMismatch { recorded: campaign.spend, from_stats });
    }
    Ok(())
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
