//! The transactional outbox: writes append their events here in their own transaction, and
//! a relay publishes them in order, marking each only after its publish succeeded.
//!
//! Delivery is at least once: a crash between a publish and its mark publishes that event
//! again on the next relay, so consumers deduplicate by `event_id` or `aggregate_seq`.
//!
//! Each event keeps the trace it was written in ([`traced`]): the relay publishes it in that
//! trace, so one trace follows a deal from the request that changed it through every route
//! the change sets off.

use chrono::{DateTime, Utc};
use junction_engine::store::Store;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;

use super::{MasterDealStoreError, begin, now_millis};

/// An event waiting in, or published from, the outbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxEvent {
    /// Global order of appends; the relay publishes in this order.
    pub seq: i64,
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// 1, 2, 3… per aggregate: a consumer that sees a gap knows it missed one.
    pub aggregate_seq: i64,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// The trace it was written in, and the span it was written under.
    pub trace_id: Option<String>,
    pub parent_span_id: Option<String>,
}

/// A trace the writes made inside [`traced`] record with their events.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub trace_id: String,
    pub parent_span_id: Option<String>,
}

tokio::task_local! {
    static TRACE: Trace;
}

/// Runs `work` with `trace` as the trace of the events it writes (none when `None`): the
/// connector's steps pass their message's, the API its request's.
pub async fn traced<F: std::future::Future>(trace: Option<Trace>, work: F) -> F::Output {
    match trace {
        Some(trace) => TRACE.scope(trace, work).await,
        None => work.await,
    }
}

/// Appends an event inside the caller's transaction, numbered after the aggregate's last.
/// Callers have already written the aggregate's row in `tx`, which holds its lock until
/// commit, so two writers of one aggregate cannot take the same number.
pub(super) async fn append(
    tx: &mut Transaction<'static, Any>,
    aggregate_type: &str,
    aggregate_id: Uuid,
    event_type: &str,
    payload: &impl Serialize,
) -> Result<(), MasterDealStoreError> {
    let payload = serde_json::to_string(payload)
        .map_err(|e| MasterDealStoreError::corrupt("outbox payload", &aggregate_id.to_string(), e))?;
    let trace = TRACE.try_with(Trace::clone).ok();
    sqlx::query(
        "INSERT INTO masterdeal_outbox \
           (event_id, aggregate_type, aggregate_id, aggregate_seq, event_type, payload, created_at, \
            trace_id, parent_span_id) \
         SELECT $1, $2, $3, COALESCE(MAX(aggregate_seq), 0) + 1, $4, $5, $6, $7, $8 \
         FROM masterdeal_outbox WHERE aggregate_type = $2 AND aggregate_id = $3",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(aggregate_type.to_owned())
    .bind(aggregate_id.to_string())
    .bind(event_type.to_owned())
    .bind(payload)
    .bind(now_millis())
    .bind(trace.as_ref().map(|t| t.trace_id.clone()))
    .bind(trace.and_then(|t| t.parent_span_id))
    .execute(&mut **tx)
    .await
    .map_err(MasterDealStoreError::query("outbox append"))?;
    Ok(())
}

/// Up to `limit` unpublished events, oldest first.
pub async fn pending(store: &Store, limit: u32) -> Result<Vec<OutboxEvent>, MasterDealStoreError> {
    let rows = sqlx::query(
        "SELECT seq, event_id, aggregate_type, aggregate_id, aggregate_seq, event_type, payload, created_at, \
                trace_id, parent_span_id \
         FROM masterdeal_outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await
    .map_err(MasterDealStoreError::query("outbox pending"))?;
    rows.iter().map(decode).collect()
}

/// How many events wait to be published, and when the oldest of them was appended (unix ms).
pub async fn backlog(store: &Store) -> Result<(i64, Option<i64>), MasterDealStoreError> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM masterdeal_outbox WHERE published_at IS NULL",
    )
    .fetch_one(store.pool())
    .await
    .map_err(MasterDealStoreError::query("outbox backlog"))?;
    let n: i64 = row.try_get("n").map_err(MasterDealStoreError::query("outbox backlog"))?;
    let oldest: Option<i64> = row.try_get("oldest").map_err(MasterDealStoreError::query("outbox backlog"))?;
    Ok((n, oldest))
}

/// Marks these events published; already published ones keep their first time.
pub async fn mark_published(store: &Store, seqs: &[i64]) -> Result<(), MasterDealStoreError> {
    const OP: &str = "outbox mark_published";
    let mut tx = begin(store, OP).await?;
    let now = now_millis();
    for &seq in seqs {
        sqlx::query("UPDATE masterdeal_outbox SET published_at = $2 WHERE seq = $1 AND published_at IS NULL")
            .bind(seq)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(MasterDealStoreError::query(OP))?;
    }
    tx.commit().await.map_err(MasterDealStoreError::query(OP))
}

/// How many events one relay pass reads at a time.
const BATCH: u32 = 100;

/// Publishes every pending event in order and returns how many. Stops at the first failed
/// publish, leaving that event and all after it pending, so nothing is skipped and no
/// aggregate's events are reordered. Run one relay at a time: two would publish twice.
///
/// `publish` builds the publish's future from the event without holding on to it (a future
/// borrowing the event could not be proven `Send` for every lifetime it may be called with).
pub async fn relay_once<E, F>(store: &Store, publish: impl Fn(&OutboxEvent) -> F) -> Result<usize, MasterDealStoreError>
where
    F: Future<Output = Result<(), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut published = 0;
    loop {
        let batch = pending(store, BATCH).await?;
        if batch.is_empty() {
            return Ok(published);
        }
        for event in &batch {
            publish(event).await.map_err(|source| MasterDealStoreError::Publish {
                seq: event.seq,
                event_type: event.event_type.clone(),
                published,
                source: Box::new(source),
            })?;
            // Marked one by one: a crash loses at most this one mark, never a publish.
            mark_published(store, &[event.seq]).await?;
            published += 1;
        }
    }
}

fn decode(row: &AnyRow) -> Result<OutboxEvent, MasterDealStoreError> {
    let seq: i64 = row.try_get("seq").map_err(|e| MasterDealStoreError::corrupt("outbox event", "?", e))?;
    let id = seq.to_string();
    let corrupt = |reason: String| MasterDealStoreError::corrupt("outbox event", &id, reason);
    let text = |name: &str| row.try_get::<String, _>(name).map_err(|e| corrupt(format!("{name}: {e}")));
    let int = |name: &str| row.try_get::<i64, _>(name).map_err(|e| corrupt(format!("{name}: {e}")));
    let optional = |name: &str| row.try_get::<Option<String>, _>(name).map_err(|e| corrupt(format!("{name}: {e}")));
    let created_at = int("created_at")?;
    Ok(OutboxEvent {
        seq,
        event_id: text("event_id")?.parse().map_err(|e| corrupt(format!("event_id: {e}")))?,
        aggregate_type: text("aggregate_type")?,
        aggregate_id: text("aggregate_id")?,
        aggregate_seq: int("aggregate_seq")?,
        event_type: text("event_type")?,
        payload: serde_json::from_str(&text("payload")?).map_err(|e| corrupt(format!("payload: {e}")))?,
        created_at: DateTime::from_timestamp_millis(created_at)
            .ok_or_else(|| corrupt(format!("created_at {created_at} is out of range")))?,
        trace_id: optional("trace_id")?,
        parent_span_id: optional("parent_span_id")?,
    })
}
