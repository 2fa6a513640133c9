//! `upsert_contract` (by number, checked against the approved plan), `transition_contract`,
//! and what billing says of a contract: `update_contract_billing`, `unpaid_contracts`.

use crate::store::{Expected, MasterDealStoreError};
use std::collections::BTreeMap;

use chrono::NaiveDate;
use junction_engine::store::Store;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::{TransitionIn, decimal, input, on_fresh_reads, rejected, reply, upsert_reply};
use crate::domain::{ContractStatus, Currency, Money, PaymentStatus};
use crate::store::{self, NewContract};
use serde_json::json;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BillingIn {
    id: Uuid,
    /// Added to the ids the contract has (`{"onec_invoice": "<Ref_Key>"}`).
    #[serde(default)]
    billing_ids: BTreeMap<String, String>,
    payment_status: Option<PaymentStatus>,
}

/// `{"id", "billing_ids"?, "payment_status"?}`: what billing says of the contract — its ids
/// there (added to those it has) and its payment status — at whatever version it is. Event
/// `masterdeal.contract.updated`; input that changes nothing writes nothing (a redelivery).
pub(crate) async fn update_contract_billing(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let q: BillingIn = input(body)?;
    on_fresh_reads("contract", q.id, || bill_once(store, &q)).await
}

/// One read of the contract, and its write at that version when billing says something new.
async fn bill_once(store: &Store, q: &BillingIn) -> Result<Value, MasterDealStoreError> {
    let row =
        store::get_contract(store, q.id).await?.ok_or_else(|| MasterDealStoreError::not_found("contract", q.id))?;
    let mut billing_ids = row.billing_ids.clone();
    billing_ids.extend(q.billing_ids.clone());
    let payment_status = q.payment_status.unwrap_or(row.payment_status);
    if billing_ids == row.billing_ids && payment_status == row.payment_status {
        return Ok(reply(&row));
    }
    let currency = Currency::parse(&row.currency).map_err(rejected)?;
    let contract = NewContract {
        deal_id: row.deal_id,
        number: row.number,
        date: row.date,
        amount: Money::new(row.amount, currency),
        amount_override_reason: row.amount_override_reason,
        billing_ids,
        payment_status,
    };
    let (row, _) = store::upsert_contract(store, contract, Expected::Version(row.version)).await?;
    Ok(reply(&row))
}

/// `{}`: signed contracts not yet paid in full, as `{items}`: what a poll of billing asks about.
pub(crate) async fn unpaid_contracts(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let _: NoArgs = input(body)?;
    let rows = store::unpaid_contracts(store).await?;
    Ok(json!({ "items": rows.iter().map(reply).collect::<Vec<_>>() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}
