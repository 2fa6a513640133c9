//! `from: { connector: ads, statistics: { every: 1h, since: 2026-11-01, trailing_days: 3 } }`:
//! Direct's daily statistics per campaign (from reports), walked by
//! [`crate::web::daily::DailyStatistics`].

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use junction_engine::config::duration::ConfigDuration;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::{ConnectorError, Consumer};
use serde::Deserialize;
use serde_json::Value;

use super::Direct;
use crate::web::daily::{DailyStatistics, Days, Window};

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
    let s = spec.statistics;
    let window = Window::new(s.every, &s.since, s.trailing_days, options.get("statistics").map(|n| n.pos))?;
    Ok(Arc::new(DailyStatistics {
        days: CampaignDays { direct: direct.clone(), login: s.client_login },
        window,
        key: format!("yandex_direct:{}:statistics:{route}", direct.api.name),
        store: direct.store.clone(),
    }))
}

struct CampaignDays {
    direct: Arc<Direct>,
    login: Option<String>,
}

#[async_trait]
impl Days for CampaignDays {
    async fn rows(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<Value>, ConnectorError> {
        let login = self.direct.login(self.login.as_deref());
        super::report::campaign_days(&self.direct, &from.to_string(), &to.to_string(), login, None).await
    }

    fn connector(&self) -> &str {
        &self.direct.api.name
    }

    fn describe(&self) -> String {
        format!("yandex direct {} daily statistics", self.direct.api.name)
    }
}
