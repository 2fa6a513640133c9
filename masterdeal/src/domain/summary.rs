//! The deal's budget and spend per channel, for dashboards and the DWH export.

use serde::{Deserialize, Serialize};

use super::{Campaign, MediaPlan, Money, RuleError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSummary {
    pub channel: String,
    pub budget: Money,
    pub spend: Money,
}

/// Planned budget and campaign spend per channel, in the order channels first appear in the
/// plan; a campaign on a line that is not in `plan` is an error, not silently dropped.
pub fn deal_summary(plan: &MediaPlan, campaigns: &[Campaign]) -> Result<Vec<ChannelSummary>, RuleError> {
    let mut rows: Vec<ChannelSummary> = Vec::new();
    for line in &plan.lines {
        match rows.iter_mut().find(|row| row.channel == line.channel) {
            Some(row) => row.budget = row.budget.checked_add(line.budget)?,
            None => rows.push(ChannelSummary {
                channel: line.channel.clone(),
                budget: line.budget,
                spend: Money::zero(line.budget.currency),
            }),
        }
    }
    for campaign in campaigns {
        let line = plan.line(campaign.plan_line_id).ok_or(RuleError::UnknownPlanLine {
            campaign: campaign.id,
            line: campaign.plan_line_id,
            version: plan.version,
        })?;
        let row = rows
            .iter_mut()
            .find(|row| row.channel == line.channel)
            .expect("a row was made above for every plan line's channel");
        row.spend = row.spend.checked_add(campaign.spend)?;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::PlanStatus;
    use crate::domain::test_support::{campaign, plan, rub, usd};

    #[test]
    fn sums_budget_and_spend_per_channel() {
        // Lines cycle video, display, search, video.
        let plan = plan(PlanStatus::Approved, &[rub("100"), rub("200"), rub("300"), rub("0.5")]);
        let campaigns = [
            campaign(&plan.lines[0], rub("100"), rub("10.1")),
            campaign(&plan.lines[3], rub("0.5"), rub("0.2")),
            campaign(&plan.lines[1], rub("200"), rub("20")),
        ];
        let summary = deal_summary(&plan, &campaigns).expect("consistent");
        let rows: Vec<_> = summary.iter().map(|r| (r.channel.as_str(), r.budget, r.spend)).collect();
        assert_eq!(
            rows,
            [
                ("video", rub("100.5"), rub("10.3")),
                ("display", rub("200"), rub("20")),
                ("search", rub("300"), rub("0")),
            ]
        );
    }

    #[test]
    fn campaign_on_an_unknown_line_is_an_error() {
        let plan = plan(PlanStatus::Approved, &[rub("100")]);
        let mut stray = campaign(&plan.lines[0], rub("1"), rub("1"));
        stray.plan_line_id = Uuid::from_u128(999);
        assert!(matches!(deal_summary(&plan, &[stray]), Err(RuleError::UnknownPlanLine { .. })));
    }

    #[test]
    fn spend_in_another_currency_is_refused() {
        let plan = plan(PlanStatus::Approved, &[rub("100")]);
        let foreign = campaign(&plan.lines[0], rub("100"), usd("1"));
        assert!(matches!(deal_summary(&plan, &[foreign]), Err(RuleError::Money(_))));
    }
}
