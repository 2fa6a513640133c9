//! `kind: sql`: a SQL database as a sink (the DWH's tables, SQLite by default or Postgres),
//! loaded in batches.
//!
//! ```yaml
//! dwh:
//!   kind: sql
//!   url: sqlite://data/dwh.db            # or postgres://…
//!   batch: { rows: 500, every: 1s }      # a batch goes when it has `rows` rows or is `every` old
//!   tables:
//!     campaign_stats:
//!       key: [campaign_id, day]
//!       columns: { campaign_id: integer, day: date, impressions: integer, clicks: integer, cost: numeric }
//! ```
//!
//! `to: { connector: dwh, table: campaign_stats }` adds the body (a row, or an array of rows)
//! to the table's next batch and returns once that batch committed. A batch is one
//! transaction of upserts by the table's key (a row repeated in a batch counts once, the last
//! one), so a batch sent again, or a message redelivered, stores each row once. Tables are
//! created at start when missing (`CREATE TABLE IF NOT EXISTS`, the key as primary key).

mod backfill;
mod batch;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use junction_engine::config::duration::ConfigDuration;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::{BuildCx, Connector, ConnectorError, Consumer, Endpoint, Kind, Role, StartCx};
use junction_engine::store::Store;
use serde::Deserialize;

use crate::batch::{Batcher, Batchers};
use batch::{Dialect, Writer};

pub struct SqlKind;

/// A connector's options in `junction.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlConfig {
    /// `sqlite://path/file.db` (relative to where Junction runs) or `postgres://…`.
    url: String,
    #[serde(default)]
    batch: Option<crate::batch::BatchSpec>,
    /// The tables rows go to, by name.
    tables: BTreeMap<String, TableSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TableSpec {
    /// The columns that identify a row: the primary key, and what an upsert matches on.
    pub(crate) key: Vec<String>,
    /// Column name → type.
    pub(crate) columns: BTreeMap<String, ColumnType>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ColumnType {
    Text,
    Integer,
    Real,
    Numeric,
    Boolean,
    Date,
    Timestamp,
    Json,
}

impl Kind for SqlKind {
    const NAME: &'static str = "sql";
    type Config = SqlConfig;

    fn build(
        &self,
        name: &str,
        config: SqlConfig,
        options: &Node,
        _cx: &BuildCx<'_>,
    ) -> Result<Arc<dyn Connector>, NodeError> {
        let at = |key: &str| Some(options.get(key).map_or(options.pos, |n| n.pos));
        let dialect = if config.url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if config.url.starts_with("postgres://") || config.url.starts_with("postgresql://") {
            Dialect::Postgres
        } else {
            return Err(NodeError { message: "url is `sqlite://…` or `postgres://…`".into(), pos: at("url") });
        };
        for (table, spec) in &config.tables {
            crate::batch::check_name(table).map_err(|e| NodeError { message: e.to_string(), pos: at("tables") })?;
            if spec.key.is_empty() {
                return Err(NodeError { message: format!("table `{table}` needs a `key`"), pos: at("tables") });
            }
            for column in spec.columns.keys() {
                crate::batch::check_name(column)
                    .map_err(|e| NodeError { message: e.to_string(), pos: at("tables") })?;
            }
            if let Some(k) = spec.key.iter().find(|k| !spec.columns.contains_key(*k)) {
                return Err(NodeError {
                    message: format!("table `{table}`: key column `{k}` is not in `columns`"),
                    pos: at("tables"),
                });
            }
        }
        let (rows, every) = crate::batch::BatchSpec::resolve(config.batch, 500, options)?;
        Ok(Arc::new(Sql {
            name: name.to_owned(),
            url: config.url,
            dialect,
            tables: config.tables,
            rows,
            every,
            batchers: Arc::default(),
            pool: Arc::default(),
            store: Arc::default(),
        }))
    }
}

struct Sql {
    name: String,
    url: String,
    dialect: Dialect,
    tables: BTreeMap<String, TableSpec>,
    rows: usize,
    every: Duration,
    /// One per table, made when the connector starts.
    batchers: Batchers,
    /// Set when the connector starts, for its backfill sources.
    pool: Arc<OnceLock<sqlx::AnyPool>>,
    store: Arc<OnceLock<Store>>,
}

/// `from: { connector: dwh, backfill: { table, by, rows, every } }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceSpec {
    backfill: BackfillSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackfillSpec {
    table: String,
    /// A column that is unique and only grows (an id); the table's key when it is one column.
    #[serde(default)]
    by: Option<String>,
    /// Rows per batch (default 500).
    #[serde(default)]
    rows: Option<usize>,
    /// After the last row, how often to look for new ones (default 1m).
    #[serde(default)]
    every: Option<ConfigDuration>,
}

#[async_trait]
impl Connector for Sql {
    fn kind(&self) -> &'static str {
        "sql"
    }

    fn endpoint(&self, role: Role, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Endpoint>, NodeError> {
        crate::batch::load_endpoint("sql", &self.name, self.tables.keys(), &self.batchers, role, options)
    }

    fn consumer(&self, route: &str, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Consumer>, NodeError> {
        let spec: SourceSpec = options.parse()?;
        let at = Some(options.get("backfill").map_or(options.pos, |n| n.pos));
        let spec = spec.backfill;
        let table = self.tables.get(&spec.table).ok_or_else(|| NodeError {
            message: format!("connector `{}` has no table `{}`", self.name, spec.table),
            pos: at,
        })?;
        let by = match (spec.by, table.key.as_slice()) {
            (Some(by), _) => by,
            (None, [only]) => only.clone(),
            (None, _) => {
                return Err(NodeError {
                    message: format!(
                        "table `{}` has a key of several columns: name the one column to backfill `by` (unique, only growing)",
                        spec.table
                    ),
                    pos: at,
                });
            }
        };
        if !table.columns.contains_key(&by) {
            return Err(NodeError { message: format!("table `{}` has no column `{by}`", spec.table), pos: at });
        }
        let rows = spec.rows.unwrap_or(500);
        if rows == 0 {
            return Err(NodeError { message: "`rows` is at least 1".into(), pos: at });
        }
        Ok(Arc::new(backfill::Backfill {
            connector: self.name.clone(),
            pool: self.pool.clone(),
            store: self.store.clone(),
            dialect: self.dialect,
            table: spec.table.clone(),
            spec: table.clone(),
            by,
            rows,
            every: spec.every.map_or(Duration::from_secs(60), |d| d.0),
            key: format!("sql:{}:backfill:{route}", self.name),
        }))
    }

    async fn start(&self, cx: &StartCx) -> Result<(), ConnectorError> {
        let _ = self.store.set(cx.store.clone());
        sqlx::any::install_default_drivers();
        let url = match self.dialect {
            Dialect::Sqlite if !self.url.contains("mode=") => {
                format!("{}{}mode=rwc", self.url, if self.url.contains('?') { "&" } else { "?" })
            }
            _ => self.url.clone(),
        };
        if let Some(path) = url.strip_prefix("sqlite://").and_then(|p| p.split('?').next())
            && let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            let _ = std::fs::create_dir_all(dir);
        }
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(if self.dialect == Dialect::Sqlite { 1 } else { 4 })
            .connect(&url)
            .await
            .map_err(|e| {
                ConnectorError::unavailable(format!(
                    "connector `{}`: cannot open {}: {e}",
                    self.name,
                    junction_engine::redact::url(&self.url)
                ))
            })?;
        let mut batchers = BTreeMap::new();
        for (table, spec) in &self.tables {
            let writer = Writer {
                connector: self.name.clone(),
                pool: pool.clone(),
                dialect: self.dialect,
                table: table.clone(),
                spec: spec.clone(),
            };
            writer.create_table().await?;
            batchers.insert(table.clone(), Arc::new(Batcher::start(writer, self.rows, self.every, &self.name, table)));
        }
        let _ = self.batchers.set(batchers);
        let _ = self.pool.set(pool);
        Ok(())
    }

    async fn stop(&self) {
        crate::batch::stop_all(&self.batchers).await;
    }
}
