//! Optimistic concurrency for the versioned tables: a write names the version it read and
//! loses to any write made since, instead of overwriting it.

use sqlx::{AnyConnection, AssertSqlSafe};
use uuid::Uuid;

use super::MasterDealStoreError;
use crate::domain::check_version;

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
