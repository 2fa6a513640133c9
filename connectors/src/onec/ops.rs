//! 1C's operations over OData v3.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use junction_engine::cache::Cache;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::{ConnectorError, Endpoint};
use junction_engine::{Body, Message};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::OneC;
use crate::web::{Api, Call, Expect};

/// `{ connector: billing, op: create_invoice }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpSpec {
    op: Op,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Op {
    CreateInvoice,
    PostInvoice,
    GetInvoice,
    UpdateInvoice,
    Query,
}

pub(super) fn endpoint(c: &OneC, options: &Node) -> Result<Arc<dyn Endpoint>, NodeError> {
    let spec: OpSpec = options.parse()?;
    Ok(Arc::new(OneCOp {
        api: c.api.clone(),
        op: spec.op,
        invoice: c.invoice.clone(),
        key_field: c.key_field.clone(),
        cache: c.cache.clone(),
        create_claim: c.create_claim,
    }))
}

struct OneCOp {
    api: Arc<Api>,
    op: Op,
    invoice: String,
    key_field: String,
    cache: Arc<OnceLock<Cache>>,
    /// How long a create holds the right to create its key: the lookup and the POST at their
    /// timeout, twice over. A create whose outcome is unknown keeps it that long.
    create_claim: Duration,
}

/// How long a create waits for another one of the same key before it gives up (retryable).
const CREATE_WAIT: Duration = Duration::from_secs(30);

#[async_trait]
impl Endpoint for OneCOp {
    async fn send(&self, msg: &Message) -> Result<(), ConnectorError> {
        self.request(msg).await.map(|_| ())
    }

    async fn request(&self, msg: &Message) -> Result<Message, ConnectorError> {
        let args = msg.body.to_json();
        let trace = msg.meta.trace_id.as_deref();
        let reply = match self.op {
            Op::CreateInvoice => self.create_invoice(&args, trace).await?,
            Op::PostInvoice => {
                let reference = guid(&args, "ref")?;
                let path = format!("/{}(guid'{reference}')/Post", self.invoice);
                let query = [("PostingModeOperational".to_owned(), "false".to_owned())];
                // Posting a posted document posts it again: harmless to repeat.
                let call = Call {
                    query: &query,
                    expect: Expect::JsonOrEmpty,
                    idempotent: true,
                    trace_id: trace,
                    ..Call::new(Method::POST, &path)
                };
                self.api.call(&call).await?;
                json!({ "ref": reference, "posted": true })
            }
            Op::GetInvoice => {
                let invoice = match args.get("ref") {
                    Some(_) => self.by_ref(&guid(&args, "ref")?, trace).await?,
                    None => self.by_key(&key_of(&args)?, trace).await?,
                };
                match invoice {
                    Some(i) => summary(i, false),
                    None => return Err(ConnectorError::rejected("1C has no such invoice")),
                }
            }
            Op::UpdateInvoice => {
                let reference = guid(&args, "ref")?;
                let version = args
                    .get("data_version")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ConnectorError::rejected("update_invoice needs the `data_version` it read"))?;
                let fields = args
                    .get("fields")
                    .filter(|f| f.is_object())
                    .ok_or_else(|| ConnectorError::rejected("update_invoice needs `fields`"))?;
                let path = format!("/{}(guid'{reference}')", self.invoice);
                let headers = [("if-match", version.to_owned())];
                let query = format_json();
                let call = Call {
                    query: &query,
                    body: Some(fields),
                    headers: &headers,
                    trace_id: trace,
                    ..Call::new(Method::PATCH, &path)
                };
                // 412: someone changed it since it was read; the route re-reads and decides.
                summary(self.api.call(&call).await?.body, false)
            }
            Op::Query => query(&self.api, &args, trace).await?,
        };
        Ok(Message::new(Body::Json(reply)))
    }

    fn describe(&self) -> String {
        format!("1c {:?}", self.op).to_lowercase()
    }
}

impl OneCOp {
    /// The invoice of `contract_id`: the one that exists, or one made now, never two.
    async fn create_invoice(&self, args: &Value, trace: Option<&str>) -> Result<Value, ConnectorError> {
        let key = key_of(args)?;
        let fields = args
            .get("fields")
            .filter(|f| f.is_object())
            .ok_or_else(|| ConnectorError::rejected("create_invoice needs `fields` (the document's 1C fields)"))?;
        let claim = format!("junction:onec:{}:create:{key}", self.api.name);
        let deadline = tokio::time::Instant::now() + CREATE_WAIT;
        let mut pause = Duration::from_millis(200);
        loop {
            if let Some(existing) = self.by_key(&key, trace).await? {
                return Ok(summary(existing, false));
            }
            if self.claim(&claim).await? {
                return self.create_claimed(&claim, &key, fields, trace).await;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ConnectorError::retryable(format!(
                    "invoice `{key}`: another create is running, or one whose outcome is unknown holds the key \
                     for up to {:?}",
                    self.create_claim
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Creates the invoice under the claim. The claim is given back only when the outcome is
    /// known: made, or refused by 1C. A timeout, a 5xx or a reply that cannot be read may
    /// have committed: the claim then stays until it expires, and whoever comes next looks
    /// the key up first.
    async fn create_claimed(
        &self,
        claim: &str,
        key: &str,
        fields: &Value,
        trace: Option<&str>,
    ) -> Result<Value, ConnectorError> {
        // Another instance may have created it between the lookup and the claim.
        let existing = match self.by_key(key, trace).await {
            Ok(found) => found,
            Err(e) => {
                self.release(claim).await;
                return Err(e);
            }
        };
        if let Some(existing) = existing {
            self.release(claim).await;
            return Ok(summary(existing, false));
        }
        let mut body = fields.clone();
        body[&self.key_field] = Value::from(key);
        let path = format!("/{}", self.invoice);
        let query = format_json();
        // A reply that cannot be read is retried: the retry's lookup finds what was made.
        let create = Call {
            query: &query,
            body: Some(&body),
            idempotent: true,
            trace_id: trace,
            ..Call::new(Method::POST, &path)
        };
        let result = self.api.call(&create).await;
        match result {
            Ok(reply) => {
                self.release(claim).await;
                Ok(summary(reply.body, true))
            }
            Err(e @ ConnectorError::Rejected { .. }) => {
                self.release(claim).await;
                Err(e)
            }
            Err(e) => {
                tracing::warn!(key, error = %e, "1C create failed with an unknown outcome; the key stays claimed until a lookup can tell");
                Err(e)
            }
        }
    }

    /// The invoice holding `key`. `key_field` (a comment) is a string of unlimited length in
    /// the standard configurations, which 1C cannot compare with `eq`; `substringof` (LIKE)
    /// finds the candidates and the exact match is picked here.
    async fn by_key(&self, key: &str, trace: Option<&str>) -> Result<Option<Value>, ConnectorError> {
        let filter = format!("substringof('{}', {})", key.replace('\'', "''"), self.key_field);
        let page = query(&self.api, &json!({ "entity": self.invoice, "filter": filter, "top": 20 }), trace).await?;
        let exact = page["items"].as_array().into_iter().flatten().find(|i| i[&self.key_field] == key);
        Ok(exact.cloned())
    }

    async fn by_ref(&self, reference: &str, trace: Option<&str>) -> Result<Option<Value>, ConnectorError> {
        let path = format!("/{}(guid'{reference}')", self.invoice);
        let query = format_json();
        match self.api.call(&Call { query: &query, trace_id: trace, ..Call::new(Method::GET, &path) }).await {
            Ok(reply) => Ok(Some(reply.body)),
            Err(ConnectorError::Rejected { message }) if message.contains(" 404 ") => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn claim(&self, key: &str) -> Result<bool, ConnectorError> {
        let Some(cache) = self.cache.get() else { return Ok(true) };
        cache
            .claim(key, self.create_claim)
            .await
            .map_err(|e| ConnectorError::unavailable(format!("cannot take the create of `{key}`: {e}")))
    }

    async fn release(&self, key: &str) {
        if let Some(cache) = self.cache.get()
            && let Err(e) = cache.release(key).await
        {
            tracing::warn!(key, error = %e, "cannot release a create claim; it expires by itself");
        }
    }
}

fn format_json() -> [(String, String); 1] {
    [("$format".to_owned(), "json".to_owned())]
}

/// One page of an entity set: `{items, next}`, `next` the `skip` of the following page while a
/// full page came back.
async fn query(api: &Api, args: &Value, trace: Option<&str>) -> Result<Value, ConnectorError> {
    let entity = args
        .get("entity")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty() && !e.contains(['/', '?', '#']))
        .ok_or_else(|| {
        ConnectorError::rejected("query needs `entity` (an entity set, e.g. Document_ПоступлениеНаРасчетныйСчет)")
    })?;
    let top = args.get("top").and_then(Value::as_u64).unwrap_or(100);
    let skip = args.get("skip").and_then(Value::as_u64).unwrap_or(0);
    let mut q = vec![("$format".to_owned(), "json".to_owned()), ("$top".to_owned(), top.to_string())];
    if skip > 0 {
        q.push(("$skip".to_owned(), skip.to_string()));
    }
    for (key, param) in [("filter", "$filter"), ("select", "$select"), ("orderby", "$orderby")] {
        if let Some(v) = args.get(key).and_then(Value::as_str) {
            q.push((param.to_owned(), v.to_owned()));
        }
    }
    let path = format!("/{entity}");
    let reply = api.call(&Call { query: &q, trace_id: trace, ..Call::new(Method::GET, &path) }).await?;
    let items = reply
        .body
        .get("value")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| ConnectorError::retryable(format!("1C answered {} without `value`", reply.status)))?;
    let next = (items.len() as u64 == top && top > 0).then(|| skip + top);
    Ok(json!({ "items": items, "next": next }))
}

/// An invoice as the operations answer: its reference, number, version and posting, the
/// whole document, and whether this call made it.
fn summary(invoice: Value, created: bool) -> Value {
    json!({
        "ref": invoice.get("Ref_Key").cloned().unwrap_or(Value::Null),
        "number": invoice.get("Number").cloned().unwrap_or(Value::Null),
        "data_version": invoice.get("DataVersion").cloned().unwrap_or(Value::Null),
        "posted": invoice.get("Posted").cloned().unwrap_or(Value::Null),
        "created": created,
        "invoice": invoice,
    })
}

/// `junction:<contract_id>`, the key an invoice carries.
fn key_of(args: &Value) -> Result<String, ConnectorError> {
    let id = match args.get("contract_id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(ConnectorError::rejected("`contract_id` is required (the invoice's key in 1C)")),
    };
    Ok(format!("junction:{id}"))
}

/// A 1C reference: a GUID.
fn guid(args: &Value, key: &str) -> Result<String, ConnectorError> {
    let text = args.get(key).and_then(Value::as_str).unwrap_or_default();
    let ok = text.len() == 36 && text.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    if ok {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(ConnectorError::rejected(format!("`{key}` must be a 1C reference (a GUID)")))
    }
}
