//! A `contract` row: the contract signed for a deal, as stored and as its events carry it.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::MasterDealStoreError;
use super::columns::Columns;
use crate::domain::{ContractStatus, PaymentStatus};

pub(super) const CONTRACT_COLUMNS: &str = "id, deal_id, number, contract_date, CAST(amount AS TEXT) AS amount, \
     currency, amount_override_reason, status, billing_ids, payment_status, version, created_at, updated_at";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractRow {
    pub id: Uuid,
    pub deal_id: Uuid,
    /// Unique across deals: the contract's key for upserts.
    pub number: String,
    /// The contract's date.
    pub date: NaiveDate,
    pub amount: Decimal,
    pub currency: String,
    /// Why the amount differs from the approved plan's total; `None` when it does not.
    pub amount_override_reason: Option<String>,
    pub status: ContractStatus,
    /// The contract's ids in billing systems, by system name.
    pub billing_ids: BTreeMap<String, String>,
    pub payment_status: PaymentStatus,
    /// 1 on creation, one more on every write: the token of optimistic concurrency.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(super) fn decode(row: &AnyRow) -> Result<ContractRow, MasterDealStoreError> {
    let c = Columns::new(row, "contract");
    Ok(ContractRow {
        id: c.uuid("id")?,
        deal_id: c.uuid("deal_id")?,
        number: c.text("number")?,
        date: c.date("contract_date")?,
        amount: c.decimal("amount")?,
        currency: c.text("currency")?,
        amount_override_reason: c.get("amount_override_reason")?,
        status: c.variant("status")?,
        billing_ids: c.json("billing_ids")?,
        payment_status: c.variant("payment_status")?,
        version: c.get("version")?,
        created_at: c.time("created_at")?,
        updated_at: c.time("updated_at")?,
    })
}
