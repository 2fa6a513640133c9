//! Typed reads of the `Any` driver's columns for the plan-to-campaign rows. Each failure is
//! a `Corrupt` naming the row, since only a hand edit or another Junction can cause one.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::MasterDealStoreError;

/// One row being decoded, with what it is and its key for error messages.
pub(super) struct Columns<'r> {
    row: &'r AnyRow,
    what: &'static str,
    key: String,
}

impl<'r> Columns<'r> {
    /// A row whose key is its `id` column.
    pub(super) fn new(row: &'r AnyRow, what: &'static str) -> Self {
        let key = row.try_get::<String, _>("id").unwrap_or_else(|_| "?".to_owned());
        Columns { row, what, key }
    }

    /// A row without an `id` column, keyed by `key`.
    pub(super) fn keyed(row: &'r AnyRow, what: &'static str, key: String) -> Self {
        Columns { row, what, key }
    }

    pub(super) fn corrupt(&self, reason: impl std::fmt::Display) -> MasterDealStoreError {
        MasterDealStoreError::corrupt(self.what, &self.key, reason)
    }

    pub(super) fn get<T>(&self, name: &str) -> Result<T, MasterDealStoreError>
    where
        T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        self.row.try_get(name).map_err(|e| self.corrupt(format!("{name}: {e}")))
    }

    pub(super) fn text(&self, name: &str) -> Result<String, MasterDealStoreError> {
        self.get(name)
    }

    fn parsed<T: std::str::FromStr>(&self, name: &str, raw: &str) -> Result<T, MasterDealStoreError>
    where
        T::Err: std::fmt::Display,
    {
        raw.parse().map_err(|e| self.corrupt(format!("{name} `{raw}`: {e}")))
    }

    pub(super) fn uuid(&self, name: &str) -> Result<Uuid, MasterDealStoreError> {
        self.parsed(name, &self.text(name)?)
    }

    pub(super) fn date(&self, name: &str) -> Result<NaiveDate, MasterDealStoreError> {
        self.parsed(name, &self.text(name)?)
    }

    /// Money and rates, read as text (see `DEAL_COLUMNS` for why).
    pub(super) fn decimal(&self, name: &str) -> Result<Decimal, MasterDealStoreError> {
        self.parsed(name, &self.text(name)?)
    }

    pub(super) fn decimal_opt(&self, name: &str) -> Result<Option<Decimal>, MasterDealStoreError> {
        self.get::<Option<String>>(name)?.map(|raw| self.parsed(name, &raw)).transpose()
    }

    pub(super) fn time(&self, name: &str) -> Result<DateTime<Utc>, MasterDealStoreError> {
        let millis: i64 = self.get(name)?;
        DateTime::from_timestamp_millis(millis).ok_or_else(|| self.corrupt(format!("{name} {millis} is out of range")))
    }

    /// A status or other snake_case enum, as its serde name.
    pub(super) fn variant<T: DeserializeOwned>(&self, name: &str) -> Result<T, MasterDealStoreError> {
        let raw = self.text(name)?;
        serde_json::from_value(serde_json::Value::String(raw.clone()))
            .map_err(|e| self.corrupt(format!("{name} `{raw}`: {e}")))
    }

    pub(super) fn json<T: DeserializeOwned>(&self, name: &str) -> Result<T, MasterDealStoreError> {
        serde_json::from_str(&self.text(name)?).map_err(|e| self.corrupt(format!("{name}: {e}")))
    }
}

/// A snake_case enum's serde name, as [`Columns::variant`] reads it back.
pub(super) fn wire_name(value: impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        other => unreachable!("status enums serialize as their name, not {other:?}"),
    }
}
