//! `upsert_contract` (by number, checked against the approved plan) and `transition_contract`.

use crate::store::{Expected, MasterDealStoreError};
use std::collections::BTreeMap;

use chrono::NaiveDate;
use junction_engine::store::Store;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::{TransitionIn, decimal, input, rejected, reply, upsert_reply};
use crate::domain::{ContractStatus, Currency, Money, PaymentStatus};
use crate::store::{self, NewContract};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContractIn {
    deal_id: Uuid,
    number: String,
    date: NaiveDate,
    amount: Value,
    currency: String,
    amount_override_reason: Option<String>,
    #[serde(default)]
    billing_ids: BTreeMap<String, String>,
    #[serde(default = "unpaid")]
    payment_status: PaymentStatus,
    /// When given, the contract must exist at this version.
    expected_version: Option<i64>,
}

fn unpaid() -> PaymentStatus {
    PaymentStatus::Unpaid
}

/// `absent`: what an input without `expected_version` may do to an existing contract.
pub(crate) async fn upsert_contract(
    store: &Store,
    body: &Value,
    absent: Expected,
) -> Result<Value, MasterDealStoreError> {
    let q: ContractIn = input(body)?;
    let currency = Currency::parse(&q.currency).map_err(rejected)?;
    let contract = NewContract {
        deal_id: q.deal_id,
        number: q.number,
        date: q.date,
        amount: Money::new(decimal("amount", &q.amount)?, currency),
        amount_override_reason: q.amount_override_reason,
        billing_ids: q.billing_ids,
        payment_status: q.payment_status,
    };
    let (row, created) = store::upsert_contract(store, contract, Expected::or(q.expected_version, absent)).await?;
    Ok(upsert_reply(&row, created))
}

pub(crate) async fn transition_contract(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let q: TransitionIn<ContractStatus> = input(body)?;
    let row = store::transition_contract(store, q.id, q.expected_version, q.to).await?;
    Ok(reply(&row))
}
