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

mod batch;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use junction_engine::config::duration::ConfigDuration;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::{BuildCx, Connector, ConnectorError, Endpoint, Kind, Role, StartCx};
use junction_engine::{Body, Message};
use serde::Deserialize;
use serde_json::Value;

use batch::{Batcher, Dialect};

pub struct SqlKind;

/// A connector's options in `junction.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlConfig {
    /// `sqlite://path/file.db` (relative to where Junction runs) or `postgres://…`.
    url: String,
    #[serde(default)]
    batch: Option<BatchSpec>,
    /// The tables rows go to, by name.
    tables: BTreeMap<String, TableSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchSpec {
    /// Rows a batch holds at most (default 500).
    #[serde(default)]
    rows: Option<usize>,
    /// How long the first row of a batch waits for others (default 1s).
    #[serde(default)]
    every: Option<ConfigDuration>,
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
            check_name(table).map_err(|message| NodeError { message, pos: at("tables") })?;
            if spec.key.is_empty() {
                return Err(NodeError { message: format!("table `{table}` needs a `key`"), pos: at("tables") });
            }
            for column in spec.columns.keys() {
                check_name(column).map_err(|message| NodeError { message, pos: at("tables") })?;
            }
            if let Some(k) = spec.key.iter().find(|k| !spec.columns.contains_key(*k)) {
                return Err(NodeError {
                    message: format!("table `{table}`: key column `{k}` is not in `columns`"),
                    pos: at("tables"),
                });
            }
        }
        let batch = config.batch.unwrap_or(BatchSpec { rows: None, every: None });
        let rows = batch.rows.unwrap_or(500);
        if rows == 0 {
            return Err(NodeError { message: "`batch.rows` is at least 1".into(), pos: at("batch") });
        }
        Ok(Arc::new(Sql {
            name: name.to_owned(),
            url: config.url,
            dialect,
            tables: config.tables,
            rows,
            every: batch.every.map_or(Duration::from_secs(1), |d| d.0),
            batchers: Arc::default(),
        }))
    }
}

/// Names go into SQL as they are: letters, digits and `_` only.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok { Ok(()) } else { Err(format!("`{name}` is not a table or column name (letters, digits and `_`)")) }
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
}

/// `{ connector: dwh, table: campaign_stats }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadSpec {
    table: String,
}

#[async_trait]
impl Connector for Sql {
    fn kind(&self) -> &'static str {
        "sql"
    }

    fn endpoint(&self, role: Role, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Endpoint>, NodeError> {
        let spec: LoadSpec = options.parse()?;
        if !self.tables.contains_key(&spec.table) {
            let known: Vec<&str> = self.tables.keys().map(String::as_str).collect();
            return Err(NodeError {
                message: format!(
                    "connector `{}` has no table `{}`; its tables: {}",
                    self.name,
                    spec.table,
                    known.join(", ")
                ),
                pos: options.get("table").map(|n| n.pos),
            });
        }
        if role != Role::Send {
            return Err(NodeError {
                message: "a `sql` connector loads rows (`to`); it answers no requests".into(),
                pos: Some(options.pos),
            });
        }
        Ok(Arc::new(Load { connector: self.name.clone(), table: spec.table, batchers: self.batchers.clone() }))
    }

    async fn start(&self, _cx: &StartCx) -> Result<(), ConnectorError> {
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
            let batcher =
                Batcher::start(&self.name, pool.clone(), self.dialect, table, spec.clone(), self.rows, self.every)
                    .await?;
            batchers.insert(table.clone(), Arc::new(batcher));
        }
        let _ = self.batchers.set(batchers);
        Ok(())
    }

    async fn stop(&self) {
        if let Some(batchers) = self.batchers.get() {
            for b in batchers.values() {
                b.flush_and_stop().await;
            }
        }
    }
}

/// The batchers of a connector's tables, made when it starts (after its endpoints).
type Batchers = Arc<OnceLock<BTreeMap<String, Arc<Batcher>>>>;

/// `to: { connector: dwh, table: … }`.
struct Load {
    connector: String,
    table: String,
    batchers: Batchers,
}

#[async_trait]
impl Endpoint for Load {
    async fn send(&self, msg: &Message) -> Result<(), ConnectorError> {
        let batcher = self
            .batchers
            .get()
            .and_then(|b| b.get(&self.table).cloned())
            .ok_or_else(|| ConnectorError::unavailable(format!("connector `{}` is not started", self.connector)))?;
        let rows = match msg.body.to_json() {
            Value::Array(rows) => rows,
            row @ Value::Object(_) => vec![row],
            _ => {
                return Err(ConnectorError::rejected(format!(
                    "a row for table `{}` is an object (or an array of them)",
                    self.table
                )));
            }
        };
        batcher.load(rows).await
    }

    async fn request(&self, msg: &Message) -> Result<Message, ConnectorError> {
        self.send(msg).await?;
        Ok(Message::new(Body::Json(Value::Null)))
    }

    fn describe(&self) -> String {
        format!("table {}", self.table)
    }
}
