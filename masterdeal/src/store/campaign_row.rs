//! A `campaign` row with its `campaign_stats` days, as stored and as its events carry it.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::MasterDealStoreError;
use super::columns::Columns;
use crate::domain::CampaignStatus;

pub(super) const CAMPAIGN_COLUMNS: &str = "id, deal_id, media_plan_line_id, platform, platform_campaign_id, name, \
     status, flight_from, flight_to, CAST(budget AS TEXT) AS budget, CAST(spend AS TEXT) AS spend, currency, \
     version, created_at, updated_at";

pub(super) const STATS_COLUMNS: &str =
    "campaign_id, day, impressions, clicks, CAST(spend AS TEXT) AS spend, conversions, updated_at";

/// A campaign with its daily stats in day order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignRow {
    pub id: Uuid,
    /// The deal of the line's plan.
    pub deal_id: Uuid,
    pub media_plan_line_id: Uuid,
    pub platform: String,
    /// The campaign's id on its platform, once it has one; unique per platform.
    pub platform_campaign_id: Option<String>,
    pub name: String,
    pub status: CampaignStatus,
    pub flight_from: NaiveDate,
    pub flight_to: NaiveDate,
    pub budget: Decimal,
    /// The sum of the daily stats' spend, kept in step by `record_campaign_stats`.
    pub spend: Decimal,
    /// The plan's currency, which budget, spend and stats are in.
    pub currency: String,
    /// 1 on creation, one more on every write: the token of optimistic concurrency.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub stats: Vec<DayStatsRow>,
}

/// One day of a campaign as its platform reported it last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayStatsRow {
    pub campaign_id: Uuid,
    pub day: NaiveDate,
    pub impressions: i64,
    pub clicks: i64,
    /// In the campaign's currency.
    pub spend: Decimal,
    pub conversions: i64,
    pub updated_at: DateTime<Utc>,
}

/// The campaign without its stats, which the caller reads next.
pub(super) fn decode_campaign(row: &AnyRow) -> Result<CampaignRow, MasterDealStoreError> {
    let c = Columns::new(row, "campaign");
    Ok(CampaignRow {
        id: c.uuid("id")?,
        deal_id: c.uuid("deal_id")?,
        media_plan_line_id: c.uuid("media_plan_line_id")?,
        platform: c.text("platform")?,
        platform_campaign_id: c.get("platform_campaign_id")?,
        name: c.text("name")?,
        status: c.variant("status")?,
        flight_from: c.date("flight_from")?,
        flight_to: c.date("flight_to")?,
        budget: c.decimal("budget")?,
        spend: c.decimal("spend")?,
        currency: c.text("currency")?,
        version: c.get("version")?,
        created_at: c.time("created_at")?,
        updated_at: c.time("updated_at")?,
        stats: Vec::new(),
    })
}

pub(super) fn decode_stats(row: &AnyRow, campaign_id: Uuid) -> Result<DayStatsRow, MasterDealStoreError> {
    let c = Columns::keyed(row, "campaign stats of", campaign_id.to_string());
    Ok(DayStatsRow {
        campaign_id: c.uuid("campaign_id")?,
        day: c.date("day")?,
        impressions: c.get("impressions")?,
        clicks: c.get("clicks")?,
        spend: c.decimal("spend")?,
        conversions: c.get("conversions")?,
        updated_at: c.time("updated_at")?,
    })
}
