//! A `master_deal` row as stored, and its decoding from the `Any` driver's row.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::MasterDealStoreError;
use crate::domain::DealStatus;

/// The columns every deal query returns. The budget is read as text: the `Any` driver has
/// no decimal type, and text keeps every digit on both backends.
pub(super) const DEAL_COLUMNS: &str = "id, crm_id, external_ids, advertiser_name, advertiser_inn, \
     advertiser_kpp, owner, title, CAST(budget AS TEXT) AS budget, currency, period_from, \
     period_to, status, version, created_at, updated_at";

/// A master deal as stored; also the payload of its outbox events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealRow {
    /// A uuid v7: ids sort by creation time, which keyset paging relies on.
    pub id: Uuid,
    pub crm_id: String,
    /// The deal's ids in other systems, by system name.
    pub external_ids: BTreeMap<String, String>,
    pub advertiser_name: String,
    pub advertiser_inn: String,
    pub advertiser_kpp: Option<String>,
    pub owner: String,
    pub title: String,
    pub budget: Decimal,
    /// ISO 4217, three letters.
    pub currency: String,
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    pub status: DealStatus,
    /// 1 on creation, one more on every write: the token of optimistic concurrency.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(super) fn decode(row: &AnyRow) -> Result<DealRow, MasterDealStoreError> {
    let id: String = column(row, "id", "?")?;
    let corrupt = |reason: String| MasterDealStoreError::corrupt("master deal", &id, reason);
    let text = |name: &str| column::<String>(row, name, &id);
    let date = |name: &str| {
        let raw = text(name)?;
        raw.parse::<NaiveDate>().map_err(|e| corrupt(format!("{name} `{raw}`: {e}")))
    };
    let time = |name: &str| {
        let millis: i64 = column(row, name, &id)?;
        DateTime::from_timestamp_millis(millis).ok_or_else(|| corrupt(format!("{name} {millis} is out of range")))
    };
    let budget = text("budget")?;
    Ok(DealRow {
        id: id.parse().map_err(|e| corrupt(format!("id: {e}")))?,
        crm_id: text("crm_id")?,
        external_ids: serde_json::from_str(&text("external_ids")?)
            .map_err(|e| corrupt(format!("external_ids: {e}")))?,
        advertiser_name: text("advertiser_name")?,
        advertiser_inn: text("advertiser_inn")?,
        advertiser_kpp: column(row, "advertiser_kpp", &id)?,
        owner: text("owner")?,
        title: text("title")?,
        budget: budget.parse().map_err(|e| corrupt(format!("budget `{budget}`: {e}")))?,
        currency: text("currency")?,
        period_from: date("period_from")?,
        period_to: date("period_to")?,
        status: {
            let raw = text("status")?;
            serde_json::from_value(serde_json::Value::String(raw.clone()))
                .map_err(|e| corrupt(format!("status `{raw}`: {e}")))?
        },
        version: column(row, "version", &id)?,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
    })
}

fn column<'r, T>(row: &'r AnyRow, name: &str, id: &str) -> Result<T, MasterDealStoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(name).map_err(|e| MasterDealStoreError::corrupt("master deal", id, format!("{name}: {e}")))
}
