//! A campaign's daily stats: each batch replaces the days it reports, and the campaign's
//! spend is re-summed from all its days in the same transaction, so the two never disagree.

use chrono::NaiveDate;
use junction_engine::store::Store;
use rust_decimal::Decimal;
use sqlx::{AnyConnection, AssertSqlSafe};
use uuid::Uuid;

use super::campaigns::{campaign_in, stats_in};
use super::{CampaignRow, MasterDealStoreError, begin, money, now_millis, outbox, to_domain};
use crate::domain::{CampaignStats, Currency, Money, MoneyError, RuleError, roll_up};

/// One day as the platform reports it; spend in the campaign's currency.
#[derive(Debug, Clone)]
pub struct NewDayStats {
    pub day: NaiveDate,
    pub impressions: u64,
    pub clicks: u64,
    pub spend: Money,
    pub conversions: u64,
}

/// Upserts these days (a day reported again replaces the old one), sets the campaign's
/// spend to the sum of all its days and bumps its version. Event
/// `masterdeal.campaign.stats_recorded`: the campaign row without its `stats`, plus `days`,
/// the days of this batch; and `masterdeal.campaign.overspend` (the same, plus `overspend`,
/// the spend over budget) when this batch took the spend over the campaign's budget (its
/// plan line's share).
pub async fn record_campaign_stats(
    store: &Store,
    campaign_id: Uuid,
    days: Vec<NewDayStats>,
) -> Result<CampaignRow, MasterDealStoreError> {
    const OP: &str = "record_campaign_stats";
    if days.is_empty() {
        return Err(MasterDealStoreError::Invalid("a stats batch needs at least one day".to_owned()));
    }
    let mut tx = begin(store, OP).await?;
    // Written first: the row lock makes a concurrent batch for this campaign wait, so each
    // batch's sum sees every day committed before it.
    // It also says what the campaign had spent before this batch (the row's spend, unchanged
    // by this statement).
    let locked: Option<(String, String)> = sqlx::query_as(
        "UPDATE campaign SET version = version + 1, updated_at = $2 WHERE id = $1 \
         RETURNING currency, CAST(spend AS TEXT)",
    )
    .bind(campaign_id.to_string())
    .bind(now_millis())
    .fetch_optional(&mut *tx)
    .await
    .map_err(MasterDealStoreError::query(OP))?;
    let (currency, spent_before) = locked.ok_or_else(|| MasterDealStoreError::not_found("campaign", campaign_id))?;
    let currency = to_domain::currency("campaign", &campaign_id.to_string(), &currency)?;
    let spent_before: Decimal = spent_before
        .parse()
        .map_err(|e| MasterDealStoreError::corrupt("campaign", &campaign_id.to_string(), format!("spend: {e}")))?;
    for day in &days {
        upsert_day(store, &mut tx, campaign_id, currency, day).await?;
    }
    let spend = spend_of(&mut tx, campaign_id, currency).await?;
    let sql = format!("UPDATE campaign SET spend = {} WHERE id = $1", money(store, 2));
    sqlx::query(AssertSqlSafe(sql))
        .bind(campaign_id.to_string())
        .bind(spend.to_string())
        .execute(&mut *tx)
        .await
        .map_err(MasterDealStoreError::query(OP))?;
    let row = campaign_in(&mut tx, campaign_id)
        .await?
        .ok_or_else(|| MasterDealStoreError::not_found("campaign", campaign_id))?;
    let mut payload = serde_json::to_value(&row).expect("a campaign row always serializes to JSON");
    let recorded: Vec<_> = row.stats.iter().filter(|s| days.iter().any(|d| d.day == s.day)).collect();
    payload["days"] = serde_json::to_value(recorded).expect("stats rows always serialize to JSON");
    if let Some(fields) = payload.as_object_mut() {
        fields.remove("stats");
    }
    outbox::append(&mut tx, "campaign", campaign_id, "masterdeal.campaign.stats_recorded", &payload).await?;
    // Crossing its budget is news once: the batch that crossed it raises the event, later
    // ones (and this one sent again) do not.
    if spent_before <= row.budget && row.spend > row.budget {
        let mut payload = payload;
        payload["overspend"] = serde_json::Value::String((row.spend - row.budget).to_string());
        outbox::append(&mut tx, "campaign", campaign_id, "masterdeal.campaign.overspend", &payload).await?;
    }
    tx.commit().await.map_err(MasterDealStoreError::query(OP))?;
    Ok(row)
}

async fn upsert_day(
    store: &Store,
    conn: &mut AnyConnection,
    campaign_id: Uuid,
    currency: Currency,
    day: &NewDayStats,
) -> Result<(), MasterDealStoreError> {
    if day.spend.currency != currency {
        let mismatch = MoneyError::CurrencyMismatch { left: currency, right: day.spend.currency };
        return Err(RuleError::from(mismatch).into());
    }
    let count = |name: &str, n: u64| {
        i64::try_from(n).map_err(|_| MasterDealStoreError::Invalid(format!("{}: {name} {n} is too large", day.day)))
    };
    let sql = format!(
        "INSERT INTO campaign_stats (campaign_id, day, impressions, clicks, spend, conversions, updated_at) \
         VALUES ($1, $2, $3, $4, {}, $6, $7) \
         ON CONFLICT (campaign_id, day) DO UPDATE SET impressions = excluded.impressions, \
         clicks = excluded.clicks, spend = excluded.spend, conversions = excluded.conversions, \
         updated_at = excluded.updated_at",
        money(store, 5)
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(campaign_id.to_string())
        .bind(day.day.to_string())
        .bind(count("impressions", day.impressions)?)
        .bind(count("clicks", day.clicks)?)
        .bind(day.spend.amount.to_string())
        .bind(count("conversions", day.conversions)?)
        .bind(now_millis())
        .execute(conn)
        .await
        .map_err(MasterDealStoreError::query("record_campaign_stats day"))?;
    Ok(())
}

/// The spend of all the campaign's days, summed by the domain's roll-up.
async fn spend_of(conn: &mut AnyConnection, id: Uuid, currency: Currency) -> Result<Decimal, MasterDealStoreError> {
    let corrupt = |e: std::num::TryFromIntError| MasterDealStoreError::corrupt("campaign stats of", &id.to_string(), e);
    let days = stats_in(conn, id)
        .await?
        .into_iter()
        .map(|s| {
            Ok(CampaignStats {
                campaign_id: s.campaign_id,
                day: s.day,
                impressions: u64::try_from(s.impressions).map_err(corrupt)?,
                clicks: u64::try_from(s.clicks).map_err(corrupt)?,
                spend: Money::new(s.spend, currency),
                conversions: u64::try_from(s.conversions).map_err(corrupt)?,
            })
        })
        .collect::<Result<Vec<_>, MasterDealStoreError>>()?;
    Ok(roll_up(currency, &days).map_err(RuleError::from)?.spend.amount)
}
