//! Optimistic concurrency for the versioned tables: a write names the version it read and
//! loses to any write made since, instead of overwriting it.

use sqlx::{AnyConnection, AssertSqlSafe};
use uuid::Uuid;

use super::MasterDealStoreError;
use crate::domain::{Lifecycle, check_version};

/// Which version of an existing record an upsert may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// The record must exist at this version.
    Version(i64),
    /// Create it, or overwrite it at whatever version it is: a sync from the system of record.
    AnyVersion,
    /// Create it; one that exists is changed only at a version the caller names
    /// ([`MasterDealStoreError::VersionRequired`]).
    New,
}

impl Expected {
    /// The version the caller named, if any, else `absent`.
    pub fn or(version: Option<i64>, absent: Expected) -> Expected {
        version.map_or(absent, Expected::Version)
    }
}

/// `Conflict` unless the row read is at the version the caller expects.
pub(super) fn check(what: &'static str, id: Uuid, expected: i64, actual: i64) -> Result<(), MasterDealStoreError> {
    check_version(expected, actual).map_err(|c| MasterDealStoreError::Conflict {
        what,
        id: id.to_string(),
        expected: c.expected,
        actual: c.actual,
    })
}

/// After an `UPDATE … WHERE version = $expected` changed nothing: tells a missing row from
/// one whose version moved on. `table` is one of ours, never input.
pub(super) async fn why_not_updated(
    conn: &mut AnyConnection,
    table: &'static str,
    what: &'static str,
    id: Uuid,
    expected: i64,
) -> Result<MasterDealStoreError, MasterDealStoreError> {
    let sql = format!("SELECT version FROM {table} WHERE id = $1");
    let actual: Option<i64> = sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(conn)
        .await
        .map_err(MasterDealStoreError::query("version check"))?;
    Ok(match actual {
        Some(actual) => MasterDealStoreError::Conflict { what, id: id.to_string(), expected, actual },
        None => MasterDealStoreError::not_found(what, id),
    })
}

/// Sets the row's `status` if it is still at `expected_version` (version + 1); when it is
/// not, `Conflict` or `NotFound` as [`why_not_updated`] tells. `table` is one of ours, never
/// input; `failed` names a failed query (a table's unique index may mean something).
pub(super) async fn set_status(
    conn: &mut AnyConnection,
    (table, what): (&'static str, &'static str),
    id: Uuid,
    expected_version: i64,
    status: impl Lifecycle,
    failed: impl FnOnce(sqlx::Error) -> MasterDealStoreError,
) -> Result<(), MasterDealStoreError> {
    let sql = format!(
        "UPDATE {table} SET status = $3, version = version + 1, updated_at = $4 \
         WHERE id = $1 AND version = $2 RETURNING id"
    );
    let updated = sqlx::query(AssertSqlSafe(sql))
        .bind(id.to_string())
        .bind(expected_version)
        .bind(status.as_str())
        .bind(super::now_millis())
        .fetch_optional(&mut *conn)
        .await
        .map_err(failed)?;
    if updated.is_none() {
        return Err(why_not_updated(conn, table, what, id, expected_version).await?);
    }
    Ok(())
}

/// A unique index refused the write: another writer got there first.
pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// A unique or foreign-key constraint refused the write: a concurrent writer changed
/// what it depended on (a plan deleted under a new proposal, a number taken meanwhile).
pub fn is_constraint_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if db.is_unique_violation() || db.is_foreign_key_violation())
}
