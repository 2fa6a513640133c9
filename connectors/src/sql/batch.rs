//! One table's writer: a batch of rows as one transaction of upserts (the batching itself is
//! [`crate::batch`]'s).

use std::collections::BTreeMap;

use async_trait::async_trait;
use junction_engine::connector::ConnectorError;
use serde_json::Value;
use sqlx::AnyPool;

use super::{ColumnType, TableSpec};
use crate::batch::Sink;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

pub(super) struct Writer {
    pub(super) connector: String,
    pub(super) pool: AnyPool,
    pub(super) dialect: Dialect,
    pub(super) table: String,
    pub(super) spec: TableSpec,
}

#[async_trait]
impl Sink for Writer {
    fn check(&self, row: &Value) -> Result<(), ConnectorError> {
        crate::batch::check_row(&self.table, row, |c| self.spec.columns.contains_key(c), &self.spec.key)
    }

    async fn write(&self, rows: &[&Value], _messages: &[&str]) -> Result<(), ConnectorError> {
        self.upsert(rows).await
    }

    fn describe(&self) -> String {
        format!("connector `{}`, table `{}`", self.connector, self.table)
    }
}

impl Writer {
    /// One transaction of upserts, a row repeated in the batch (by key) written once, the last.
    async fn upsert(&self, rows: &[&Value]) -> Result<(), ConnectorError> {
        let columns: Vec<(&String, ColumnType)> = self.spec.columns.iter().map(|(c, t)| (c, *t)).collect();
        let mut by_key: BTreeMap<Vec<String>, Vec<Option<String>>> = BTreeMap::new();
        for row in rows {
            self.check(row)?;
            let key = self.spec.key.iter().map(|k| row[k.as_str()].to_string()).collect();
            let values =
                columns.iter().map(|(c, t)| row.get(c.as_str()).and_then(|v| text_of(v, *t, self.dialect))).collect();
            by_key.insert(key, values);
        }
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

    pub(super) async fn create_table(&self) -> Result<(), ConnectorError> {
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

pub(super) fn pg_type(t: ColumnType) -> &'static str {
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
