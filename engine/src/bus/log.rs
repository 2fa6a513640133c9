//! The bus's two tables: an append-only log of messages per topic, and the committed offset
//! of each consumer group on each topic.

use sqlx::Row;

use crate::message::Message;
use crate::store::{Backend, Store, StoreError, now_millis};

/// First key of the Postgres advisory locks that order a topic's publishes ("JBUS"), so
/// they never collide with advisory locks other code takes on the same database.
const TOPIC_LOCK_CLASS: i32 = 0x4A42_5553;

/// A message read back from the log.
#[derive(Debug)]
pub(super) struct Record {
    pub(super) offset: i64,
    pub(super) message: Message,
}

/// Appends a message to a topic; returns its offset once it is committed.
pub(super) async fn append(store: &Store, topic: &str, message: &Message) -> Result<i64, StoreError> {
    let json = serde_json::to_string(message).expect("a Message always serializes: its maps have string keys");
    let insert = sqlx::query("INSERT INTO bus_messages (topic, message, created_at) VALUES ($1, $2, $3) RETURNING seq")
        .bind(topic)
        .bind(json)
        .bind(now_millis());
    let failed = StoreError::query("bus publish");

    let row = match store.backend() {
        // SQLite has one writer at a time, so offsets commit in the order they are taken.
        Backend::Sqlite => {
            let _writer = store.write_guard().await;
            insert.fetch_one(store.pool()).await.map_err(failed)?
        }
        // Postgres hands out sequence values before commit, so concurrent publishers can
        // commit offsets out of order: a consumer that already read 6 would never see 5
        // land. Holding a per-topic lock from before the insert until after the commit
        // makes each topic's offsets visible in increasing order. Locks release only after
        // the commit is visible, so the next publisher's offset is always seen later.
        Backend::Postgres => {
            let mut tx = store.pool().begin().await.map_err(StoreError::query("bus publish"))?;
            // count(*) because the lock function returns `void`, a type the Any driver
            // cannot carry.
            sqlx::query("SELECT count(*) FROM (SELECT pg_advisory_xact_lock($1, hashtext($2))) AS locked")
                .bind(TOPIC_LOCK_CLASS)
                .bind(topic)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("bus publish lock"))?;
            let row = insert.fetch_one(&mut *tx).await.map_err(failed)?;
            tx.commit().await.map_err(StoreError::query("bus publish commit"))?;
            row
        }
    };
    row.try_get("seq").map_err(|e| StoreError::Corrupt {
        what: "bus offset",
        id: topic.to_owned(),
        reason: e.to_string(),
    })
}

/// Up to `limit` messages of `topic` after offset `after`, in offset order.
pub(super) async fn read_after(store: &Store, topic: &str, after: i64, limit: i64) -> Result<Vec<Record>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, message FROM bus_messages WHERE topic = $1 AND seq > $2 \
         ORDER BY seq LIMIT $3",
    )
    .bind(topic)
    .bind(after)
    .bind(limit)
    .fetch_all(store.pool())
    .await
    .map_err(StoreError::query("bus read"))?;

    rows.iter()
        .map(|row| {
            let corrupt = |reason: String| StoreError::Corrupt {
                what: "bus message (table bus_messages, topic@seq)",
                id: format!("{topic}@{}", row.try_get::<i64, _>("seq").unwrap_or_default()),
                reason,
            };
            let offset: i64 = row.try_get("seq").map_err(|e| corrupt(e.to_string()))?;
            let json: String = row.try_get("message").map_err(|e| corrupt(e.to_string()))?;
            let message = serde_json::from_str(&json).map_err(|e| corrupt(e.to_string()))?;
            Ok(Record { offset, message })
        })
        .collect()
}

/// The group's committed offset on the topic; 0, before every message, for a new group.
pub(super) async fn committed(store: &Store, group: &str, topic: &str) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT committed FROM bus_offsets WHERE consumer_group = $1 AND topic = $2")
        .bind(group)
        .bind(topic)
        .fetch_optional(store.pool())
        .await
        .map_err(StoreError::query("bus committed offset"))?;
    let Some(row) = row else { return Ok(0) };
    row.try_get("committed").map_err(|e| StoreError::Corrupt {
        what: "bus committed offset (table bus_offsets, group/topic)",
        id: format!("{group}/{topic}"),
        reason: e.to_string(),
    })
}

/// How many messages of `topic` its slowest consumer group has not processed; all of them
/// when no group reads it.
pub(super) async fn backlog(store: &Store, topic: &str) -> Result<u64, StoreError> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM bus_messages WHERE topic = $1 \
         AND seq > COALESCE((SELECT MIN(o.committed) FROM bus_offsets o WHERE o.topic = $1), 0)",
    )
    .bind(topic)
    .fetch_one(store.pool())
    .await
    .map_err(StoreError::query("bus backlog"))?;
    let n: i64 = row.try_get("n").map_err(StoreError::query("bus backlog"))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Every consumer group on every topic: where it is, and how many messages it has to process.
pub(super) async fn groups(store: &Store) -> Result<Vec<super::GroupState>, StoreError> {
    let rows = sqlx::query(
        "SELECT o.topic, o.consumer_group, o.committed, o.updated_at, \
         (SELECT COUNT(*) FROM bus_messages m WHERE m.topic = o.topic AND m.seq > o.committed) AS backlog \
         FROM bus_offsets o ORDER BY o.topic, o.consumer_group",
    )
    .fetch_all(store.pool())
    .await
    .map_err(StoreError::query("bus groups"))?;
    rows.iter()
        .map(|row| {
            Ok(super::GroupState {
                topic: row.try_get("topic")?,
                group: row.try_get("consumer_group")?,
                committed: row.try_get("committed")?,
                backlog: u64::try_from(row.try_get::<i64, _>("backlog")?).unwrap_or(0),
                updated_at: row.try_get("updated_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::query("bus groups"))
}

/// Deletes a group's offset on a topic; whether it had one.
pub(super) async fn forget(store: &Store, group: &str, topic: &str) -> Result<bool, StoreError> {
    let _writer = store.write_guard().await;
    let done = sqlx::query("DELETE FROM bus_offsets WHERE consumer_group = $1 AND topic = $2")
        .bind(group)
        .bind(topic)
        .execute(store.pool())
        .await
        .map_err(StoreError::query("bus forget group"))?;
    Ok(done.rows_affected() > 0)
}

/// Deletes the messages published before `before` (unix milliseconds) that every group reading
/// their topic has processed. A topic no group reads keeps all of its messages.
pub(super) async fn purge(store: &Store, before: i64) -> Result<u64, StoreError> {
    let _writer = store.write_guard().await;
    let done = sqlx::query(
        "DELETE FROM bus_messages WHERE created_at < $1 \
         AND seq <= (SELECT MIN(o.committed) FROM bus_offsets o WHERE o.topic = bus_messages.topic)",
    )
    .bind(before)
    .execute(store.pool())
    .await
    .map_err(StoreError::query("bus retention"))?;
    Ok(done.rows_affected())
}

/// Moves the group's committed offset forward to `offset`, never back: commits from an
/// older subscription or a late background flush may arrive after newer ones.
pub(super) async fn commit(store: &Store, group: &str, topic: &str, offset: i64) -> Result<(), StoreError> {
    let _writer = store.write_guard().await;
    sqlx::query(
        "INSERT INTO bus_offsets (consumer_group, topic, committed, updated_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (consumer_group, topic) DO UPDATE \
         SET committed = excluded.committed, updated_at = excluded.updated_at \
         WHERE bus_offsets.committed < excluded.committed",
    )
    .bind(group)
    .bind(topic)
    .bind(offset)
    .bind(now_millis())
    .execute(store.pool())
    .await
    .map_err(StoreError::query("bus commit"))?;
    Ok(())
}
