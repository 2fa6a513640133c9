//! `from: { connector: dwh, backfill: { table: campaign_stats, by: id, rows: 500 } }`: a
//! table read in order of a column that only grows, one batch of rows per message, from a
//! watermark kept in the store — to load history into another store (ClickHouse, a second
//! database) and then keep following the rows added after it.
//!
//! Each batch is a deterministic range: the `rows` rows after the watermark, in `by` order. A
//! batch read again (the process killed after its rows were sent, before the watermark moved)
//! is the same rows, so a sink that deduplicates by content (ClickHouse's token) stores it
//! once. Batches go one at a time, the watermark moving after each; a progress line is logged
//! per batch (`backfill campaign_stats: 3000 of 12000 rows (25%), 1800 rows/s`).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use junction_engine::connector::{ConnectorError, Consumer, Inbox, slept};
use junction_engine::store::Store;
use junction_engine::{Body, Message};
use serde_json::Value;
use sqlx::{AnyPool, Row};
use tokio::sync::watch;

use super::batch::Dialect;
use super::{ColumnType, TableSpec};

pub(super) struct Backfill {
    pub(super) connector: String,
    pub(super) pool: Arc<OnceLock<AnyPool>>,
    pub(super) store: Arc<OnceLock<Store>>,
    pub(super) dialect: Dialect,
    pub(super) table: String,
    pub(super) spec: TableSpec,
    /// The column batches are ordered and ranged by: unique, only growing (an id).
    pub(super) by: String,
    pub(super) rows: usize,
    /// After the last row, how often to look for new ones.
    pub(super) every: Duration,
    /// The watermark's key in the store.
    pub(super) key: String,
}

/// How long a walk that failed waits before it tries again (doubling up to `every`).
const FIRST_RETRY: Duration = Duration::from_secs(1);

#[async_trait]
impl Consumer for Backfill {
    async fn run(&self, inbox: Arc<dyn Inbox>, mut stop: watch::Receiver<bool>) {
        let route = inbox.route().to_owned();
        let mut wait = FIRST_RETRY;
        loop {
            let pause = match self.walk(&inbox, &mut stop).await {
                Ok(Some(_)) => {
                    wait = FIRST_RETRY;
                    self.every
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(route, table = %self.table, error = %e, "cannot read the next backfill batch; trying again");
                    let w = wait;
                    wait = (wait * 2).min(self.every.max(FIRST_RETRY));
                    w
                }
            };
            if !slept(pause, &mut stop).await {
                return;
            }
        }
    }

    fn describe(&self) -> String {
        format!("backfill of {}.{} by {}", self.connector, self.table, self.by)
    }

    /// One walker at a time: the watermark is one.
    fn exclusive(&self) -> bool {
        true
    }
}

impl Backfill {
    /// Batches from the watermark to the table's end; the rows sent, or `None` when stopping.
    async fn walk(
        &self,
        inbox: &Arc<dyn Inbox>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Option<u64>, ConnectorError> {
        let store = self.store.get().ok_or_else(|| ConnectorError::unavailable("the connector is not started"))?;
        let pool = self.pool.get().ok_or_else(|| ConnectorError::unavailable("the connector is not started"))?;
        let mut watermark = store
            .checkpoint_get(&self.key)
            .await
            .map_err(|e| ConnectorError::unavailable(format!("cannot read watermark {}: {e}", self.key)))?;
        let mut batch = self.batch(pool, watermark.as_deref()).await?;
        if batch.is_empty() {
            return Ok(Some(0));
        }
        let total = self.count(pool, None).await?;
        let mut done = match &watermark {
            Some(w) => self.count(pool, Some(w)).await?,
            None => 0,
        };
        let (started, mut sent) = (Instant::now(), 0u64);
        let route = inbox.route().to_owned();
        while !batch.is_empty() {
            let last = text_of(&batch[batch.len() - 1][self.by.as_str()]);
            let range = format!("{}..{last}", watermark.as_deref().unwrap_or(""));
            let Some(admission) = inbox.admit(stop).await else {
                return Ok(None);
            };
            let n = batch.len() as u64;
            let mut msg = Message::new(Body::Json(Value::Array(batch)));
            msg.meta.key = Some(format!("{}:{range}", self.table));
            // The batch's id is its range: read again after a kill, it is the same message, and
            // a sink that deduplicates by message (ClickHouse's token) knows it.
            msg.id = range_id(&self.key, &range);
            msg.meta.source.insert("connector".into(), Value::from(self.connector.as_str()));
            msg.meta.source.insert("table".into(), Value::from(self.table.as_str()));
            msg.meta.source.insert("after".into(), watermark.clone().map_or(Value::Null, Value::from));
            msg.meta.source.insert("to".into(), Value::from(last.as_str()));
            // Delivered (or dead-lettered, where it can be replayed): the watermark moves. Left
            // by a stop, it does not: the batch is read again next time.
            if !inbox.deliver(msg, admission).await.settled() {
                return Ok(None);
            }
            store
                .checkpoint_put(&self.key, &last)
                .await
                .map_err(|e| ConnectorError::unavailable(format!("cannot store watermark {}: {e}", self.key)))?;
            (done, sent) = (done + n, sent + n);
            let rate = sent as f64 / started.elapsed().as_secs_f64().max(0.001);
            let percent = if total == 0 { 100 } else { (done * 100 / total.max(done)).min(100) };
            tracing::info!(
                route,
                table = %self.table,
                batch = %range,
                "backfill {}: {done} of {} rows ({percent}%), {rate:.0} rows/s, {} up to {last}",
                self.table,
                total.max(done),
                self.by
            );
            watermark = Some(last);
            batch = self.batch(pool, watermark.as_deref()).await?;
        }
        Ok(Some(sent))
    }

    /// The `rows` rows after `watermark` (from the start without one), in `by` order.
    async fn batch(&self, pool: &AnyPool, watermark: Option<&str>) -> Result<Vec<Value>, ConnectorError> {
        let columns: Vec<String> = self
            .spec
            .columns
            .keys()
            .map(|c| match self.dialect {
                Dialect::Postgres => format!("{c}::text AS {c}"),
                Dialect::Sqlite => format!("CAST({c} AS TEXT) AS {c}"),
            })
            .collect();
        // The column qualified by its table: the bare name is the text the SELECT makes of it,
        // which orders `1000` before `999`.
        let by = format!("{}.{}", self.table, self.by);
        // A row without a `by` has no place in the order: it is not read (and cannot stop the walk).
        let filter = if watermark.is_some() {
            format!("WHERE {by} IS NOT NULL AND {by} > {}", self.bound())
        } else {
            format!("WHERE {by} IS NOT NULL")
        };
        // Table and column names were checked to be `[A-Za-z0-9_]` when the connector was built.
        let sql =
            format!("SELECT {} FROM {} {filter} ORDER BY {by} LIMIT {}", columns.join(", "), self.table, self.rows);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(w) = watermark {
            query = self.bind(query, w);
        }
        let found = query.fetch_all(pool).await.map_err(|e| self.error(&e))?;
        found
            .iter()
            .map(|row| {
                let mut object = serde_json::Map::new();
                for (column, kind) in &self.spec.columns {
                    let text: Option<String> = row.try_get(column.as_str()).map_err(|e| self.error(&e))?;
                    object.insert(column.clone(), json_of(text, *kind));
                }
                Ok(Value::Object(object))
            })
            .collect()
    }

    /// Rows in the table (`None`), or at and before the watermark.
    async fn count(&self, pool: &AnyPool, upto: Option<&str>) -> Result<u64, ConnectorError> {
        let filter = if upto.is_some() {
            format!("WHERE {}.{} <= {}", self.table, self.by, self.bound())
        } else {
            String::new()
        };
        let sql = format!("SELECT COUNT(*) AS n FROM {} {filter}", self.table);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(w) = upto {
            query = self.bind(query, w);
        }
        let row = query.fetch_one(pool).await.map_err(|e| self.error(&e))?;
        let n: i64 = row.try_get("n").map_err(|e| self.error(&e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The watermark's placeholder, typed as the `by` column.
    fn bound(&self) -> String {
        match self.dialect {
            Dialect::Postgres => format!("CAST($1 AS {})", super::batch::pg_type(self.by_type())),
            Dialect::Sqlite => "$1".to_owned(),
        }
    }

    fn bind<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
        watermark: &str,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        // SQLite orders any integer before any text: an integer column compares with an integer.
        match (self.dialect, self.by_type(), watermark.parse::<i64>()) {
            (Dialect::Sqlite, ColumnType::Integer, Ok(n)) => query.bind(n),
            _ => query.bind(watermark.to_owned()),
        }
    }

    fn by_type(&self) -> ColumnType {
        self.spec.columns.get(&self.by).copied().unwrap_or(ColumnType::Text)
    }

    fn error(&self, e: &sqlx::Error) -> ConnectorError {
        ConnectorError::unavailable(format!("connector `{}`: reading `{}` failed: {e}", self.connector, self.table))
    }
}

/// A column's text as the JSON its type makes.
fn json_of(text: Option<String>, kind: ColumnType) -> Value {
    let Some(text) = text else {
        return Value::Null;
    };
    let parsed = match kind {
        ColumnType::Integer => text.parse::<i64>().ok().map(Value::from),
        ColumnType::Real => text.parse::<f64>().ok().map(Value::from),
        ColumnType::Boolean => match text.as_str() {
            "1" | "t" | "true" => Some(Value::Bool(true)),
            "0" | "f" | "false" => Some(Value::Bool(false)),
            _ => None,
        },
        ColumnType::Json => serde_json::from_str(&text).ok(),
        // Numeric stays text: exact, and what decimal columns downstream parse.
        ColumnType::Numeric | ColumnType::Text | ColumnType::Date | ColumnType::Timestamp => None,
    };
    parsed.unwrap_or(Value::String(text))
}

/// A message id made of a backfill's key and a batch's range, shaped as a UUID.
fn range_id(key: &str, range: &str) -> String {
    use sha2::Digest;
    let h = hex::encode(
        sha2::Sha256::new().chain_update(key.as_bytes()).chain_update([0]).chain_update(range.as_bytes()).finalize(),
    );
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// A JSON value as the watermark's text.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_text_becomes_typed_json() {
        assert_eq!(json_of(Some("42".into()), ColumnType::Integer), Value::from(42));
        assert_eq!(json_of(Some("t".into()), ColumnType::Boolean), Value::Bool(true));
        assert_eq!(json_of(Some("0".into()), ColumnType::Boolean), Value::Bool(false));
        assert_eq!(json_of(Some("12.50".into()), ColumnType::Numeric), Value::from("12.50"));
        assert_eq!(json_of(Some("{\"a\":1}".into()), ColumnType::Json), serde_json::json!({ "a": 1 }));
        assert_eq!(json_of(None, ColumnType::Text), Value::Null);
        assert_eq!(text_of(&Value::from(7)), "7");
        assert_eq!(text_of(&Value::from("2026-12-01")), "2026-12-01");
    }
}
