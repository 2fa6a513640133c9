//! `from: { connector: vk, statistics: { every: 1h, since: 2026-11-01, trailing_days: 3 } }`:
//! VK Ads' daily statistics per ad plan, walked by [`crate::web::daily::DailyStatistics`].

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use junction_engine::config::duration::ConfigDuration;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::{ConnectorError, Consumer};
use serde::Deserialize;
use serde_json::Value;

use super::VkAds;
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
}

pub(super) fn consumer(vk: &Arc<VkAds>, route: &str, options: &Node) -> Result<Arc<dyn Consumer>, NodeError> {
    let spec: SourceSpec = options.parse()?;
    let s = spec.statistics;
    let window = Window::new(s.every, &s.since, s.trailing_days, options.get("statistics").map(|n| n.pos))?;
    Ok(Arc::new(DailyStatistics {
        days: PlanDays(vk.clone()),
        window,
        key: format!("vk_ads:{}:statistics:{route}", vk.api.name),
        store: vk.store.clone(),
    }))
}

struct PlanDays(Arc<VkAds>);

#[async_trait]
impl Days for PlanDays {
    async fn rows(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<Value>, ConnectorError> {
        self.0.plan_days(None, from, to, None).await
    }

    fn connector(&self) -> &str {
        &self.0.api.name
    }

    fn describe(&self) -> String {
        format!("vk ads {} daily statistics", self.0.api.name)
    }
}
