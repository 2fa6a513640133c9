//! The `campaign` repository: campaigns upserted by their platform id, each checked against
//! its line of the deal's approved plan. Every write appends its outbox event in its
//! transaction. Their stats are in `stats`.

use junction_engine::store::Store;
use sqlx::{AnyConnection, AssertSqlSafe};
use uuid::Uuid;

use super::campaign_row::{CAMPAIGN_COLUMNS, STATS_COLUMNS, decode_campaign, decode_stats};
pub use super::campaign_row::{CampaignRow, DayStatsRow};
use super::columns::wire_name;
use super::versioned::{Expected, check, why_not_updated};
use super::{MasterDealStoreError, PlanRow, begin, money, now_millis, outbox, plans, to_domain};
use crate::domain::{Campaign, CampaignStatus, Lifecycle, Money, Period, PlanStatus, RuleError, campaign_within_line};

const AGGREGATE: &str = "campaign";
const WHAT: &str = "campaign";

/// A campaign as a manager or a platform sync writes it; its spend comes from its stats.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    /// A line of the deal's approved plan; the campaign takes its deal and currency.
    pub media_plan_line_id: Uuid,
    pub platform: String,
    /// With it the campaign is upserted by (platform, platform_campaign_id); without it a
    /// new campaign is created every time.
    pub platform_campaign_id: Option<String>,
    pub name: String,
    pub status: CampaignStatus,
    pub flight: Period,
    pub budget: Money,
}

/// Creates the campaign (version 1, `masterdeal.campaign.created`) or overwrites the one with
/// its platform id (version + 1, `masterdeal.campaign.updated`); `true` when created.
/// `expected` says which version of an existing one may be changed ([`Expected`]). Its budget
/// and flight must fit its line.
pub async fn upsert_campaign(
    store: &Store,
    campaign: NewCampaign,
    expected: Expected,
) -> Result<(CampaignRow, bool), MasterDealStoreError> {
    const OP: &str = "upsert_campaign";
    let mut tx = begin(store, OP).await?;
    let plan = plans::plan_of_line_in(&mut tx, campaign.media_plan_line_id)
        .await?
        .ok_or_else(|| MasterDealStoreError::not_found("media plan line", campaign.media_plan_line_id))?;
    let existing = match &campaign.platform_campaign_id {
        Some(key) => by_platform_id_in(&mut tx, &campaign.platform, key).await?,
        None => None,
    };
    check_against_line(&plan, &campaign, existing.as_ref())?;
    let (id, created) = match existing {
        Some(existing) => {
            let expected = match expected {
                Expected::Version(v) => v,
                Expected::AnyVersion => existing.version,
                Expected::New => {
                    let (id, actual) = (existing.id.to_string(), existing.version);
                    return Err(MasterDealStoreError::VersionRequired { what: WHAT, id, actual });
                }
            };
            check(WHAT, existing.id, expected, existing.version)?;
            update(store, &mut tx, existing.id, expected, plan.deal_id, &campaign).await?;
            (existing.id, false)
        }
        None if matches!(expected, Expected::Version(_)) => {
            let key = campaign.platform_campaign_id.as_deref().unwrap_or("(no platform id)");
            return Err(MasterDealStoreError::not_found("campaign", format!("{}:{key}", campaign.platform)));
        }
        None => (insert(store, &mut tx, plan.deal_id, &campaign).await?, true),
    };
    let row = campaign_in(&mut tx, id).await?.ok_or_else(|| MasterDealStoreError::not_found(WHAT, id))?;
    let event = if created { "masterdeal.campaign.created" } else { "masterdeal.campaign.updated" };
    outbox::append(&mut tx, AGGREGATE, id, event, &row).await?;
    tx.commit().await.map_err(MasterDealStoreError::query(OP))?;
    Ok((row, created))
}

/// Campaigns run on the approved plan only, inside their line's budget and flight.
fn check_against_line(
    plan: &PlanRow,
    campaign: &NewCampaign,
    existing: Option<&CampaignRow>,
) -> Result<(), MasterDealStoreError> {
    let domain_plan = to_domain::plan(plan)?;
    let line_id = campaign.media_plan_line_id;
    if plan.status != PlanStatus::Approved {
        let status = plan.status.as_str();
        return Err(RuleError::LineNotApproved { line: line_id, number: domain_plan.version, status }.into());
    }
    let line = domain_plan.line(line_id).ok_or_else(|| MasterDealStoreError::not_found("media plan line", line_id))?;
    let currency = line.budget.currency;
    let domain = Campaign {
        id: existing.map_or_else(Uuid::nil, |e| e.id),
        deal_id: plan.deal_id,
        plan_line_id: line_id,
        platform: campaign.platform.clone(),
        platform_campaign_id: campaign.platform_campaign_id.clone(),
        status: campaign.status,
        flight: campaign.flight,
        budget: campaign.budget,
        spend: Money::new(existing.map_or_else(Default::default, |e| e.spend), currency),
    };
    campaign_within_line(&domain, line)?;
    Ok(())
}

async fn insert(
    store: &Store,
    conn: &mut AnyConnection,
    deal_id: Uuid,
    c: &NewCampaign,
) -> Result<Uuid, MasterDealStoreError> {
    let id = Uuid::now_v7();
    let sql = format!(
        "INSERT INTO campaign (id, deal_id, media_plan_line_id, platform, platform_campaign_id, name, \
         status, flight_from, flight_to, budget, currency, created_at, spend, version, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, {}, $11, $12, {}, 1, $12) \
         ON CONFLICT (platform, platform_campaign_id) DO NOTHING RETURNING id",
        money(store, 10),
        money(store, 13)
    );
    let inserted = sqlx::query(AssertSqlSafe(sql))
        .bind(id.to_string())
        .bind(deal_id.to_string())
        .bind(c.media_plan_line_id.to_string())
        .bind(c.platform.clone())
        .bind(c.platform_campaign_id.clone())
        .bind(c.name.clone())
        .bind(wire_name(c.status))
        .bind(c.flight.from().to_string())
        .bind(c.flight.to().to_string())
        .bind(c.budget.amount.to_string())
        .bind(c.budget.currency.code().to_owned())
        .bind(now_millis())
        .bind("0".to_owned())
        .fetch_optional(conn)
        .await
        .map_err(MasterDealStoreError::query("upsert_campaign insert"))?;
    // Someone created this platform id since we looked: a retry updates theirs.
    inserted.map(|_| id).ok_or_else(|| MasterDealStoreError::Raced {
        what: "campaign with platform id",
        key: c.platform_campaign_id.clone().unwrap_or_default(),
    })
}

async fn update(
    store: &Store,
    conn: &mut AnyConnection,
    id: Uuid,
    expected: i64,
    deal_id: Uuid,
    c: &NewCampaign,
) -> Result<(), MasterDealStoreError> {
    let sql = format!(
        "UPDATE campaign SET deal_id = $3, media_plan_line_id = $4, name = $5, status = $6, \
         flight_from = $7, flight_to = $8, budget = {}, currency = $10, version = version + 1, \
         updated_at = $11 WHERE id = $1 AND version = $2 RETURNING id",
        money(store, 9)
    );
    let updated = sqlx::query(AssertSqlSafe(sql))
        .bind(id.to_string())
        .bind(expected)
        .bind(deal_id.to_string())
        .bind(c.media_plan_line_id.to_string())
        .bind(c.name.clone())
        .bind(wire_name(c.status))
        .bind(c.flight.from().to_string())
        .bind(c.flight.to().to_string())
        .bind(c.budget.amount.to_string())
        .bind(c.budget.currency.code().to_owned())
        .bind(now_millis())
        .fetch_optional(&mut *conn)
        .await
        .map_err(MasterDealStoreError::query("upsert_campaign update"))?;
    match updated {
        Some(_) => Ok(()),
        None => Err(why_not_updated(conn, "campaign", WHAT, id, expected).await?),
    }
}

pub async fn get_campaign(store: &Store, id: Uuid) -> Result<Option<CampaignRow>, MasterDealStoreError> {
    let mut conn = store.pool().acquire().await.map_err(MasterDealStoreError::query("get_campaign"))?;
    campaign_in(&mut conn, id).await
}

/// The deal's campaigns in creation order, each with its stats.
pub async fn list_campaigns(store: &Store, deal_id: Uuid) -> Result<Vec<CampaignRow>, MasterDealStoreError> {
    let mut conn = store.pool().acquire().await.map_err(MasterDealStoreError::query("list_campaigns"))?;
    campaigns_where(&mut conn, "deal_id = $1 ORDER BY id", &[deal_id.to_string()]).await
}

pub(super) async fn campaign_in(
    conn: &mut AnyConnection,
    id: Uuid,
) -> Result<Option<CampaignRow>, MasterDealStoreError> {
    Ok(campaigns_where(conn, "id = $1", &[id.to_string()]).await?.pop())
}

/// The campaign the platform knows by this id, if it is one of ours.
pub async fn campaign_by_platform_id(
    store: &Store,
    platform: &str,
    platform_campaign_id: &str,
) -> Result<Option<CampaignRow>, MasterDealStoreError> {
    let mut conn = store.pool().acquire().await.map_err(MasterDealStoreError::query("campaign_by_platform_id"))?;
    by_platform_id_in(&mut conn, platform, platform_campaign_id).await
}

/// The platform's campaigns that it runs and may still change (created there, neither
/// completed nor cancelled), for a poll of their status.
pub async fn open_campaigns(store: &Store, platform: &str) -> Result<Vec<CampaignRow>, MasterDealStoreError> {
    let mut conn = store.pool().acquire().await.map_err(MasterDealStoreError::query("open_campaigns"))?;
    let condition = "platform = $1 AND platform_campaign_id IS NOT NULL \
                     AND status NOT IN ('completed', 'cancelled') ORDER BY id";
    campaigns_where(&mut conn, condition, &[platform.to_owned()]).await
}

async fn by_platform_id_in(
    conn: &mut AnyConnection,
    platform: &str,
    platform_campaign_id: &str,
) -> Result<Option<CampaignRow>, MasterDealStoreError> {
    let keys = [platform.to_owned(), platform_campaign_id.to_owned()];
    Ok(campaigns_where(conn, "platform = $1 AND platform_campaign_id = $2", &keys).await?.pop())
}

/// Campaigns matching `condition` (our SQL, `$1`… bound to `keys`), each with its stats.
async fn campaigns_where(
    conn: &mut AnyConnection,
    condition: &'static str,
    keys: &[String],
) -> Result<Vec<CampaignRow>, MasterDealStoreError> {
    const OP: &str = "read campaigns";
    let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM campaign WHERE {condition}");
    let query = keys.iter().fold(sqlx::query(AssertSqlSafe(sql)), |q, key| q.bind(key.clone()));
    let rows = query.fetch_all(&mut *conn).await.map_err(MasterDealStoreError::query(OP))?;
    let mut campaigns = rows.iter().map(decode_campaign).collect::<Result<Vec<_>, _>>()?;
    for campaign in &mut campaigns {
        campaign.stats = stats_in(conn, campaign.id).await?;
    }
    Ok(campaigns)
}

pub(super) async fn stats_in(conn: &mut AnyConnection, id: Uuid) -> Result<Vec<DayStatsRow>, MasterDealStoreError> {
    let sql = format!("SELECT {STATS_COLUMNS} FROM campaign_stats WHERE campaign_id = $1 ORDER BY day");
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_all(conn)
        .await
        .map_err(MasterDealStoreError::query("read campaign stats"))?;
    rows.iter().map(|row| decode_stats(row, id)).collect()
}
