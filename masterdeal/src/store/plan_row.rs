//! A `media_plan` row with its `media_plan_line` rows, as stored and as its events carry it.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::MasterDealStoreError;
use super::columns::Columns;
use crate::domain::PlanStatus;

/// Money is read as text: see `DEAL_COLUMNS`.
pub(super) const PLAN_COLUMNS: &str = "id, deal_id, number, status, source, prompt_template_version, model, \
     CAST(total AS TEXT) AS total, currency, version, created_at, updated_at";

pub(super) const LINE_COLUMNS: &str = "id, media_plan_id, position, channel, platform, format, flight_from, \
     flight_to, CAST(budget AS TEXT) AS budget, impressions, clicks, reach, CAST(cpm AS TEXT) AS cpm, \
     CAST(ctr AS TEXT) AS ctr";

/// A media plan with its lines in position order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRow {
    pub id: Uuid,
    pub deal_id: Uuid,
    /// 1, 2, 3… within the deal, in order of creation.
    pub number: i64,
    pub status: PlanStatus,
    /// `manual` or `llm`.
    pub source: String,
    /// The prompt template an `llm` plan was drafted with, so it can be reproduced.
    pub prompt_template_version: Option<String>,
    pub model: Option<String>,
    /// The sum of the line budgets, in `currency` (the deal's).
    pub total: Decimal,
    pub currency: String,
    /// 1 on creation, one more on every write: the token of optimistic concurrency.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub lines: Vec<PlanLineRow>,
}

/// One line of a plan: a channel's budget on one platform and format over a flight, with
/// the KPIs it promises. Its budget is in the plan's currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanLineRow {
    pub id: Uuid,
    pub media_plan_id: Uuid,
    /// 1, 2, 3… within the plan.
    pub position: i64,
    pub channel: String,
    pub platform: String,
    pub format: String,
    pub flight_from: NaiveDate,
    pub flight_to: NaiveDate,
    pub budget: Decimal,
    pub impressions: Option<i64>,
    pub clicks: Option<i64>,
    pub reach: Option<i64>,
    pub cpm: Option<Decimal>,
    pub ctr: Option<Decimal>,
}

/// The plan without its lines, which the caller reads next.
pub(super) fn decode_plan(row: &AnyRow) -> Result<PlanRow, MasterDealStoreError> {
    let c = Columns::new(row, "media plan");
    Ok(PlanRow {
        id: c.uuid("id")?,
        deal_id: c.uuid("deal_id")?,
        number: c.get("number")?,
        status: c.variant("status")?,
        source: c.text("source")?,
        prompt_template_version: c.get("prompt_template_version")?,
        model: c.get("model")?,
        total: c.decimal("total")?,
        currency: c.text("currency")?,
        version: c.get("version")?,
        created_at: c.time("created_at")?,
        updated_at: c.time("updated_at")?,
        lines: Vec::new(),
    })
}

pub(super) fn decode_line(row: &AnyRow) -> Result<PlanLineRow, MasterDealStoreError> {
    let c = Columns::new(row, "media plan line");
    Ok(PlanLineRow {
        id: c.uuid("id")?,
        media_plan_id: c.uuid("media_plan_id")?,
        position: c.get("position")?,
        channel: c.text("channel")?,
        platform: c.text("platform")?,
        format: c.text("format")?,
        flight_from: c.date("flight_from")?,
        flight_to: c.date("flight_to")?,
        budget: c.decimal("budget")?,
        impressions: c.get("impressions")?,
        clicks: c.get("clicks")?,
        reach: c.get("reach")?,
        cpm: c.decimal_opt("cpm")?,
        ctr: c.decimal_opt("ctr")?,
    })
}
