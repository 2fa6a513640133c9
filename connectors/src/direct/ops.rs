//! Yandex Direct's operations on campaigns, and reports.

use std::sync::Arc;

use async_trait::async_trait;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::{ConnectorError, Endpoint};
use junction_engine::{Body, Message};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Direct;
use crate::web::args;

/// `{ connector: ads, op: add_campaign, client_login: … }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpSpec {
    op: Op,
    #[serde(default)]
    client_login: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Op {
    GetCampaigns,
    AddCampaign,
    UpdateCampaign,
    SuspendCampaign,
    ResumeCampaign,
    Report,
}

pub(super) fn endpoint(direct: &Arc<Direct>, options: &Node) -> Result<Arc<dyn Endpoint>, NodeError> {
    let spec: OpSpec = options.parse()?;
    Ok(Arc::new(DirectOp { direct: direct.clone(), op: spec.op, client_login: spec.client_login }))
}

struct DirectOp {
    direct: Arc<Direct>,
    op: Op,
    client_login: Option<String>,
}

const CAMPAIGN_FIELDS: [&str; 6] = ["Id", "Name", "State", "Status", "StartDate", "Type"];

#[async_trait]
impl Endpoint for DirectOp {
    async fn send(&self, msg: &Message) -> Result<(), ConnectorError> {
        self.request(msg).await.map(|_| ())
    }

    async fn request(&self, msg: &Message) -> Result<Message, ConnectorError> {
        let args = msg.body.to_json();
        let trace = msg.meta.trace_id.as_deref();
        let login = self.direct.login(self.client_login.as_deref());
        let d = &self.direct;
        let reply = match self.op {
            Op::GetCampaigns => {
                let mut criteria = json!({});
                if let Some(ids) = args.get("ids") {
                    criteria["Ids"] = ids.clone();
                }
                let result = d
                    .call(
                        "campaigns",
                        "get",
                        json!({ "SelectionCriteria": criteria, "FieldNames": CAMPAIGN_FIELDS }),
                        login,
                        trace,
                    )
                    .await?;
                json!({ "items": result.get("Campaigns").cloned().unwrap_or_else(|| json!([])) })
            }
            Op::AddCampaign => add_campaign(d, &args, login, trace).await?,
            Op::UpdateCampaign => {
                let id = args::id(&args, "Yandex Direct campaign")?;
                let mut campaign = args
                    .get("fields")
                    .filter(|f| f.is_object())
                    .cloned()
                    .ok_or_else(|| ConnectorError::rejected("update_campaign needs `fields`"))?;
                campaign["Id"] = json!(id);
                let result = d.call("campaigns", "update", json!({ "Campaigns": [campaign] }), login, trace).await?;
                item_result(&result, "UpdateResults")?
            }
            Op::SuspendCampaign | Op::ResumeCampaign => {
                let id = args::id(&args, "Yandex Direct campaign")?;
                let (method, key) = if self.op == Op::SuspendCampaign {
                    ("suspend", "SuspendResults")
                } else {
                    ("resume", "ResumeResults")
                };
                let result =
                    d.call("campaigns", method, json!({ "SelectionCriteria": { "Ids": [id] } }), login, trace).await?;
                item_result(&result, key)?
            }
            Op::Report => {
                let from = args::date(&args, "date_from")?.to_string();
                let to = args::date(&args, "date_to")?.to_string();
                json!({ "rows": super::report::campaign_days(d, &from, &to, login, trace).await? })
            }
        };
        Ok(Message::new(Body::Json(reply)))
    }

    fn describe(&self) -> String {
        format!("yandex direct {:?}", self.op).to_lowercase()
    }
}

/// The campaign of `key`: the one whose name carries its tag, or one added now.
async fn add_campaign(
    d: &Direct,
    args: &Value,
    login: Option<&str>,
    trace: Option<&str>,
) -> Result<Value, ConnectorError> {
    let (_, tag) = args::create_key(args, "add_campaign")?;

    let mut campaign = args
        .get("campaign")
        .filter(|c| c.is_object())
        .cloned()
        .ok_or_else(|| ConnectorError::rejected("add_campaign needs `campaign` (Direct's campaign object)"))?;
    // Direct has no idempotency keys: a campaign added before (a retry whose first try went
    // through) is found by the tag in its name.
    let existing = d
        .call("campaigns", "get", json!({ "SelectionCriteria": {}, "FieldNames": ["Id", "Name"] }), login, trace)
        .await?;
    if let Some(found) = existing
        .get("Campaigns")
        .and_then(Value::as_array)
        .and_then(|all| all.iter().find(|c| c.get("Name").and_then(Value::as_str).is_some_and(|n| n.contains(&tag))))
    {
        return Ok(json!({ "id": found["Id"], "name": found["Name"], "created": false }));
    }
    let name = campaign.get("Name").and_then(Value::as_str).unwrap_or("Junction campaign").to_owned();
    campaign["Name"] = json!(format!("{name} {tag}"));
    let result = d.call("campaigns", "add", json!({ "Campaigns": [campaign] }), login, trace).await?;
    let added = item_result(&result, "AddResults")?;
    Ok(
        json!({ "id": added["Id"], "name": campaign["Name"], "created": true, "warnings": added.get("Warnings").cloned().unwrap_or(Value::Null) }),
    )
}

/// The one item of `…Results`: its errors refuse the call (Direct answers them inside a 200).
fn item_result(result: &Value, key: &str) -> Result<Value, ConnectorError> {
    let item = result
        .get(key)
        .and_then(|r| r.get(0))
        .cloned()
        .ok_or_else(|| ConnectorError::permanent(format!("Yandex Direct answered without `{key}`")))?;
    if let Some(errors) = item.get("Errors").and_then(Value::as_array).filter(|e| !e.is_empty()) {
        let text: Vec<String> = errors
            .iter()
            .map(|e| {
                format!("{} {} {}", e["Code"], e["Message"].as_str().unwrap_or(""), e["Details"].as_str().unwrap_or(""))
                    .trim_end()
                    .to_owned()
            })
            .collect();
        return Err(ConnectorError::rejected(format!("Yandex Direct refused it: {}", text.join("; "))));
    }
    if let Some(warnings) = item.get("Warnings").and_then(Value::as_array).filter(|w| !w.is_empty()) {
        let warnings = Value::Array(warnings.clone()).to_string();
        tracing::warn!(warnings, "Yandex Direct accepted with warnings");
    }
    Ok(item)
}
