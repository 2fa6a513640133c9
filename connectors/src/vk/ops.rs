//! VK Ads operations on ad plans (campaigns), and daily statistics.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::{ConnectorError, Endpoint};
use junction_engine::{Body, Message};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::VkAds;
use crate::web::args;
use crate::web::{Call, Expect};

/// `{ connector: vk, op: add_campaign }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpSpec {
    op: Op,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Op {
    GetCampaigns,
    AddCampaign,
    UpdateCampaign,
    PauseCampaign,
    ResumeCampaign,
    Statistics,
}

pub(super) fn endpoint(vk: &Arc<VkAds>, options: &Node) -> Result<Arc<dyn Endpoint>, NodeError> {
    let spec: OpSpec = options.parse()?;
    Ok(Arc::new(VkOp { vk: vk.clone(), op: spec.op }))
}

struct VkOp {
    vk: Arc<VkAds>,
    op: Op,
}

/// Ad plans a list page holds at most (the API's maximum for v2 lists).
const PAGE: usize = 50;
/// Objects a statistics request may name.
const STATS_IDS: usize = 200;
/// Days a statistics request asks for at most (the oldest limit VK documented).
const STATS_DAYS: i64 = 92;

#[async_trait]
impl Endpoint for VkOp {
    async fn send(&self, msg: &Message) -> Result<(), ConnectorError> {
        self.request(msg).await.map(|_| ())
    }

    async fn request(&self, msg: &Message) -> Result<Message, ConnectorError> {
        let args = msg.body.to_json();
        let trace = msg.meta.trace_id.as_deref();
        let vk = &self.vk;
        let reply = match self.op {
            Op::GetCampaigns => {
                let ids: Option<Vec<i64>> =
                    args.get("ids").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_i64).collect());
                let status = args.get("status").and_then(Value::as_str);
                json!({ "items": vk.ad_plans(ids.as_deref(), status, trace).await? })
            }
            Op::AddCampaign => add_campaign(vk, &args, trace).await?,
            Op::UpdateCampaign => {
                let id = args::id(&args, "VK Ads ad plan")?;
                let fields = args
                    .get("fields")
                    .filter(|f| f.is_object())
                    .ok_or_else(|| ConnectorError::rejected("update_campaign needs `fields`"))?;
                vk.update(id, fields, trace).await?;
                json!({ "id": id, "updated": true })
            }
            Op::PauseCampaign | Op::ResumeCampaign => {
                let id = args::id(&args, "VK Ads ad plan")?;
                let status = if self.op == Op::PauseCampaign { "blocked" } else { "active" };
                vk.update(id, &json!({ "status": status }), trace).await?;
                json!({ "id": id, "status": status })
            }
            Op::Statistics => {
                let from = args::date(&args, "date_from")?;
                let to = args::date(&args, "date_to")?;
                let ids: Option<Vec<i64>> =
                    args.get("ids").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_i64).collect());
                json!({ "rows": vk.plan_days(ids, from, to, trace).await? })
            }
        };
        Ok(Message::new(Body::Json(reply)))
    }

    fn describe(&self) -> String {
        format!("vk ads {:?}", self.op).to_lowercase()
    }
}

impl VkAds {
    /// Every ad plan (of `ids`, or with `status`: `active,blocked`…), page by page.
    pub(super) async fn ad_plans(
        &self,
        ids: Option<&[i64]>,
        status: Option<&str>,
        trace: Option<&str>,
    ) -> Result<Vec<Value>, ConnectorError> {
        let mut items = Vec::new();
        loop {
            let mut query = vec![
                ("fields".to_owned(), "id,name,status".to_owned()),
                ("limit".to_owned(), PAGE.to_string()),
                ("offset".to_owned(), items.len().to_string()),
            ];
            if let Some(ids) = ids {
                query.push(("_id__in".into(), ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")));
            }
            if let Some(s) = status {
                query.push(("_status__in".into(), s.to_owned()));
            }
            let call = Call { query: &query, trace_id: trace, ..Call::new(Method::GET, "/api/v2/ad_plans.json") };
            let reply = self.api.call(&call).await?;
            let page = reply.body.get("items").and_then(Value::as_array).cloned().ok_or_else(|| {
                ConnectorError::retryable("VK Ads answered an ad plan list without `items`".to_owned())
            })?;
            let count = reply.body.get("count").and_then(Value::as_u64).unwrap_or(0) as usize;
            let short = page.len() < PAGE;
            items.extend(page);
            if short || items.len() >= count {
                return Ok(items);
            }
        }
    }

    /// `POST /api/v2/ad_plans/{id}.json` with the fields that change (204).
    async fn update(&self, id: i64, fields: &Value, trace: Option<&str>) -> Result<(), ConnectorError> {
        let path = format!("/api/v2/ad_plans/{id}.json");
        let call = Call {
            body: Some(fields),
            expect: Expect::JsonOrEmpty,
            // Setting the same fields again changes nothing.
            idempotent: true,
            trace_id: trace,
            ..Call::new(Method::POST, &path)
        };
        self.api.call(&call).await.map(|_| ())
    }

    /// Daily statistics of ad plans (`ids`, or every plan) from `from` to `to`: rows
    /// `{campaign_id, day, impressions, clicks, cost, goals}`.
    pub(super) async fn plan_days(
        &self,
        ids: Option<Vec<i64>>,
        from: NaiveDate,
        to: NaiveDate,
        trace: Option<&str>,
    ) -> Result<Vec<Value>, ConnectorError> {
        let ids = match ids {
            Some(ids) => ids,
            None => self
                .ad_plans(None, Some("active,blocked,deleted"), trace)
                .await?
                .iter()
                .filter_map(|p| p.get("id").and_then(Value::as_i64))
                .collect(),
        };
        let mut rows = Vec::new();
        for chunk in ids.chunks(STATS_IDS) {
            let mut start = from;
            while start <= to {
                let end = (start + chrono::Duration::days(STATS_DAYS - 1)).min(to);
                let query = vec![
                    ("id".to_owned(), chunk.iter().map(i64::to_string).collect::<Vec<_>>().join(",")),
                    ("date_from".to_owned(), start.to_string()),
                    ("date_to".to_owned(), end.to_string()),
                    ("metrics".to_owned(), "base".to_owned()),
                ];
                let call = Call {
                    query: &query,
                    trace_id: trace,
                    ..Call::new(Method::GET, "/api/v2/statistics/ad_plans/day.json")
                };
                let reply = self.api.call(&call).await?;
                rows.extend(statistics_rows(&reply.body)?);
                start = end + chrono::Duration::days(1);
            }
        }
        Ok(rows)
    }
}

/// The rows of a `statistics/…/day.json` answer, one per object and day.
pub(super) fn statistics_rows(body: &Value) -> Result<Vec<Value>, ConnectorError> {
    let items = body
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| ConnectorError::retryable("VK Ads answered statistics without `items`"))?;
    let mut rows = Vec::new();
    for item in items {
        let id = item.get("id").cloned().unwrap_or(Value::Null);
        for row in item.get("rows").and_then(Value::as_array).into_iter().flatten() {
            let base = &row["base"];
            rows.push(json!({
                "campaign_id": id,
                "day": row["date"],
                "impressions": base["shows"],
                "clicks": base["clicks"],
                "goals": base["goals"],
                // A decimal string, in the account's currency: passed on exact.
                "cost": base["spent"],
            }));
        }
    }
    Ok(rows)
}

/// The ad plan of `key`: the one whose name carries its tag, or one created now.
async fn add_campaign(vk: &VkAds, args: &Value, trace: Option<&str>) -> Result<Value, ConnectorError> {
    let (_, tag) = args::create_key(args, "add_campaign")?;

    let mut plan = args
        .get("campaign")
        .filter(|c| c.is_object())
        .cloned()
        .ok_or_else(|| ConnectorError::rejected("add_campaign needs `campaign` (VK Ads' ad plan object)"))?;
    // No idempotency keys: a plan created before (a retry whose first try went through) is
    // found by the tag in its name.
    let existing = vk.ad_plans(None, Some("active,blocked"), trace).await?;
    if let Some(found) =
        existing.iter().find(|p| p.get("name").and_then(Value::as_str).is_some_and(|n| n.contains(&tag)))
    {
        return Ok(json!({ "id": found["id"], "name": found["name"], "created": false }));
    }
    let name = plan.get("name").and_then(Value::as_str).unwrap_or("Junction campaign").to_owned();
    plan["name"] = json!(format!("{name} {tag}"));
    let call = Call { body: Some(&plan), trace_id: trace, ..Call::new(Method::POST, "/api/v2/ad_plans.json") };
    let reply = vk.api.call(&call).await?;
    let id = reply
        .body
        .get("id")
        .cloned()
        .ok_or_else(|| ConnectorError::permanent("VK Ads created the ad plan but answered without its `id`"))?;
    Ok(
        json!({ "id": id, "name": plan["name"], "created": true, "ad_groups": reply.body.get("ad_groups").cloned().unwrap_or(json!([])) }),
    )
}
