//! Strings from GraphQL input into the domain's types; each failure is `INVALID_INPUT`
//! naming the field, so the caller knows what to fix.

use std::str::FromStr;

use async_graphql::{ID, Result};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::error::invalid;
use crate::domain::{Currency, Money, Period};

pub(super) fn id(field: &str, raw: &ID) -> Result<Uuid> {
    raw.parse().map_err(|_| invalid(format!("{field} `{}` is not an id (a uuid)", raw.as_str())))
}

pub(super) fn date(field: &str, raw: &str) -> Result<NaiveDate> {
    raw.parse().map_err(|e| invalid(format!("{field} `{raw}` is not a date (YYYY-MM-DD): {e}")))
}

pub(super) fn period(field: &str, from: &str, to: &str) -> Result<Period> {
    Period::new(date(&format!("{field}From"), from)?, date(&format!("{field}To"), to)?).map_err(invalid)
}

/// An exact decimal from its text (`"1500000.50"`); GraphQL floats are not accepted for
/// money, as they would round.
pub(super) fn decimal(field: &str, raw: &str) -> Result<Decimal> {
    Decimal::from_str(raw.trim())
        .or_else(|_| Decimal::from_scientific(raw.trim()))
        .map_err(|e| invalid(format!("{field} `{raw}` is not a decimal: {e}")))
}

pub(super) fn decimal_opt(field: &str, raw: Option<&str>) -> Result<Option<Decimal>> {
    raw.map(|r| decimal(field, r)).transpose()
}

pub(super) fn currency(raw: &str) -> Result<Currency> {
    Currency::parse(raw).map_err(invalid)
}

pub(super) fn money(field: &str, raw: &str, currency: Currency) -> Result<Money> {
    Ok(Money::new(decimal(field, raw)?, currency))
}

/// A status by its `snake_case` wire name, as REST takes it.
pub(super) fn status<S: DeserializeOwned>(field: &str, raw: &str) -> Result<S> {
    S::deserialize(serde_json::Value::String(raw.to_owned()))
        .map_err(|e| invalid(format!("{field} `{raw}` is not a status: {e}")))
}
