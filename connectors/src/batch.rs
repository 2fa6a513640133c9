//! Rows from many messages gathered into batches, for the sinks that load tables (`sql`,
//! `clickhouse`), and the `to: { connector, table }` endpoint they share; not a kind. A batch goes when it holds `rows` rows or its first row is
//! `every` old; each message waits for its batch and is told how it went, so a message is
//! acknowledged only once its rows are written.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::{ConnectorError, Endpoint, Role};
use junction_engine::{Body, Message};
use metrics::Histogram;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// Where a table's batches are written.
#[async_trait]
pub trait Sink: Send + Sync + 'static {
    /// Refuses a row the table cannot take (an unknown column, no key) before it joins a
    /// batch, so one bad message does not fail the others of its batch.
    fn check(&self, row: &Value) -> Result<(), ConnectorError>;

    /// Writes one batch, all of it or nothing (a transaction, one insert). `messages` are the
    /// ids of the messages its rows came from, in the batch's order.
    async fn write(&self, rows: &[&Value], messages: &[&str]) -> Result<(), ConnectorError>;

    /// `connector `dwh`, table `campaign_stats``, for the log.
    fn describe(&self) -> String;
}

/// Rows waiting for a batch, with their message's id and where it waits for the outcome.
type Pending = (Vec<Value>, String, oneshot::Sender<Result<(), ConnectorError>>);

/// A table's batcher: what loads send rows to.
pub struct Batcher {
    tx: mpsc::Sender<Command>,
    sink: Arc<dyn Sink>,
}

enum Command {
    Load(Pending),
    /// Write what is pending now and end.
    Stop(oneshot::Sender<()>),
}

/// Loads waiting at most, across messages, before a load waits for room.
const QUEUE: usize = 1024;

impl Batcher {
    /// Starts the task that writes `sink`'s batches; `sizes` records each batch's rows
    /// (`junction_batch_rows{connector,table}`).
    pub fn start(sink: impl Sink, rows: usize, every: Duration, connector: &str, table: &str) -> Batcher {
        let sizes = metrics::histogram!("junction_batch_rows", "connector" => connector.to_owned(), "table" => table.to_owned());
        let (tx, rx) = mpsc::channel(QUEUE);
        let sink: Arc<dyn Sink> = Arc::new(sink);
        tokio::spawn(run(sink.clone(), sizes, rx, rows, every));
        Batcher { tx, sink }
    }

    /// Adds `rows` to the next batch; returns once that batch was written (or failed). Rows
    /// the table cannot take are refused here, before the batch.
    pub async fn load(&self, rows: Vec<Value>, message: &str) -> Result<(), ConnectorError> {
        rows.iter().try_for_each(|row| self.sink.check(row))?;
        let (done, outcome) = oneshot::channel();
        self.tx
            .send(Command::Load((rows, message.to_owned(), done)))
            .await
            .map_err(|_| ConnectorError::unavailable("the table's batch writer has stopped"))?;
        outcome.await.map_err(|_| ConnectorError::retryable("the batch was dropped before it was written"))?
    }

    /// Writes what is pending and stops taking rows.
    pub async fn flush_and_stop(&self) {
        let (done, flushed) = oneshot::channel();
        if self.tx.send(Command::Stop(done)).await.is_ok() {
            let _ = flushed.await;
        }
    }
}

async fn run(sink: Arc<dyn Sink>, sizes: Histogram, mut rx: mpsc::Receiver<Command>, rows: usize, every: Duration) {
    let mut batch: Vec<Pending> = Vec::new();
    let mut held = 0;
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let command = match deadline {
            Some(at) => tokio::select! {
                c = rx.recv() => c,
                () = tokio::time::sleep_until(at) => {
                    flush(&*sink, &sizes, std::mem::take(&mut batch)).await;
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
                    flush(&*sink, &sizes, std::mem::take(&mut batch)).await;
                    (held, deadline) = (0, None);
                }
            }
            Some(Command::Stop(done)) => {
                flush(&*sink, &sizes, std::mem::take(&mut batch)).await;
                let _ = done.send(());
                return;
            }
            None => {
                flush(&*sink, &sizes, batch).await;
                return;
            }
        }
    }
}

/// Writes one batch and tells each of its messages how it went. A batch the other side
/// refused (a value it cannot take) is written again message by message, so only the messages
/// at fault are refused.
async fn flush(sink: &dyn Sink, sizes: &Histogram, batch: Vec<Pending>) {
    if batch.is_empty() {
        return;
    }
    let rows: Vec<&Value> = batch.iter().flat_map(|(rows, _, _)| rows.iter()).collect();
    let ids: Vec<&str> = batch.iter().map(|(_, id, _)| id.as_str()).collect();
    sizes.record(rows.len() as f64);
    let outcome = sink.write(&rows, &ids).await;
    if let Err(e) = &outcome {
        tracing::warn!(sink = %sink.describe(), rows = rows.len(), error = %e, "a batch failed");
    }
    if matches!(outcome, Err(ConnectorError::Rejected { .. })) && batch.len() > 1 {
        for (rows, id, done) in batch {
            let rows: Vec<&Value> = rows.iter().collect();
            let _ = done.send(sink.write(&rows, &[id.as_str()]).await);
        }
        return;
    }
    for (_, _, done) in batch {
        let _ = done.send(outcome.clone());
    }
}

/// `batch: { rows, every }` of a table sink.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSpec {
    /// Rows a batch holds at most.
    #[serde(default)]
    rows: Option<usize>,
    /// How long the first row of a batch waits for others (default 1s).
    #[serde(default)]
    every: Option<junction_engine::config::duration::ConfigDuration>,
}

impl BatchSpec {
    /// The rows (`default_rows` unless set; at least 1) and the wait, or an error at `options`' `batch`.
    pub fn resolve(
        spec: Option<BatchSpec>,
        default_rows: usize,
        options: &Node,
    ) -> Result<(usize, Duration), NodeError> {
        let spec = spec.unwrap_or_default();
        let rows = spec.rows.unwrap_or(default_rows);
        if rows == 0 {
            let pos = Some(options.get("batch").map_or(options.pos, |n| n.pos));
            return Err(NodeError { message: "`batch.rows` is at least 1".into(), pos });
        }
        Ok((rows, spec.every.map_or(Duration::from_secs(1), |d| d.0)))
    }
}

/// A table sink's batchers by table, made when its connector starts (after its endpoints).
pub type Batchers = Arc<OnceLock<BTreeMap<String, Arc<Batcher>>>>;

/// `{ connector: dwh, table: campaign_stats }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadSpec {
    table: String,
}

/// The `to:` endpoint of a table sink (`kind`), for one of its `tables`.
pub fn load_endpoint<'a>(
    kind: &'static str,
    connector: &str,
    tables: impl Iterator<Item = &'a String>,
    batchers: &Batchers,
    role: Role,
    options: &Node,
) -> Result<Arc<dyn Endpoint>, NodeError> {
    let spec: LoadSpec = options.parse()?;
    let known: Vec<&String> = tables.collect();
    if !known.contains(&&spec.table) {
        let known: Vec<&str> = known.iter().map(|t| t.as_str()).collect();
        return Err(NodeError {
            message: format!("connector `{connector}` has no table `{}`; its tables: {}", spec.table, known.join(", ")),
            pos: options.get("table").map(|n| n.pos),
        });
    }
    if role != Role::Send {
        return Err(NodeError {
            message: format!("a `{kind}` connector loads rows (`to`); it answers no requests"),
            pos: Some(options.pos),
        });
    }
    Ok(Arc::new(Load { kind, connector: connector.to_owned(), table: spec.table, batchers: batchers.clone() }))
}

/// Writes what every batcher holds and stops them (a connector stopping).
pub async fn stop_all(batchers: &Batchers) {
    if let Some(batchers) = batchers.get() {
        for b in batchers.values() {
            b.flush_and_stop().await;
        }
    }
}

/// `to: { connector: …, table: … }`: the body (a row, or an array of rows) into the table's
/// next batch.
struct Load {
    kind: &'static str,
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
        batcher.load(rows, &msg.id).await
    }

    async fn request(&self, msg: &Message) -> Result<Message, ConnectorError> {
        self.send(msg).await?;
        Ok(Message::new(Body::Json(Value::Null)))
    }

    fn describe(&self) -> String {
        format!("{} table {}", self.kind, self.table)
    }
}

/// Refuses a row that is not an object, has a column the table lacks, or lacks part of the key.
pub fn check_row(
    table: &str,
    row: &Value,
    has_column: impl Fn(&str) -> bool,
    key: &[String],
) -> Result<(), ConnectorError> {
    let Some(object) = row.as_object() else {
        return Err(ConnectorError::rejected(format!("a row of `{table}` is not an object")));
    };
    if let Some(unknown) = object.keys().find(|k| !has_column(k)) {
        return Err(ConnectorError::rejected(format!("table `{table}` has no column `{unknown}`")));
    }
    if let Some(k) = key.iter().find(|k| object.get(*k).is_none_or(Value::is_null)) {
        return Err(ConnectorError::rejected(format!("a row of `{table}` has no `{k}` (part of its key)")));
    }
    Ok(())
}

/// Why a name in the options cannot go into SQL.
#[derive(Debug, thiserror::Error)]
pub enum NameError {
    /// Empty, or with a character other than letters, digits and `_`, or starting with a
    /// digit: rename the table or column.
    #[error("`{name}` is not a table or column name (letters, digits and `_`)")]
    NotAName { name: String },
}

/// Names go into SQL as they are: letters, digits and `_` only.
pub fn check_name(name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok { Ok(()) } else { Err(NameError::NotAName { name: name.to_owned() }) }
}
