//! amoCRM's operations: each reads its arguments from the message body and answers with what
//! amoCRM returned (a lead, a page of leads, the note or task made).

use std::sync::Arc;

use async_trait::async_trait;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::{ConnectorError, Endpoint};
use junction_engine::{Body, Message};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::web::{Api, Call, Expect, Reply};

/// `{ connector: crm, op: get_lead, with: contacts }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpSpec {
    op: Op,
    /// amoCRM's `with` (`contacts`, `loss_reason`, …) for `get_lead` and `list_leads`.
    #[serde(default)]
    with: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Op {
    GetLead,
    ListLeads,
    UpdateLead,
    AddNote,
    AddTask,
}

pub(super) fn endpoint(api: &Arc<Api>, options: &Node) -> Result<Arc<dyn Endpoint>, NodeError> {
    let spec: OpSpec = options.parse()?;
    if spec.with.is_some() && !matches!(spec.op, Op::GetLead | Op::ListLeads) {
        return Err(NodeError {
            message: "`with` is for `get_lead` and `list_leads`".into(),
            pos: options.get("with").map(|n| n.pos),
        });
    }
    Ok(Arc::new(AmoOp { api: api.clone(), op: spec.op, with: spec.with }))
}

struct AmoOp {
    api: Arc<Api>,
    op: Op,
    with: Option<String>,
}

#[async_trait]
impl Endpoint for AmoOp {
    async fn send(&self, msg: &Message) -> Result<(), ConnectorError> {
        self.request(msg).await.map(|_| ())
    }

    async fn request(&self, msg: &Message) -> Result<Message, ConnectorError> {
        let args = msg.body.to_json();
        let trace = msg.meta.trace_id.as_deref();
        let reply = match self.op {
            Op::GetLead => {
                let id = id_of(&args, "id")?;
                let query = self.with.iter().map(|w| ("with".to_owned(), w.clone())).collect::<Vec<_>>();
                let path = format!("/api/v4/leads/{id}");
                let call = Call {
                    query: &query,
                    expect: Expect::JsonOrEmpty,
                    trace_id: trace,
                    ..Call::new(Method::GET, &path)
                };
                match self.api.call(&call).await?.body {
                    // amoCRM answers an id it does not have with 204 and no body.
                    Value::Null => return Err(ConnectorError::rejected(format!("amoCRM has no lead {id}"))),
                    lead => lead,
                }
            }
            Op::ListLeads => list_leads(&self.api, &args, self.with.as_deref(), trace).await?,
            Op::UpdateLead => {
                let id = id_of(&args, "id")?;
                let mut fields = args.as_object().cloned().unwrap_or_default();
                fields.remove("id");
                let body = Value::Object(fields);
                let path = format!("/api/v4/leads/{id}");
                self.api
                    .call(&Call { body: Some(&body), trace_id: trace, ..Call::new(Method::PATCH, &path) })
                    .await?
                    .body
            }
            Op::AddNote => {
                let id = id_of(&args, "lead_id")?;
                let note = match (args.get("text").and_then(Value::as_str), args.get("params")) {
                    (_, Some(params)) => json!({
                        "note_type": args.get("note_type").cloned().unwrap_or_else(|| json!("common")),
                        "params": params,
                    }),
                    (Some(text), None) => json!({ "note_type": "common", "params": { "text": text } }),
                    (None, None) => {
                        return Err(ConnectorError::rejected("add_note needs `text` (or `note_type` and `params`)"));
                    }
                };
                let body = json!([note]);
                let path = format!("/api/v4/leads/{id}/notes");
                let reply = self
                    .api
                    .call(&Call { body: Some(&body), trace_id: trace, ..Call::new(Method::POST, &path) })
                    .await?;
                first_embedded(&reply, "notes")?
            }
            Op::AddTask => {
                let id = id_of(&args, "lead_id")?;
                let text = args
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ConnectorError::rejected("add_task needs `text`"))?;
                let till = args
                    .get("complete_till")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| ConnectorError::rejected("add_task needs `complete_till` (Unix seconds)"))?;
                let mut task = json!({
                    "text": text,
                    "complete_till": till,
                    "entity_id": id,
                    "entity_type": "leads",
                    "task_type_id": args.get("task_type_id").cloned().unwrap_or_else(|| json!(1)),
                });
                if let Some(user) = args.get("responsible_user_id") {
                    task["responsible_user_id"] = user.clone();
                }
                let body = json!([task]);
                let reply = self
                    .api
                    .call(&Call { body: Some(&body), trace_id: trace, ..Call::new(Method::POST, "/api/v4/tasks") })
                    .await?;
                first_embedded(&reply, "tasks")?
            }
        };
        Ok(Message::new(Body::Json(reply)))
    }

    fn describe(&self) -> String {
        format!("amocrm {:?}", self.op).to_lowercase()
    }
}

/// One page of leads: `{items, next, page}`, `next` being the next page's number (or null).
pub(super) async fn list_leads(
    api: &Api,
    args: &Value,
    with: Option<&str>,
    trace: Option<&str>,
) -> Result<Value, ConnectorError> {
    let mut query = Vec::new();
    if let Some(w) = with {
        query.push(("with".to_owned(), w.to_owned()));
    }
    for key in ["page", "limit", "query"] {
        if let Some(v) = args.get(key).filter(|v| !v.is_null()) {
            query.push((key.to_owned(), scalar(v)));
        }
    }
    for key in ["filter", "order"] {
        if let Some(v) = args.get(key) {
            bracketed(key, v, &mut query);
        }
    }
    let reply = api
        .call(&Call {
            query: &query,
            expect: Expect::JsonOrEmpty,
            trace_id: trace,
            ..Call::new(Method::GET, "/api/v4/leads")
        })
        .await?;
    Ok(page_of(&reply.body))
}

/// amoCRM's HAL page as `{items, next, page}`; an empty reply (204) is an empty last page.
pub(super) fn page_of(body: &Value) -> Value {
    if body.is_null() {
        return json!({ "items": [], "next": null, "page": null });
    }
    let items = body.pointer("/_embedded/leads").cloned().unwrap_or_else(|| json!([]));
    let next = body
        .pointer("/_links/next/href")
        .and_then(Value::as_str)
        .and_then(|href| reqwest::Url::parse(href).ok())
        .and_then(|url| url.query_pairs().find(|(k, _)| k == "page").map(|(_, v)| v.into_owned()));
    json!({ "items": items, "next": next, "page": body.get("_page").cloned().unwrap_or(Value::Null) })
}

/// A nested value as amoCRM's bracketed query keys: `filter[statuses][0][status_id]=142`.
pub(super) fn bracketed(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                bracketed(&format!("{prefix}[{k}]"), v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                bracketed(&format!("{prefix}[{i}]"), v, out);
            }
        }
        Value::Null => {}
        other => out.push((prefix.to_owned(), scalar(other))),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An entity id from the arguments: a positive integer (or its text).
fn id_of(args: &Value, key: &str) -> Result<u64, ConnectorError> {
    let id = match args.get(key) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    id.filter(|id| *id > 0)
        .ok_or_else(|| ConnectorError::rejected(format!("`{key}` must be an amoCRM id (a positive integer)")))
}

/// The first entity amoCRM made (`_embedded.<what>[0]`). A 2xx without it is not what was
/// asked, yet something may have been made: not retried, which could make it twice.
fn first_embedded(reply: &Reply, what: &str) -> Result<Value, ConnectorError> {
    reply.body.pointer(&format!("/_embedded/{what}/0")).cloned().ok_or_else(|| {
        ConnectorError::permanent(format!("amoCRM answered {} without `_embedded.{what}`", reply.status))
    })
}
