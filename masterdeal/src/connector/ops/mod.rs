//! The operations: each reads its JSON input, checks it with `domain`, and calls the store.
//! Input the domain refuses is rejected saying why: retrying cannot fix it.
//!
//! One file per aggregate: `deals`, `plans` (plans and proposals), `contracts`,
//! `campaigns` (campaigns, their stats and the deal summary).

mod campaigns;
mod contracts;
mod deals;
mod plans;

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::store::MasterDealStoreError;

pub(crate) use campaigns::{deal_summary, record_campaign_stats, upsert_campaign};
pub(crate) use contracts::{transition_contract, upsert_contract};
pub(crate) use deals::{create, get, list, transition, update_deal, upsert};
pub(crate) use plans::{
    add_media_plan, approve_media_plan, attach_proposal, transition_media_plan, transition_proposal,
};

/// A status change of any aggregate: `{"id", "to", "expected_version"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransitionIn<S> {
    id: Uuid,
    to: S,
    expected_version: i64,
}

/// Input that cannot be taken as it is, whatever is stored.
fn rejected(reason: impl std::fmt::Display) -> MasterDealStoreError {
    MasterDealStoreError::Invalid(reason.to_string())
}

fn input<T: DeserializeOwned>(body: &Value) -> Result<T, MasterDealStoreError> {
    T::deserialize(body).map_err(rejected)
}

/// A JSON number or decimal string as an exact decimal; `field` names it in the error.
fn decimal(field: &str, value: &Value) -> Result<Decimal, MasterDealStoreError> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => return Err(rejected(format!("the {field} {other} is not a number"))),
    };
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|e| rejected(format!("the {field} `{text}` is not a decimal: {e}")))
}

/// An optional [`decimal`].
fn decimal_opt(field: &str, value: Option<&Value>) -> Result<Option<Decimal>, MasterDealStoreError> {
    value.filter(|v| !v.is_null()).map(|v| decimal(field, v)).transpose()
}

/// A store row as the reply body.
fn reply(row: &impl Serialize) -> Value {
    serde_json::to_value(row).expect("store rows always serialize to JSON")
}

/// An upsert's reply: the row, and whether it was created.
fn upsert_reply(row: &impl Serialize, created: bool) -> Value {
    let mut reply = reply(row);
    reply["created"] = Value::Bool(created);
    reply
}
