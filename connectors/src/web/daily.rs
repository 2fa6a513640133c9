//! A source of daily statistics: per campaign and day, one message keyed by both, walked on a
//! schedule from a checkpoint. A kind says how to read the rows of a date window ([`Days`]);
//! [`DailyStatistics`] does the rest.
//!
//! Each walk asks for the days from the checkpoint's last day less `trailing_days` (ad
//! platforms revise recent days: clicks found invalid, late conversions) to today, so every day
//! is read again that many times and a route upserts it by `(campaign_id, day)`. The checkpoint
//! (the last day of the walk) is stored once every row of the walk was delivered: a process
//! killed mid-walk walks the same window again.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use junction_engine::config::duration::ConfigDuration;
use junction_engine::config::node::NodeError;
use junction_engine::connector::{ConnectorError, Consumer, Inbox, slept};
use junction_engine::store::Store;
use junction_engine::{Body, Message};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How a kind reads daily statistics.
#[async_trait]
pub trait Days: Send + Sync + 'static {
    /// Rows `{campaign_id, day, …}` of the days from `from` to `to`, both included.
    async fn rows(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<Value>, ConnectorError>;

    /// The connector's name, in each message's `meta.source`.
    fn connector(&self) -> &str;

    /// What the source reads, for `junction routes` and the graph.
    fn describe(&self) -> String;
}

/// The schedule and window of a statistics source.
pub struct Window {
    /// Between two walks.
    pub every: Duration,
    /// The first day read when there is no checkpoint yet.
    pub since: NaiveDate,
    /// Days before the checkpoint read again on each walk.
    pub trailing: i64,
}

impl Window {
    /// From a source's options (`every` default 1h, `since` YYYY-MM-DD, `trailing_days`
    /// default 3); `pos` is where an error points.
    pub fn new(
        every: Option<ConfigDuration>,
        since: &str,
        trailing_days: Option<u32>,
        pos: Option<junction_engine::config::node::Pos>,
    ) -> Result<Window, NodeError> {
        let since = NaiveDate::parse_from_str(since, "%Y-%m-%d")
            .map_err(|_| NodeError { message: "`since` is a date, YYYY-MM-DD".into(), pos })?;
        Ok(Window {
            every: every.map_or(Duration::from_secs(3600), |d| d.0),
            since,
            trailing: i64::from(trailing_days.unwrap_or(3)),
        })
    }
}

pub struct DailyStatistics<D> {
    pub days: D,
    pub window: Window,
    /// The checkpoint's key in the store.
    pub key: String,
    /// Set when the connector starts.
    pub store: Arc<OnceLock<Store>>,
}

#[async_trait]
impl<D: Days> Consumer for DailyStatistics<D> {
    async fn run(&self, inbox: Arc<dyn Inbox>, mut stop: watch::Receiver<bool>) {
        let route = inbox.route().to_owned();
        let mut wait = Duration::from_secs(1);
        loop {
            let pause = match self.walk(&inbox, &mut stop).await {
                Ok(Some(rows)) => {
                    wait = Duration::from_secs(1);
                    tracing::info!(route, rows, source = %self.days.describe(), "daily statistics walked");
                    self.window.every
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(route, error = %e, source = %self.days.describe(), "cannot read daily statistics; trying again");
                    // A platform's "come back tomorrow" waits no longer than the schedule.
                    let w = e.retry_after().unwrap_or(wait).min(self.window.every);
                    wait = (wait * 2).min(self.window.every);
                    w
                }
            };
            if !slept(pause, &mut stop).await {
                return;
            }
        }
    }

    fn describe(&self) -> String {
        format!("{} since {}", self.days.describe(), self.window.since)
    }

    /// One walker at a time: two would deliver every row twice and race on the checkpoint.
    fn exclusive(&self) -> bool {
        true
    }
}

impl<D: Days> DailyStatistics<D> {
    /// One walk; the rows delivered, or `None` when stopping.
    async fn walk(
        &self,
        inbox: &Arc<dyn Inbox>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Option<usize>, ConnectorError> {
        let store = self.store.get().ok_or_else(|| ConnectorError::unavailable("the connector is not started"))?;
        let checkpoint = store
            .checkpoint_get(&self.key)
            .await
            .map_err(|e| ConnectorError::unavailable(format!("cannot read checkpoint {}: {e}", self.key)))?
            .and_then(|c| NaiveDate::parse_from_str(&c, "%Y-%m-%d").ok());
        let to = chrono::Utc::now().date_naive();
        let from = match checkpoint {
            Some(last) => (last - chrono::Duration::days(self.window.trailing)).max(self.window.since),
            None => self.window.since,
        };
        let rows = self.days.rows(from, to).await?;
        let count = rows.len();
        let mut running = JoinSet::new();
        for row in rows {
            let Some(admission) = inbox.admit(stop).await else {
                let _ = super::all_settled(&mut running).await;
                return Ok(None);
            };
            let inbox = inbox.clone();
            let msg = self.message(row);
            running.spawn(async move { inbox.deliver(msg, admission).await });
        }
        if !super::all_settled(&mut running).await {
            // A stop left some undelivered: the checkpoint stays, the days are read again.
            return Ok(None);
        }
        store
            .checkpoint_put(&self.key, &to.to_string())
            .await
            .map_err(|e| ConnectorError::unavailable(format!("cannot store checkpoint {}: {e}", self.key)))?;
        Ok(Some(count))
    }

    fn message(&self, row: Value) -> Message {
        let campaign = row["campaign_id"].clone();
        let day = row["day"].as_str().unwrap_or_default().to_owned();
        let mut msg = Message::new(Body::Json(row));
        msg.meta.key = Some(format!("{campaign}:{day}"));
        msg.meta.source.insert("connector".into(), Value::from(self.days.connector()));
        msg.meta.source.insert("campaign_id".into(), campaign);
        msg.meta.source.insert("day".into(), Value::from(day));
        msg
    }
}
