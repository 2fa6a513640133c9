//! `from: { connector: ads, statistics: { every: 1h, since: 2026-11-01, trailing_days: 3 } }`:
//! daily statistics per campaign as messages, one per `(campaign, day)`, keyed by both.
//!
//! Each walk asks for the days from the checkpoint's last day less `trailing_days` (Direct
//! revises recent days: clicks found invalid, late conversions) to today, so every day is read
//! again that many times and a route upserts it by `(campaign_id, day)`. The checkpoint (the
//! last day of the walk) is stored once every row of the walk was delivered: a process killed
//! mid-walk walks the same window again.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use junction_engine::config::duration::ConfigDuration;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::{ConnectorError, Consumer, Inbox, stopped};
use junction_engine::{Body, Message};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Direct;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceSpec {
    statistics: StatsSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsSpec {
    /// Between two walks (default 1h).
    #[serde(default)]
    every: Option<ConfigDuration>,
    /// The first day to read when there is no checkpoint yet (YYYY-MM-DD).
    since: String,
    /// Days before the checkpoint read again on each walk (default 3).
    #[serde(default)]
    trailing_days: Option<u32>,
    #[serde(default)]
    client_login: Option<String>,
}

pub(super) fn consumer(direct: &Arc<Direct>, route: &str, options: &Node) -> Result<Arc<dyn Consumer>, NodeError> {
    let spec: SourceSpec = options.parse()?;
    let at = options.get("statistics").map(|n| n.pos);
    let since = NaiveDate::parse_from_str(&spec.statistics.since, "%Y-%m-%d")
        .map_err(|_| NodeError { message: "`since` is a date, YYYY-MM-DD".into(), pos: at })?;
    Ok(Arc::new(Statistics {
        direct: direct.clone(),
        every: spec.statistics.every.map_or(Duration::from_secs(3600), |d| d.0),
        since,
        trailing: i64::from(spec.statistics.trailing_days.unwrap_or(3)),
        login: spec.statistics.client_login,
        key: format!("yandex_direct:{}:statistics:{route}", direct.api.name),
    }))
}

struct Statistics {
    direct: Arc<Direct>,
    every: Duration,
    since: NaiveDate,
    trailing: i64,
    login: Option<String>,
    key: String,
}

#[async_trait]
impl Consumer for Statistics {
    async fn run(&self, inbox: Arc<dyn Inbox>, mut stop: watch::Receiver<bool>) {
        let route = inbox.route().to_owned();
        let mut wait = Duration::from_secs(1);
        loop {
            let pause = match self.walk(&inbox, &mut stop).await {
                Ok(Some(rows)) => {
                    wait = Duration::from_secs(1);
                    tracing::info!(route, rows, "Yandex Direct statistics walked");
                    self.every
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(route, error = %e, "cannot read Yandex Direct statistics; trying again");
                    let w = e.retry_after().unwrap_or(wait);
                    wait = (wait * 2).min(self.every);
                    w
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = stopped(&mut stop) => return,
            }
        }
    }

    fn describe(&self) -> String {
        format!("yandex direct {} daily statistics since {}", self.direct.api.name, self.since)
    }

    /// One walker at a time: two would deliver every row twice and race on the checkpoint.
    fn exclusive(&self) -> bool {
        true
    }
}

impl Statistics {
    /// One walk; the rows delivered, or `None` when stopping.
    async fn walk(
        &self,
        inbox: &Arc<dyn Inbox>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Option<usize>, ConnectorError> {
        let store =
            self.direct.store.get().ok_or_else(|| ConnectorError::unavailable("the connector is not started"))?;
        let checkpoint = store
            .checkpoint_get(&self.key)
            .await
            .map_err(|e| ConnectorError::unavailable(format!("cannot read checkpoint {}: {e}", self.key)))?
            .and_then(|c| NaiveDate::parse_from_str(&c, "%Y-%m-%d").ok());
        let to = chrono::Utc::now().date_naive();
        let from = match checkpoint {
            Some(last) => (last - chrono::Duration::days(self.trailing)).max(self.since),
            None => self.since,
        };
        let login = self.direct.login(self.login.as_deref());
        let rows = super::report::campaign_days(&self.direct, &from.to_string(), &to.to_string(), login, None).await?;
        let count = rows.len();
        let mut running = JoinSet::new();
        for row in rows {
            let Some(admission) = inbox.admit(stop).await else {
                while running.join_next().await.is_some() {}
                return Ok(None);
            };
            let inbox = inbox.clone();
            let msg = self.message(row);
            running.spawn(async move { inbox.deliver(msg, admission).await });
        }
        while running.join_next().await.is_some() {}
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
        msg.meta.source.insert("connector".into(), Value::from(self.direct.api.name.as_str()));
        msg.meta.source.insert("campaign_id".into(), campaign);
        msg.meta.source.insert("day".into(), Value::from(day));
        msg
    }
}
