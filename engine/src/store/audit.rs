//! The audit log: who did what through the gateway and the admin API, and how it ended.
//! Append-only: nothing here updates an entry; retention deletes the oldest whole.

use std::fmt::Write as _;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe, Row};

use super::{Backend, Store, StoreError, now_millis};

#[cfg(test)]
mod tests;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// Parameters each row binds, in [`bind_entry`]'s order.
const PARAMS_PER_ROW: usize = 9;
/// Rows per INSERT in a batch. With 16, the few statement sizes a batch can need all stay
/// prepared (at 100 rows, re-preparing was most of the writer's time).
const ROWS_PER_INSERT: usize = 64;

/// What happened, as the gateway or the admin API reports it; the store adds the id and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Who: an api key id, a JWT subject, a basic-auth user, `admin` or `anonymous`.
    pub actor: String,
    /// How they proved it: `api_key`, `jwt`, `hmac`, `basic`, `admin_token`, `password` (a
    /// console user) or `none`.
    pub actor_kind: String,
    /// What they asked for: `POST /webhooks/crm/deals`, `admin.reload`.
    pub action: String,
    /// What it was done to: a route id, a dead-letter id…
    pub target: Option<String>,
    /// How it ended: `ok`, `denied`, `failed`, `limited`…
    pub outcome: String,
    /// The HTTP status answered, when there was one.
    pub status: Option<u16>,
    pub request_id: Option<String>,
    /// A short reason. Never a secret or a body: the log is read by more people than the data.
    pub detail: Option<String>,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Grows with every append and is never reused: the cursor for [`AuditFilter::before_id`].
    pub id: i64,
    /// When the store appended it.
    pub at: DateTime<Utc>,
    pub actor: String,
    pub actor_kind: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub status: Option<u16>,
    pub request_id: Option<String>,
    pub detail: Option<String>,
}

/// Which entries [`Store::audit_list`] returns, newest first. Unset fields match everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    /// Entries whose action starts with this, taken literally (`%` and `_` are no wildcards).
    pub action: Option<String>,
    pub outcome: Option<String>,
    /// At or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Strictly before this time, so consecutive windows never count an entry twice.
    pub until: Option<DateTime<Utc>>,
    /// Only entries older than this id: pass the last id of a page to get the next page.
    pub before_id: Option<i64>,
    /// At most this many: 100 when 0, never more than 1000.
    pub limit: u32,
}

impl Store {
    /// Appends one entry and returns its id.
    pub async fn audit_append(&self, entry: &AuditEntry) -> Result<i64, StoreError> {
        let sql = format!("{} RETURNING id", insert_sql(self.backend(), 1));
        let _writer = self.write_guard().await;
        let row = bind_entry(sqlx::query(AssertSqlSafe(sql)), entry, now_millis())
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::query("audit_append"))?;
        row.try_get("id").map_err(StoreError::query("audit_append"))
    }

    /// Appends many in one transaction (the gateway batches audit writes off the request
    /// path): all are stored, in order, or none.
    pub async fn audit_append_many(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let err = || StoreError::query("audit_append_many");
        let at = now_millis();
        let _writer = self.write_guard().await;
        let mut tx = self.pool.begin().await.map_err(err())?;
        for chunk in entries.chunks(ROWS_PER_INSERT) {
            let query = sqlx::query(insert_sql(self.backend(), chunk.len()));
            let query = chunk.iter().fold(query, |query, entry| bind_entry(query, entry, at));
            query.execute(&mut *tx).await.map_err(err())?;
        }
        tx.commit().await.map_err(err())
    }

    /// Entries matching `filter`, newest first. On Postgres an append still in flight may
    /// commit with a lower id than one already listed, so a page read during a busy second
    /// can miss it; reading again later sees it.
    pub async fn audit_list(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = match filter.limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        // One static statement where a NULL parameter switches its condition off. The
        // action prefix is compared with substr, not LIKE: LIKE would read `%` and `_` in a
        // query string as wildcards, and its case rules differ between the two backends.
        let rows = sqlx::query(
            "SELECT id, at, actor, actor_kind, action, target, outcome, status, request_id, detail \
             FROM audit \
             WHERE ($1 IS NULL OR actor = $1) \
               AND ($2 IS NULL OR substr(action, 1, length($2)) = $2) \
               AND ($3 IS NULL OR outcome = $3) \
               AND ($4 IS NULL OR at >= $4) \
               AND ($5 IS NULL OR at < $5) \
               AND ($6 IS NULL OR id < $6) \
             ORDER BY id DESC LIMIT $7",
        )
        .bind(filter.actor.as_deref())
        .bind(filter.action.as_deref())
        .bind(filter.outcome.as_deref())
        .bind(filter.since.map(|t| t.timestamp_millis()))
        .bind(filter.until.map(|t| t.timestamp_millis()))
        .bind(filter.before_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("audit_list"))?;
        rows.iter().map(decode).collect()
    }

    /// Retention: deletes entries older than `cutoff`; returns how many.
    pub async fn audit_purge_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let _writer = self.write_guard().await;
        let done = sqlx::query("DELETE FROM audit WHERE at < $1")
            .bind(cutoff.timestamp_millis())
            .execute(&self.pool)
            .await
            .map_err(StoreError::query("audit_purge_before"))?;
        Ok(done.rows_affected())
    }
}

/// The INSERT of `rows` entries (1 to [`ROWS_PER_INSERT`]) for `backend`, built once per
/// size: a batch of audit records would otherwise format 144 placeholders per statement.
fn insert_sql(backend: Backend, rows: usize) -> &'static str {
    static NUMBERED: LazyLock<Vec<String>> =
        LazyLock::new(|| (0..=ROWS_PER_INSERT).map(|rows| build_insert_sql(rows, true)).collect());
    static POSITIONAL: LazyLock<Vec<String>> =
        LazyLock::new(|| (0..=ROWS_PER_INSERT).map(|rows| build_insert_sql(rows, false)).collect());
    match backend {
        Backend::Postgres => &NUMBERED[rows],
        Backend::Sqlite => &POSITIONAL[rows],
    }
}

/// `INSERT … VALUES ($1, …), ($10, …)` for `rows` entries, or with `?` for each value when
/// not `numbered`: SQLite binds `?` by position, but finds each `$n` by searching the
/// statement's list of parameter names, which costs the square of the parameters per row
/// bound. Only placeholders are formatted in; the values are always bound.
fn build_insert_sql(rows: usize, numbered: bool) -> String {
    let mut sql = String::from(
        "INSERT INTO audit (at, actor, actor_kind, action, target, outcome, status, request_id, detail) VALUES ",
    );
    for row in 0..rows {
        let first = row * PARAMS_PER_ROW + 1;
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for param in first..first + PARAMS_PER_ROW {
            let sep = if param == first { "" } else { ", " };
            if numbered {
                write!(sql, "{sep}${param}").expect("writing to a String cannot fail");
            } else {
                write!(sql, "{sep}?").expect("writing to a String cannot fail");
            }
        }
        sql.push(')');
    }
    sql
}

fn bind_entry<'q>(query: Query<'q, Any, AnyArguments>, entry: &AuditEntry, at: i64) -> Query<'q, Any, AnyArguments> {
    query
        .bind(at)
        .bind(entry.actor.as_str())
        .bind(entry.actor_kind.as_str())
        .bind(entry.action.as_str())
        .bind(entry.target.as_deref())
        .bind(entry.outcome.as_str())
        .bind(entry.status.map(i64::from))
        .bind(entry.request_id.as_deref())
        .bind(entry.detail.as_deref())
}

fn decode(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    let id: i64 = column(row, "id", "?")?;
    let shown = id.to_string();
    let at: i64 = column(row, "at", &shown)?;
    let status: Option<i64> = column(row, "status", &shown)?;
    Ok(AuditRecord {
        at: DateTime::from_timestamp_millis(at).ok_or_else(|| corrupt(&shown, format!("at {at} is out of range")))?,
        actor: column(row, "actor", &shown)?,
        actor_kind: column(row, "actor_kind", &shown)?,
        action: column(row, "action", &shown)?,
        target: column(row, "target", &shown)?,
        outcome: column(row, "outcome", &shown)?,
        status: status.map(u16::try_from).transpose().map_err(|e| corrupt(&shown, e))?,
        request_id: column(row, "request_id", &shown)?,
        detail: column(row, "detail", &shown)?,
        id,
    })
}

fn column<'r, T>(row: &'r AnyRow, name: &str, id: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(name).map_err(|e| corrupt(id, e))
}

fn corrupt(id: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { what: "audit entry", id: id.to_owned(), reason: reason.to_string() }
}
