//! Dead letters: messages a route could not deliver, kept with why, where and after how many
//! attempts, until an operator replays them. Nothing accepted is lost.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Any;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, now_millis};
use crate::message::Message;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// A message to dead-letter.
#[derive(Debug, Clone)]
pub struct NewDeadLetter {
    pub route: String,
    /// The step that failed; `None` when the route failed outside a step (e.g. its source).
    pub step: Option<String>,
    /// Why delivery failed, as the last attempt reported it.
    pub error: String,
    pub attempts: u32,
    pub message: Message,
}

/// A stored dead letter.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// A uuid v7: ids sort by creation time.
    pub id: String,
    pub route: String,
    pub step: Option<String>,
    pub error: String,
    pub attempts: u32,
    pub message: Message,
    pub created_at: DateTime<Utc>,
    /// When it was last handed back to its route; `None` while it waits.
    pub replayed_at: Option<DateTime<Utc>>,
    /// What the replay sent, when an admin edited the message first (`message` stays the
    /// original).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed_with: Option<Message>,
}

/// Which dead letters [`Store::list_dead_letters`] returns, newest first.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter {
    /// Only this route's.
    pub route: Option<String>,
    /// Also those already replayed; by default only those still waiting.
    pub include_replayed: bool,
    /// At most this many: 100 when unset, never more than 1000.
    pub limit: Option<u32>,
    /// Only those older than this id: pass the last id of a page to get the next page.
    pub before: Option<String>,
    /// Only those whose error contains this text.
    pub error: Option<String>,
    /// Only those dead-lettered at or after this time.
    pub since: Option<DateTime<Utc>>,
}

impl Store {
    /// Stores a dead letter and returns its id.
    pub async fn put_dead_letter(&self, dl: &NewDeadLetter) -> Result<String, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let message =
            serde_json::to_string(&dl.message).expect("a Message always serializes: its maps have string keys");
        let _writer = self.write_guard().await;
        sqlx::query(
            "INSERT INTO dead_letters (id, route, step, error, attempts, message, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(&dl.route)
        .bind(dl.step.as_deref())
        .bind(&dl.error)
        .bind(i64::from(dl.attempts))
        .bind(message)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("put_dead_letter"))?;
        Ok(id)
    }

    /// Dead letters matching `filter`, newest first.
    pub async fn list_dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
        let limit = filter.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
        // One static statement with optional conditions rather than SQL built per filter:
        // a NULL parameter switches its condition off.
        let rows = sqlx::query(
            "SELECT id, route, step, error, attempts, message, created_at, replayed_at, replayed_with \
             FROM dead_letters \
             WHERE ($1 IS NULL OR route = $1) \
               AND ($2 <> 0 OR replayed_at IS NULL) \
               AND ($3 IS NULL OR id < $3) \
               AND ($5 IS NULL OR error LIKE $5 ESCAPE '\\') \
               AND ($6 IS NULL OR created_at >= $6) \
             ORDER BY id DESC LIMIT $4",
        )
        .bind(filter.route.as_deref())
        .bind(i64::from(filter.include_replayed))
        .bind(filter.before.as_deref())
        .bind(i64::from(limit))
        .bind(
            filter
                .error
                .as_deref()
                .map(|e| format!("%{}%", e.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))),
        )
        .bind(filter.since.map(|t| t.timestamp_millis()))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("list_dead_letters"))?;
        rows.iter().map(decode).collect()
    }

    pub async fn get_dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        let row = sqlx::query(
            "SELECT id, route, step, error, attempts, message, created_at, replayed_at, replayed_with \
             FROM dead_letters WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query("get_dead_letter"))?;
        row.as_ref().map(decode).transpose()
    }

    /// Records that the dead letter was handed back to its route. `false` when there is no
    /// such dead letter or it was already replayed, so two replays cannot both win.
    pub async fn mark_dead_letter_replayed(&self, id: &str) -> Result<bool, StoreError> {
        self.mark_dead_letter_replayed_with(id, None).await
    }

    /// Claims dead letter `id` for a replay that sends `edited` instead of the original
    /// (`None`: the original); false when it was already replayed.
    pub async fn mark_dead_letter_replayed_with(&self, id: &str, edited: Option<&Message>) -> Result<bool, StoreError> {
        let edited = edited.map(|m| serde_json::to_string(m).expect("a Message always serializes"));
        let _writer = self.write_guard().await;
        let done = sqlx::query(
            "UPDATE dead_letters SET replayed_at = $2, replayed_with = $3 WHERE id = $1 AND replayed_at IS NULL",
        )
        .bind(id)
        .bind(now_millis())
        .bind(edited)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("mark_dead_letter_replayed"))?;
        Ok(done.rows_affected() == 1)
    }
}

fn decode(row: &AnyRow) -> Result<DeadLetter, StoreError> {
    let id: String = column(row, "id", "?")?;
    let attempts: i64 = column(row, "attempts", &id)?;
    let message: String = column(row, "message", &id)?;
    let created_at: i64 = column(row, "created_at", &id)?;
    let replayed_at: Option<i64> = column(row, "replayed_at", &id)?;
    let replayed_with: Option<String> = column(row, "replayed_with", &id)?;
    let time = |millis: i64, name: &str| {
        DateTime::from_timestamp_millis(millis).ok_or_else(|| corrupt(&id, format!("{name} {millis} is out of range")))
    };
    Ok(DeadLetter {
        route: column(row, "route", &id)?,
        step: column(row, "step", &id)?,
        error: column(row, "error", &id)?,
        attempts: u32::try_from(attempts).map_err(|e| corrupt(&id, e))?,
        message: serde_json::from_str(&message).map_err(|e| corrupt(&id, e))?,
        created_at: time(created_at, "created_at")?,
        replayed_at: replayed_at.map(|ms| time(ms, "replayed_at")).transpose()?,
        replayed_with: replayed_with.map(|m| serde_json::from_str(&m)).transpose().map_err(|e| corrupt(&id, e))?,
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
    StoreError::Corrupt { what: "dead letter", id: id.to_owned(), reason: reason.to_string() }
}
