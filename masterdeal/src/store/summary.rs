//! A deal's approved budget against its campaigns' spend, per channel and in total.

use junction_engine::store::Store;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{MasterDealStoreError, list_campaigns, plans, to_domain};
use crate::domain::{Campaign, Money, RuleError, deal_summary as summarize};

/// What a dashboard shows of a deal; money in the plan's currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealSummary {
    pub deal_id: Uuid,
    /// The approved plan the budget comes from.
    pub media_plan_id: Uuid,
    pub currency: String,
    /// In the order channels first appear in the plan.
    pub channels: Vec<ChannelSummaryRow>,
    pub budget: Decimal,
    pub spend: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSummaryRow {
    pub channel: String,
    pub budget: Decimal,
    pub spend: Decimal,
}

/// The approved plan's budget and the campaigns' spend per channel, plus totals.
/// `NotFound` when the deal has no approved plan.
pub async fn deal_summary(store: &Store, deal_id: Uuid) -> Result<DealSummary, MasterDealStoreError> {
    let plan = plans::approved_plan(store, deal_id)
        .await?
        .ok_or_else(|| MasterDealStoreError::not_found("approved media plan of deal", deal_id))?;
    let domain_plan = to_domain::plan(&plan)?;
    let campaigns =
        list_campaigns(store, deal_id).await?.iter().map(to_domain::campaign).collect::<Result<Vec<Campaign>, _>>()?;
    let channels = summarize(&domain_plan, &campaigns)?;
    let currency = to_domain::currency("media plan", &plan.id.to_string(), &plan.currency)?;
    let spend = Money::sum(currency, campaigns.iter().map(|c| c.spend)).map_err(RuleError::from)?;
    Ok(DealSummary {
        deal_id,
        media_plan_id: plan.id,
        currency: plan.currency,
        channels: channels
            .into_iter()
            .map(|c| ChannelSummaryRow { channel: c.channel, budget: c.budget.amount, spend: c.spend.amount })
            .collect(),
        budget: plan.total,
        spend: spend.amount,
    })
}
