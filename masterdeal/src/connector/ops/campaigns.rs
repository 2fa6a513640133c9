//! Campaigns: `upsert_campaign`, `open_campaigns` (for a poll of their status on the platform),
//! `record_campaign_stats` and `deal_summary`.

use chrono::NaiveDate;
use junction_engine::store::Store;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::{decimal, input, rejected, reply, upsert_reply};
use crate::domain::{CampaignStatus, Currency, Money, Period};
use crate::store::{self, Expected, MasterDealStoreError, NewCampaign, NewDayStats};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CampaignIn {
    media_plan_line_id: Uuid,
    platform: String,
    platform_campaign_id: Option<String>,
    name: String,
    #[serde(default = "draft")]
    status: CampaignStatus,
    flight_from: NaiveDate,
    flight_to: NaiveDate,
    budget: Value,
    /// The budget's currency; the plan's when absent.
    currency: Option<String>,
    /// When given, the campaign must exist at this version.
    expected_version: Option<i64>,
}

fn draft() -> CampaignStatus {
    CampaignStatus::Draft
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsIn {
    /// Ours; or the platform's id, with `platform`.
    campaign_id: Option<Uuid>,
    platform: Option<String>,
    platform_campaign_id: Option<String>,
    /// The spend's currency; the campaign's when absent.
    currency: Option<String>,
    days: Vec<DayIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DayIn {
    day: NaiveDate,
    #[serde(default)]
    impressions: u64,
    #[serde(default)]
    clicks: u64,
    spend: Value,
    #[serde(default)]
    conversions: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SummaryIn {
    deal_id: Uuid,
}

/// `absent`: what an input without `expected_version` may do to an existing campaign.
pub(crate) async fn upsert_campaign(
    store: &Store,
    body: &Value,
    absent: Expected,
) -> Result<Value, MasterDealStoreError> {
    let q: CampaignIn = input(body)?;
    let currency = match &q.currency {
        Some(code) => Currency::parse(code).map_err(rejected)?,
        None => store::currency_of_line(store, q.media_plan_line_id).await?,
    };
    let campaign = NewCampaign {
        media_plan_line_id: q.media_plan_line_id,
        platform: q.platform,
        platform_campaign_id: q.platform_campaign_id,
        name: q.name,
        status: q.status,
        flight: Period::new(q.flight_from, q.flight_to).map_err(rejected)?,
        budget: Money::new(decimal("budget", &q.budget)?, currency),
    };
    let (row, created) = store::upsert_campaign(store, campaign, Expected::or(q.expected_version, absent)).await?;
    Ok(upsert_reply(&row, created))
}

/// `{campaign_id, days}`, or `{platform, platform_campaign_id, days}` as the platform's
/// statistics name the campaign: the reply is the campaign, or `null` when none of ours has
/// that platform id (one made by hand on the platform), which a route filters out.
pub(crate) async fn record_campaign_stats(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let q: StatsIn = input(body)?;
    let campaign_id = match (q.campaign_id, &q.platform, &q.platform_campaign_id) {
        (Some(id), None, None) => id,
        (None, Some(platform), Some(platform_id)) => {
            match store::campaign_by_platform_id(store, platform, platform_id).await? {
                Some(campaign) => campaign.id,
                None => return Ok(Value::Null),
            }
        }
        _ => {
            return Err(rejected(
                "record_campaign_stats names its campaign by `campaign_id`, or by `platform` and `platform_campaign_id`",
            ));
        }
    };
    let currency = match &q.currency {
        Some(code) => Currency::parse(code).map_err(rejected)?,
        None => store::currency_of_campaign(store, campaign_id).await?,
    };
    let days = q
        .days
        .into_iter()
        .map(|d| {
            Ok(NewDayStats {
                day: d.day,
                impressions: d.impressions,
                clicks: d.clicks,
                spend: Money::new(decimal("spend", &d.spend)?, currency),
                conversions: d.conversions,
            })
        })
        .collect::<Result<_, MasterDealStoreError>>()?;
    let row = store::record_campaign_stats(store, campaign_id, days).await?;
    Ok(reply(&row))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlatformIn {
    platform: String,
}

/// `{"platform"}`: the platform's campaigns it runs and may still change, as `{items}`.
pub(crate) async fn open_campaigns(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let PlatformIn { platform } = input(body)?;
    let rows = store::open_campaigns(store, &platform).await?;
    Ok(serde_json::json!({ "items": rows.iter().map(reply).collect::<Vec<_>>() }))
}

pub(crate) async fn deal_summary(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let SummaryIn { deal_id } = input(body)?;
    let summary = store::deal_summary(store, deal_id).await?;
    Ok(reply(&summary))
}
