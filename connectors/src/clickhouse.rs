//! `kind: clickhouse`: ClickHouse over its HTTP interface as a sink (the DWH's analytical side),
//! loaded in batches (https://clickhouse.com/docs/interfaces/http).
//!
//! ```yaml
//! clickhouse:
//!   kind: clickhouse
//!   url: http://127.0.0.1:8123
//!   database: dwh
//!   user: ${CLICKHOUSE_USER}             # default `default`
//!   password: ${CLICKHOUSE_PASSWORD}
//!   batch: { rows: 1000, every: 1s }
//!   tables:
//!     campaign_stats:
//!       key: [campaign_id, day]          # ORDER BY: rows with one key collapse into the last
//!       columns: { campaign_id: UInt64, day: Date, clicks: UInt64, cost: "Decimal(18, 2)" }
//! ```
//!
//! - A batch is one `INSERT INTO db.table FORMAT JSONEachRow` with `wait_end_of_query=1` (the
//!   status tells whether it was written) and `insert_deduplication_token` = a hash of the
//!   batch's bytes. The rows of a batch are put in key order, one per key (the last), so the
//!   same rows make the same bytes and the same token: a batch sent again — its first insert
//!   written but its answer lost — is stored once. The writer sends a failed batch again
//!   itself, byte for byte, before it gives the failure to the batch's messages.
//! - Tables are created when missing as `ReplacingMergeTree` ordered by the key, with
//!   `non_replicated_deduplication_window` set (a plain MergeTree ignores the token); a row
//!   loaded again with new values replaces the old one when parts merge (`FINAL` reads it so
//!   at once).
//! - Errors are ClickHouse's `X-ClickHouse-Exception-Code`: overload, timeouts and network
//!   codes, 5xx and no answer are retried; a row the table refuses (an unknown column, a value
//!   that does not parse), a missing table and bad credentials are refused.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use junction_engine::config::duration::ConfigDuration;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::{BuildCx, Connector, ConnectorError, Endpoint, Kind, Role, StartCx};
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::batch::{Batcher, Batchers, Sink};
use crate::web;

pub struct ClickHouseKind;

/// A connector's options in `junction.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// The HTTP interface: `http://host:8123` (or `https://…:8443`).
    url: String,
    /// The database the tables are in (created when missing; default `default`).
    #[serde(default)]
    database: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// Per-insert timeout (default 30s).
    #[serde(default)]
    timeout: Option<ConfigDuration>,
    #[serde(default)]
    batch: Option<crate::batch::BatchSpec>,
    tables: BTreeMap<String, TableSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableSpec {
    /// The `ORDER BY` columns: what identifies a row.
    key: Vec<String>,
    /// Column name → ClickHouse type (`UInt64`, `Date`, `Decimal(18, 2)`, `String`, …).
    columns: BTreeMap<String, String>,
}

impl Kind for ClickHouseKind {
    const NAME: &'static str = "clickhouse";
    type Config = ClickHouseConfig;

    fn build(
        &self,
        name: &str,
        config: ClickHouseConfig,
        options: &Node,
        _cx: &BuildCx<'_>,
    ) -> Result<Arc<dyn Connector>, NodeError> {
        let at = |key: &str| Some(options.get(key).map_or(options.pos, |n| n.pos));
        let url = Url::parse(&config.url).ok().filter(|u| matches!(u.scheme(), "http" | "https")).ok_or_else(|| {
            NodeError { message: "url is `http://host:8123` or `https://…`".into(), pos: at("url") }
        })?;
        let database = config.database.unwrap_or_else(|| "default".to_owned());
        crate::batch::check_name(&database).map_err(|e| NodeError { message: e.to_string(), pos: at("database") })?;
        for (table, spec) in &config.tables {
            crate::batch::check_name(table).map_err(|e| NodeError { message: e.to_string(), pos: at("tables") })?;
            if spec.key.is_empty() {
                return Err(NodeError { message: format!("table `{table}` needs a `key`"), pos: at("tables") });
            }
            for (column, kind) in &spec.columns {
                crate::batch::check_name(column)
                    .map_err(|e| NodeError { message: e.to_string(), pos: at("tables") })?;
                // A type goes into the CREATE TABLE as it is: names, digits, `(`, `)`, `,`, spaces.
                if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric() || "_(), ".contains(c)) {
                    return Err(NodeError {
                        message: format!("table `{table}`: `{kind}` is not a ClickHouse type"),
                        pos: at("tables"),
                    });
                }
            }
            if let Some(k) = spec.key.iter().find(|k| !spec.columns.contains_key(*k)) {
                return Err(NodeError {
                    message: format!("table `{table}`: key column `{k}` is not in `columns`"),
                    pos: at("tables"),
                });
            }
        }
        let (rows, every) = crate::batch::BatchSpec::resolve(config.batch, 1000, options)?;
        let timeout = config.timeout.map_or(Duration::from_secs(30), |t| t.0);
        let client =
            reqwest::Client::builder().timeout(timeout).connect_timeout(Duration::from_secs(5)).build().map_err(
                |e| NodeError { message: format!("cannot build the HTTP client: {e}"), pos: Some(options.pos) },
            )?;
        let server = Arc::new(Server {
            name: name.to_owned(),
            url,
            client,
            user: config.user.unwrap_or_else(|| "default".to_owned()),
            password: config.password.unwrap_or_default(),
            database,
            created: AtomicBool::new(false),
            tables: config.tables,
        });
        Ok(Arc::new(ClickHouse { server, rows, every, batchers: Arc::default() }))
    }
}

/// The server and what the connector knows of it.
struct Server {
    name: String,
    url: Url,
    client: reqwest::Client,
    user: String,
    password: String,
    database: String,
    /// Whether the database and tables were created (again after they were dropped).
    created: AtomicBool,
    tables: BTreeMap<String, TableSpec>,
}

struct ClickHouse {
    server: Arc<Server>,
    rows: usize,
    every: Duration,
    batchers: Batchers,
}

#[async_trait]
impl Connector for ClickHouse {
    fn kind(&self) -> &'static str {
        "clickhouse"
    }

    fn endpoint(&self, role: Role, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Endpoint>, NodeError> {
        let tables = self.server.tables.keys();
        crate::batch::load_endpoint("clickhouse", &self.server.name, tables, &self.batchers, role, options)
    }

    async fn start(&self, _cx: &StartCx) -> Result<(), ConnectorError> {
        // A server that is down now is not a reason to refuse to start: the tables are
        // created before the first insert instead.
        if let Err(e) = self.server.create().await {
            tracing::warn!(connector = %self.server.name, error = %e, "cannot create the ClickHouse tables yet; trying again before the first insert");
        }
        let mut batchers = BTreeMap::new();
        for (table, spec) in &self.server.tables {
            let writer = Writer { server: self.server.clone(), table: table.clone(), spec: spec.clone() };
            batchers.insert(
                table.clone(),
                Arc::new(Batcher::start(writer, self.rows, self.every, &self.server.name, table)),
            );
        }
        let _ = self.batchers.set(batchers);
        Ok(())
    }

    async fn stop(&self) {
        crate::batch::stop_all(&self.batchers).await;
    }
}

/// How many inserts back ClickHouse remembers tokens (`non_replicated_deduplication_window`).
const DEDUPLICATION_WINDOW: u32 = 1000;

/// Tries of one batch, the same bytes each time, before its messages are told it failed.
const TRIES: u32 = 3;

impl Server {
    /// Creates the database and the tables when missing, once.
    async fn create(&self) -> Result<(), ConnectorError> {
        if self.created.load(Ordering::Acquire) {
            return Ok(());
        }
        self.query(&format!("CREATE DATABASE IF NOT EXISTS {}", self.database), &[], String::new()).await?;
        for (table, spec) in &self.tables {
            let columns: Vec<String> = spec.columns.iter().map(|(c, t)| format!("{c} {t}")).collect();
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS {}.{table} ({}) ENGINE = ReplacingMergeTree ORDER BY ({}) \
                 SETTINGS non_replicated_deduplication_window = {DEDUPLICATION_WINDOW}",
                self.database,
                columns.join(", "),
                spec.key.join(", ")
            );
            self.query(&sql, &[], String::new()).await?;
        }
        self.created.store(true, Ordering::Release);
        Ok(())
    }

    /// One statement: `sql` in the URL, `data` as the body (an INSERT's rows).
    async fn query(&self, sql: &str, settings: &[(&str, &str)], data: String) -> Result<String, ConnectorError> {
        let mut url = self.url.clone();
        // A statement without data goes as the body (a POST needs one); an INSERT's goes in the
        // URL, its rows as the body.
        let data = if data.is_empty() {
            sql.to_owned()
        } else {
            url.query_pairs_mut().append_pair("query", sql);
            data
        };
        url.query_pairs_mut().append_pair("wait_end_of_query", "1");
        for (k, v) in settings {
            url.query_pairs_mut().append_pair(k, v);
        }
        let what = format!("ClickHouse {}", self.name);
        let resp = self
            .client
            .post(url)
            .header("X-ClickHouse-User", &self.user)
            .header("X-ClickHouse-Key", &self.password)
            .body(data)
            .send()
            .await
            .map_err(|e| web::transport_error(&what, &e))?;
        let status = resp.status();
        let code = resp
            .headers()
            .get("x-clickhouse-exception-code")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok());
        let headers = resp.headers().clone();
        let body = web::read_limited(resp).await?;
        let text = String::from_utf8_lossy(&body).into_owned();
        if status.is_success() && code.is_none() {
            return Ok(text);
        }
        let message = format!("{what} answered {status}: {}", text.trim().chars().take(500).collect::<String>());
        Err(match code {
            Some(code) if RETRYABLE.contains(&code) => ConnectorError::retryable(message),
            // Credentials or grants refused: the server's configuration, not the rows; the
            // messages wait rather than go to dead letters.
            Some(516 | 497 | 192 | 194) => ConnectorError::unavailable(message),
            // The table or database was dropped after it was created here: create it again.
            Some(60 | 81) => {
                self.created.store(false, Ordering::Release);
                ConnectorError::unavailable(message)
            }
            Some(_) => ConnectorError::rejected(message),
            None => web::status_error(status, message, &headers),
        })
    }
}

/// Codes that a later try may not get: overload, timeouts, the network, a replica away
/// (https://github.com/ClickHouse/ClickHouse/blob/master/src/Common/ErrorCodes.cpp).
const RETRYABLE: [u32; 14] = [
    159,  // TIMEOUT_EXCEEDED
    164,  // READONLY
    202,  // TOO_MANY_SIMULTANEOUS_QUERIES
    209,  // SOCKET_TIMEOUT
    210,  // NETWORK_ERROR
    241,  // MEMORY_LIMIT_EXCEEDED
    242,  // TABLE_IS_READ_ONLY
    252,  // TOO_MANY_PARTS
    285,  // TOO_FEW_LIVE_REPLICAS
    319,  // UNKNOWN_STATUS_OF_INSERT
    394,  // QUERY_WAS_CANCELLED
    425,  // SYSTEM_ERROR
    999,  // KEEPER_EXCEPTION
    1002, // UNKNOWN_EXCEPTION
];

/// One table's batches.
struct Writer {
    server: Arc<Server>,
    table: String,
    spec: TableSpec,
}

#[async_trait]
impl Sink for Writer {
    fn check(&self, row: &Value) -> Result<(), ConnectorError> {
        crate::batch::check_row(&self.table, row, |c| self.spec.columns.contains_key(c), &self.spec.key)
    }

    async fn write(&self, rows: &[&Value], messages: &[&str]) -> Result<(), ConnectorError> {
        self.server.create().await?;
        let data = self.body(rows);
        if data.is_empty() {
            return Ok(());
        }
        let token = token(&self.table, messages, &data);
        let sql = format!("INSERT INTO {}.{} FORMAT JSONEachRow", self.server.database, self.table);
        // Junction batches itself: the server writes each insert as it comes (`async_insert`
        // is on by default from ClickHouse 26.2).
        let settings = [
            ("insert_deduplication_token", token.as_str()),
            ("async_insert", "0"),
            // A column the table lacks is an error, not silently dropped (a table created before
            // the column was added to the options).
            ("input_format_skip_unknown_fields", "0"),
            ("date_time_input_format", "best_effort"),
        ];
        let mut wait = Duration::from_millis(200);
        let mut tries = 0;
        loop {
            tries += 1;
            match self.server.query(&sql, &settings, data.clone()).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_retryable() && tries < TRIES => {
                    tracing::debug!(sink = %self.describe(), error = %e, token, "sending the batch again, byte for byte");
                    // A long Retry-After is the messages' to wait (the route's retries), not the
                    // table writer's, which every load waits on.
                    tokio::time::sleep(e.retry_after().unwrap_or(wait).min(Duration::from_secs(5))).await;
                    wait *= 2;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn describe(&self) -> String {
        format!("connector `{}`, table `{}`", self.server.name, self.table)
    }
}

impl Writer {
    /// The batch as JSONEachRow: one line per key (the last row given for it), in key order,
    /// so the same rows make the same bytes whatever order they came in.
    fn body(&self, rows: &[&Value]) -> String {
        let mut by_key: BTreeMap<String, String> = BTreeMap::new();
        for row in rows {
            let key: Vec<&Value> = self.spec.key.iter().map(|k| &row[k.as_str()]).collect();
            by_key.insert(serde_json::to_string(&key).unwrap_or_default(), row.to_string());
        }
        let mut data = String::with_capacity(by_key.values().map(|l| l.len() + 1).sum());
        for line in by_key.values() {
            data.push_str(line);
            data.push('\n');
        }
        data
    }
}

/// The deduplication token of a table's batch: a hash of the messages it holds and its bytes.
/// The same messages with the same rows (a batch sent again, a message redelivered alone, a
/// backfill range read again) make the same token; the same rows from other messages (a value
/// changed and changed back) make another, and are written.
fn token(table: &str, messages: &[&str], data: &str) -> String {
    let mut ids = messages.to_vec();
    ids.sort_unstable();
    let mut h = Sha256::new().chain_update(table.as_bytes()).chain_update([0]);
    for id in ids {
        h.update(id.as_bytes());
        h.update([0]);
    }
    h.update(data.as_bytes());
    format!("jn-{}", hex::encode(&h.finalize()[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn writer() -> Writer {
        let spec = TableSpec {
            key: vec!["campaign_id".into(), "day".into()],
            columns: [("campaign_id", "UInt64"), ("day", "Date"), ("clicks", "UInt64")]
                .into_iter()
                .map(|(c, t)| (c.to_owned(), t.to_owned()))
                .collect(),
        };
        let server = Server {
            name: "ch".into(),
            url: Url::parse("http://127.0.0.1:1").expect("url"),
            client: reqwest::Client::new(),
            user: "default".into(),
            password: String::new(),
            database: "dwh".into(),
            created: AtomicBool::new(false),
            tables: BTreeMap::new(),
        };
        Writer { server: Arc::new(server), table: "stats".into(), spec }
    }

    #[test]
    fn the_same_rows_in_another_order_make_the_same_batch_and_token() {
        let w = writer();
        let a = json!({ "campaign_id": 1, "day": "2026-12-01", "clicks": 3 });
        let b = json!({ "campaign_id": 2, "day": "2026-12-01", "clicks": 4 });
        let b_again = json!({ "campaign_id": 2, "day": "2026-12-01", "clicks": 5 });
        let one = w.body(&[&a, &b, &b_again]);
        let two = w.body(&[&b, &a, &b_again]);
        assert_eq!(one, two);
        assert_eq!(one.lines().count(), 2, "one line per key, the last: {one}");
        assert!(one.contains("\"clicks\":5"), "{one}");
        assert_eq!(token("stats", &["m1", "m2"], &one), token("stats", &["m2", "m1"], &two));
        assert_ne!(token("stats", &["m1"], &one), token("other", &["m1"], &one), "a token is the table's");
        assert_ne!(token("stats", &["m1"], &one), token("stats", &["m3"], &one), "the same rows from another message");
    }

    #[test]
    fn rows_the_table_cannot_take_are_refused_before_the_batch() {
        let w = writer();
        assert!(w.check(&json!({ "campaign_id": 1, "day": "2026-12-01" })).is_ok());
        let unknown = w.check(&json!({ "campaign_id": 1, "day": "2026-12-01", "cpm": 2 })).expect_err("unknown");
        assert!(matches!(unknown, ConnectorError::Rejected { .. }), "{unknown:?}");
        assert!(w.check(&json!({ "campaign_id": 1 })).is_err(), "no day");
        assert!(w.check(&json!([1, 2])).is_err());
    }
}
