//! The four operations: each reads its JSON input, checks it with `domain`, and calls the
//! store. Input the domain refuses is a fatal error saying why: retrying cannot fix it.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::NaiveDate;
use junction_engine::connector::ConnectorError;
use junction_engine::store::Store;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use super::store_error;
use crate::domain::{Currency, DealStatus, Inn, Kpp, Lifecycle, transition as check_transition};
use crate::store::{self, DealFilter, DealRow, MasterDealStoreError, NewDeal};

/// Stands in for a missing owner: the column is required, the CRM field is not.
const NO_OWNER: &str = "unassigned";
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// A master deal as `transforms/crm_deal_to_master_deal.rhai` makes it. `channels` and
/// `source` are accepted but not stored yet.
#[derive(Deserialize)]
struct MasterDealIn {
    /// `<system>:<id>`, e.g. `crm:D-100245`; the id is the deal's CRM id.
    external_id: String,
    name: String,
    advertiser: AdvertiserIn,
    owner: Option<String>,
    amount: Option<Value>,
    currency: String,
    /// Preferred over `amount` when both are present.
    budget: Option<Value>,
    status: DealStatus,
    /// The deal's dates; the day it arrives when the CRM sends none.
    period: Option<PeriodIn>,
}

#[derive(Deserialize)]
struct AdvertiserIn {
    name: String,
    inn: String,
    kpp: Option<String>,
}

#[derive(Deserialize)]
struct PeriodIn {
    from: NaiveDate,
    to: NaiveDate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetIn {
    id: Uuid,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListIn {
    status: Option<String>,
    owner: Option<String>,
    after: Option<Uuid>,
    limit: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransitionIn {
    id: Uuid,
    to: DealStatus,
    expected_version: i64,
}

fn rejected(reason: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::rejected(format!("masterdeal rejected the request: {reason}"))
}

fn input<T: DeserializeOwned>(body: &Value) -> Result<T, ConnectorError> {
    T::deserialize(body).map_err(rejected)
}

fn row_json(row: &DealRow) -> Value {
    serde_json::to_value(row).expect("a deal row always serializes to JSON")
}

pub(super) async fn upsert(store: &Store, body: &Value) -> Result<Value, ConnectorError> {
    let deal = new_deal(input(body)?)?;
    let (row, created) = store::upsert_by_crm_id(store, deal).await.map_err(store_error)?;
    let mut reply = row_json(&row);
    reply["created"] = Value::Bool(created);
    Ok(reply)
}

fn new_deal(deal: MasterDealIn) -> Result<NewDeal, ConnectorError> {
    let (system, crm_id) = deal
        .external_id
        .split_once(':')
        .filter(|(s, id)| !s.is_empty() && !id.is_empty())
        .ok_or_else(|| rejected(format!("external_id `{}` is not `<system>:<id>`", deal.external_id)))?;
    let currency = Currency::parse(&deal.currency).map_err(rejected)?;
    let inn = Inn::parse(&deal.advertiser.inn).map_err(rejected)?;
    let kpp = deal.advertiser.kpp.as_deref().map(Kpp::parse).transpose().map_err(rejected)?;
    let budget = deal.budget.or(deal.amount).ok_or_else(|| rejected("the deal has neither budget nor amount"))?;
    let budget = decimal(&budget)?;
    let today = chrono::Utc::now().date_naive();
    let (period_from, period_to) = deal.period.map_or((today, today), |p| (p.from, p.to));
    if period_from > period_to {
        return Err(rejected(format!("the period starts on {period_from}, after it ends on {period_to}")));
    }
    Ok(NewDeal {
        crm_id: crm_id.to_owned(),
        external_ids: BTreeMap::from([(system.to_owned(), crm_id.to_owned())]),
        advertiser_name: deal.advertiser.name,
        advertiser_inn: inn.as_str().to_owned(),
        advertiser_kpp: kpp.map(|k| k.as_str().to_owned()),
        owner: deal.owner.unwrap_or_else(|| NO_OWNER.to_owned()),
        title: deal.name,
        budget,
        currency: currency.code().to_owned(),
        period_from,
        period_to,
        status: deal.status.as_str().to_owned(),
    })
}

/// A JSON number or decimal string as an exact decimal.
fn decimal(value: &Value) -> Result<Decimal, ConnectorError> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => return Err(rejected(format!("the budget {other} is not a number"))),
    };
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|e| rejected(format!("the budget `{text}` is not a decimal: {e}")))
}

pub(super) async fn get(store: &Store, body: &Value) -> Result<Value, ConnectorError> {
    let GetIn { id } = input(body)?;
    match store::get(store, id).await.map_err(store_error)? {
        Some(row) => Ok(row_json(&row)),
        None => Err(rejected(MasterDealStoreError::NotFound { id: id.to_string() })),
    }
}

pub(super) async fn list(store: &Store, body: &Value) -> Result<Value, ConnectorError> {
    let q: ListIn = input(body)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let filter = DealFilter { status: q.status, owner: q.owner, after_id: q.after, limit: Some(limit) };
    let rows = store::list(store, &filter).await.map_err(store_error)?;
    // A full page may have more after it; a short one is the last.
    let next = rows.last().filter(|_| rows.len() == limit as usize).map(|r| r.id.to_string());
    Ok(json!({ "items": rows.iter().map(row_json).collect::<Vec<_>>(), "next": next }))
}

pub(super) async fn transition(store: &Store, body: &Value) -> Result<Value, ConnectorError> {
    let q: TransitionIn = input(body)?;
    let row = store::get(store, q.id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| rejected(MasterDealStoreError::NotFound { id: q.id.to_string() }))?;
    let from = DealStatus::deserialize(Value::String(row.status.clone()))
        .map_err(|e| ConnectorError::fatal(format!("master deal `{}` has status `{}`: {e}", row.id, row.status)))?;
    check_transition(from, q.to).map_err(rejected)?;
    match store::update_status(store, q.id, q.expected_version, q.to.as_str()).await {
        Ok(row) => Ok(row_json(&row)),
        Err(e @ MasterDealStoreError::Conflict { .. }) => Err(rejected(format!("stale version: {e}"))),
        Err(e @ MasterDealStoreError::NotFound { .. }) => Err(rejected(e)),
        Err(e) => Err(store_error(e)),
    }
}
