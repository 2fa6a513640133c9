//! The operations: each reads its JSON input, checks it with `domain`, and calls the store.
//! Input the domain refuses is rejected saying why: retrying cannot fix it.
//!
//! One file per aggregate: `deals`, `plans` (plans and proposals), `contracts`,
//! `campaigns` (campaigns, their stats and the deal summary), `generations` (drafting with a
//! model: the check of a drafted plan, a generation's end).

mod campaigns;
mod contracts;
mod deals;
mod generations;
mod plans;

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::store::MasterDealStoreError;

pub(crate) use campaigns::{deal_summary, open_campaigns, record_campaign_stats, upsert_campaign};
pub(crate) use contracts::{transition_contract, unpaid_contracts, update_contract_billing, upsert_contract};
pub(crate) use deals::{advance_deal, get, list, save, transition, update_deal, upsert};
pub(crate) use generations::{check_media_plan, fail_generation, finish_generation, request_generation};
pub(crate) use plans::{
    add_media_plan, approve_media_plan, attach_proposal, get_approved_plan, transition_media_plan, transition_proposal,
};

/// A status change of any aggregate: `{"id", "to", "expected_version"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransitionIn<S> {
    id: Uuid,
    to: S,
    expected_version: i64,
}

/// How often a read-then-write op reads again when another writer changed the record between.
const FRESH_READS: usize = 3;

/// Runs `attempt` (a read, then writes at the version it read) again while another writer
/// changes the record in between (`Conflict`); `Raced` once it kept changing. For the ops that
/// follow a system of record whatever version the record is at.
async fn on_fresh_reads<F, Fut>(what: &'static str, key: Uuid, mut attempt: F) -> Result<Value, MasterDealStoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Value, MasterDealStoreError>>,
{
    for _ in 0..FRESH_READS {
        match attempt().await {
            Err(MasterDealStoreError::Conflict { .. }) => continue,
            done => return done,
        }
    }
    Err(MasterDealStoreError::Raced { what, key: key.to_string() })
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
        // A JSON number with a fraction arrives as an f64, exact to 15 significant digits:
        // beyond them the digits sent are already lost, so the caller is told to send text.
        Value::Number(n) if n.is_f64() && significant_digits(&n.to_string()) > 15 => {
            return Err(rejected(format!(
                "the {field} {n} has more digits than a JSON number carries exactly; send it as a string"
            )));
        }
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => return Err(rejected(format!("the {field} {other} is not a number"))),
    };
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|e| rejected(format!("the {field} `{text}` is not a decimal: {e}")))
}

/// The digits of a number's text from the first non-zero one, exponent aside.
fn significant_digits(text: &str) -> usize {
    let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_start_matches('0');
    if mantissa.contains('.') { digits.len() } else { digits.trim_end_matches('0').len().max(1) }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{decimal, significant_digits};

    #[test]
    fn money_keeps_its_digits_or_asks_for_a_string() {
        assert_eq!(decimal("budget", &json!(1_250_000.5)).expect("exact as a float").to_string(), "1250000.5");
        assert_eq!(
            decimal("budget", &json!("12345678901234567.89")).expect("text").to_string(),
            "12345678901234567.89"
        );
        assert_eq!(
            decimal("budget", &json!(12_345_678_901_234_567_u64)).expect("an integer").to_string(),
            "12345678901234567"
        );
        let lost: serde_json::Value = serde_json::from_str("12345678901234567.89").expect("JSON");
        let e = decimal("budget", &lost).expect_err("already rounded by the float");
        assert!(e.to_string().contains("send it as a string"), "{e}");
        assert_eq!([significant_digits("0.0012"), significant_digits("1.5e16"), significant_digits("1000")], [2, 2, 1]);
    }
}
