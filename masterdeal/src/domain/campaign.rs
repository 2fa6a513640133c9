//! Campaigns: what actually runs on an ad platform for one plan line, and the daily stats
//! the platform reports back.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Currency, Money, MoneyError, Period};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    pub id: Uuid,
    pub deal_id: Uuid,
    /// The media plan line this campaign delivers.
    pub plan_line_id: Uuid,
    pub platform: String,
    /// Set once the platform has created the campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_campaign_id: Option<String>,
    pub status: CampaignStatus,
    pub flight: Period,
    pub budget: Money,
    pub spend: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    Draft,
    /// Created on the platform as a shell (budget, dates); its ads, keywords and moderation
    /// are the platform's users' work.
    AwaitingCreatives,
    Active,
    Paused,
    Completed,
    Cancelled,
}

/// One day of a campaign as the platform reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignStats {
    pub campaign_id: Uuid,
    pub day: NaiveDate,
    pub impressions: u64,
    pub clicks: u64,
    pub spend: Money,
    pub conversions: u64,
}

/// Stats summed over days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollUp {
    pub impressions: u64,
    pub clicks: u64,
    pub spend: Money,
    pub conversions: u64,
}

/// Sums stats whose spend is all in `currency` (the campaign's); counts saturate rather
/// than wrap, since no real campaign comes near `u64::MAX` and a panic would lose the batch.
pub fn roll_up<'a>(
    currency: Currency,
    stats: impl IntoIterator<Item = &'a CampaignStats>,
) -> Result<RollUp, MoneyError> {
    stats.into_iter().try_fold(
        RollUp { impressions: 0, clicks: 0, spend: Money::zero(currency), conversions: 0 },
        |acc, day| {
            Ok(RollUp {
                impressions: acc.impressions.saturating_add(day.impressions),
                clicks: acc.clicks.saturating_add(day.clicks),
                spend: acc.spend.checked_add(day.spend)?,
                conversions: acc.conversions.saturating_add(day.conversions),
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_support::{day, rub, stats, usd};

    #[test]
    fn roll_up_sums_every_column_exactly() {
        let id = Uuid::nil();
        let days = [stats(id, "2025-03-01", "0.1"), stats(id, "2025-03-02", "0.2")];
        let total = roll_up(Currency::RUB, &days).expect("all RUB");
        assert_eq!(total, RollUp { impressions: 2000, clicks: 20, spend: rub("0.3"), conversions: 2 });
    }

    #[test]
    fn roll_up_of_nothing_is_zero() {
        let total = roll_up(Currency::RUB, &[]).expect("empty");
        assert_eq!(total.spend, rub("0"));
        assert_eq!(total.impressions, 0);
    }

    #[test]
    fn roll_up_refuses_mixed_currencies() {
        let mut other = stats(Uuid::nil(), "2025-03-01", "1");
        other.spend = usd("1");
        assert!(roll_up(Currency::RUB, [&other]).is_err());
        assert_eq!(other.day, day("2025-03-01"));
    }
}
