//! One table's batches: rows from many messages gathered until the batch is full or old
//! enough, written in one transaction of upserts, and each message told how its batch went.

use std::collections::BTreeMap;
use std::time::Duration;

use junction_engine::connector::ConnectorError;
use metrics::Histogram;
use serde_json::Value;
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::{ColumnType, TableSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

/// Rows waiting for a batch, each with where its message waits for the outcome.
type Pending = (Vec<Value>, oneshot::Sender<Result<(), ConnectorError>>);

pub(super) struct Batcher {
    tx: mpsc::Sender<Command>,
}

enum Command {
    Load(Pending),
    /// Write what is pending now and end.
    Stop(oneshot::Sender<()>),
}

/// Rows waiting at most, across messages, before a load waits for room.
const QUEUE: usize = 1024;

impl Batcher {
    /// Creates the table when missing and starts the task that writes its batches.
    pub(super) async fn start(
        connector: &str,
        pool: AnyPool,
        dialect: Dialect,
        table: &str,
        spec: TableSpec,
        rows: usize,
        every: Duration,
    ) -> Result<Batcher, ConnectorError> {
        let writer = Writer {
            connector: connector.to_owned(),
            pool,
            dialect,
            table: table.to_owned(),
            spec,
            sizes: metrics::histogram!("junction_sql_batch_rows", "connector" => connector.to_owned(), "table" => table.to_owned()),
        };
        writer.create_table().await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer.run(rx, rows, every));
        Ok(Batcher { tx })
    }

    /// Adds `rows` to the next batch; returns once that batch committed (or failed).
    pub(super) async fn load(&self, rows: Vec<Value>) -> Result<(), ConnectorError> {
        let (done, outcome) = oneshot::channel();
        self.tx
            .send(Command::Load((rows, done)))
            .await
            .map_err(|_| ConnectorError::unavailable("the table's batch writer has stopped"))?;
        outcome.await.map_err(|_| ConnectorError::retryable("the batch was dropped before it was written"))?
    }

    /// Writes what is pending and stops taking rows.
    pub(super) async fn flush_and_stop(&self) {
        let (done, flushed) = oneshot::channel();
        if self.tx.send(Command::Stop(done)).await.is_ok() {
            let _ = flushed.await;
        }
    }
}

struct Writer {
    connector: String,
    pool: AnyPool,
    dialect: Dialect,
    table: String,
    spec: TableSpec,
    sizes: Histogram,
}

impl Writer {
    async fn run(self, mut rx: mpsc::Receiver<Command>, rows: usize, every: Duration) {
        let mut batch: Vec<Pending> = Vec::new();
        let mut held = 0;
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let command = match deadline {
                Some(at) => tokio::select! {
                    c = rx.recv() => c,
                    () = tokio::time::sleep_until(at) => {
                        self.flush(std::mem::take(&mut batch)).await;
                        (held, deadline) = (0, None);
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            match command {
                Some(Command::Load(p)) => {
                    held += p.0.len();
                    batch.push(p);
                    deadline.get_or_insert_with(|| tokio::time::Instant::now() + every);
                    if held >= rows {
                        self.flush(std::mem::take(&mut batch)).await;
                        (held, deadline) = (0, None);
                    }
                }
                Some(Command::Stop(done)) => {
                    self.flush(std::mem::take(&mut batch)).await;
                    let _ = done.send(());
                    return;
                }
                None => {
                    self.flush(batch).await;
                    return;
                }
            }
        }
    }

    /// Writes one batch and tells each of its messages how it went.
    async fn flush(&self, batch: Vec<Pending>) {
        if batch.is_empty() {
            return;
        }
        let rows: Vec<&Value> = batch.iter().flat_map(|(rows, _)| rows.iter()).collect();
        let outcome = self.write(&rows).await;
        if let Err(e) = &outcome {
            tracing::warn!(connector = %self.connector, table = %self.table, rows = rows.len(), error = %e, "a batch failed; its messages are retried");
        }
        for (_, done) in batch {
            let _ = done.send(outcome.clone());
        }
    }

    /// One transaction of upserts, a row repeated in the batch (by key) written once, the last.
    async fn write(&self, rows: &[&Value]) -> Result<(), ConnectorError> {
        let columns: Vec<(&String, ColumnType)> = self.spec.columns.iter().map(|(c, t)| (c, *t)).collect();
        let mut by_key: BTreeMap<Vec<String>, Vec<Option<String>>> = BTreeMap::new();
        for row in rows {
            let Some(object) = row.as_object() else {
                return Err(ConnectorError::rejected(format!("a row of `{}` is not an object", self.table)));
            };
            if let Some(unknown) = object.keys().find(|k| !self.spec.columns.contains_key(*k)) {
                return Err(ConnectorError::rejected(format!("table `{}` has no column `{unknown}`", self.table)));
            }
            let mut key = Vec::with_capacity(self.spec.key.len());
            for k in &self.spec.key {
                match object.get(k) {
                    Some(v) if !v.is_null() => key.push(v.to_string()),
                    _ => {
                        return Err(ConnectorError::rejected(format!(
                            "a row of `{}` has no `{k}` (part of its key)",
                            self.table
                        )));
                    }
                }
            }
            let values =
                columns.iter().map(|(c, t)| object.get(*c).and_then(|v| text_of(v, *t, self.dialect))).collect();
            by_key.insert(key, values);
        }
        self.sizes.record(by_key.len() as f64);
        let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
        let placeholder = |i: usize, t: ColumnType| match self.dialect {
            Dialect::Postgres => format!("CAST(${i} AS {})", pg_type(t)),
            Dialect::Sqlite => format!("${i}"),
        };
        let updates: Vec<String> = names
            .iter()
            .filter(|c| !self.spec.key.iter().any(|k| k == *c))
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        let conflict =
            if updates.is_empty() { "DO NOTHING".to_owned() } else { format!("DO UPDATE SET {}", updates.join(", ")) };
        let mut tx = self.pool.begin().await.map_err(|e| self.error("begin", &e))?;
        // One statement per row: a batch's rows share one transaction (one commit), and a
        // prepared statement is reused by the driver.
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {conflict}",
            self.table,
            names.join(", "),
            columns.iter().enumerate().map(|(i, (_, t))| placeholder(i + 1, *t)).collect::<Vec<_>>().join(", "),
            self.spec.key.join(", "),
        );
        for values in by_key.values() {
            // Table and column names were checked to be `[A-Za-z0-9_]` when the connector was built.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for v in values {
                q = q.bind(v.clone());
            }
            q.execute(&mut *tx).await.map_err(|e| self.error("insert", &e))?;
        }
        tx.commit().await.map_err(|e| self.error("commit", &e))
    }

    fn error(&self, what: &str, e: &sqlx::Error) -> ConnectorError {
        let message = format!("connector `{}`, table `{}`: {what} failed: {e}", self.connector, self.table);
        match e {
            // The database refused the data (a type, a constraint): sending it again will not help.
            sqlx::Error::Database(_) => ConnectorError::rejected(message),
            _ => ConnectorError::unavailable(message),
        }
    }

    async fn create_table(&self) -> Result<(), ConnectorError> {
        let columns: Vec<String> = self
            .spec
            .columns
            .iter()
            .map(|(c, t)| {
                format!("{c} {}", if self.dialect == Dialect::Postgres { pg_type(*t) } else { sqlite_type(*t) })
            })
            .collect();
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))",
            self.table,
            columns.join(", "),
            self.spec.key.join(", ")
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| self.error("create table", &e))
    }
}

/// A JSON value as the text bound for a column (`None`: NULL). Postgres casts it to the
/// column's type; SQLite's type affinity converts numbers.
fn text_of(v: &Value, t: ColumnType, dialect: Dialect) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if t != ColumnType::Json => Some(s.clone()),
        Value::Bool(b) if dialect == Dialect::Sqlite => Some(if *b { "1" } else { "0" }.to_owned()),
        other => Some(other.to_string()),
    }
}

fn pg_type(t: ColumnType) -> &'static str {
    match t {
        ColumnType::Text => "TEXT",
        ColumnType::Integer => "BIGINT",
        ColumnType::Real => "DOUBLE PRECISION",
        ColumnType::Numeric => "NUMERIC",
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::Date => "DATE",
        ColumnType::Timestamp => "TIMESTAMPTZ",
        ColumnType::Json => "JSONB",
    }
}

fn sqlite_type(t: ColumnType) -> &'static str {
    match t {
        ColumnType::Integer | ColumnType::Boolean => "INTEGER",
        ColumnType::Real => "REAL",
        ColumnType::Numeric => "NUMERIC",
        ColumnType::Text | ColumnType::Date | ColumnType::Timestamp | ColumnType::Json => "TEXT",
    }
}
