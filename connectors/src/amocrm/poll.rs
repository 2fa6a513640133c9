//! `from: { connector: crm, leads: { every: 1m, filter: {…}, with: contacts, limit: 250 } }`:
//! the leads changed since the last walk, oldest change first, page by page.
//!
//! The checkpoint is the newest `updated_at` delivered and the ids delivered at that second:
//! amoCRM's `filter[updated_at][from]` includes that second, so its leads come again and are
//! skipped, while a lead changed later within the same second is not missed.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use junction_engine::config::duration::ConfigDuration;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::{ConnectorError, Consumer};
use junction_engine::store::Store;
use junction_engine::{Body, Message};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ops::list_leads;
use crate::web::Api;
use crate::web::paging::{Page, Pages, PagingSource};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceSpec {
    leads: LeadsSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeadsSpec {
    /// Between two walks (default 1m).
    #[serde(default)]
    every: Option<ConfigDuration>,
    /// amoCRM's `filter` (without `updated_at`, which the checkpoint sets).
    #[serde(default)]
    filter: Option<Value>,
    #[serde(default)]
    with: Option<String>,
    /// Leads a page (amoCRM's maximum, 250, by default).
    #[serde(default)]
    limit: Option<u32>,
}

pub(super) fn consumer(
    api: &Arc<Api>,
    store: &Arc<OnceLock<Store>>,
    route: &str,
    options: &Node,
) -> Result<Arc<dyn Consumer>, NodeError> {
    let spec: SourceSpec = options.parse()?;
    let at = options.get("leads").map(|n| n.pos);
    let limit = spec.leads.limit.unwrap_or(250);
    if !(1..=250).contains(&limit) {
        return Err(NodeError { message: "`limit` is 1 to 250 (amoCRM's maximum)".into(), pos: at });
    }
    if spec.leads.filter.as_ref().is_some_and(|f| !f.is_object()) {
        return Err(NodeError { message: "`filter` is a mapping, as amoCRM's filter[…]".into(), pos: at });
    }
    if spec.leads.filter.as_ref().and_then(|f| f.get("updated_at")).is_some() {
        return Err(NodeError {
            message: "`filter.updated_at` is the source's own checkpoint; leave it out".into(),
            pos: at,
        });
    }
    let every = spec.leads.every.map_or(Duration::from_secs(60), |d| d.0);
    Ok(Arc::new(PagingSource {
        pages: LeadPages { api: api.clone(), filter: spec.leads.filter, with: spec.leads.with, limit },
        every,
        key: format!("amocrm:{}:leads:{route}", api.name),
        store: store.clone(),
    }))
}

struct LeadPages {
    api: Arc<Api>,
    filter: Option<Value>,
    with: Option<String>,
    limit: u32,
}

/// How far the walks got.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct Checkpoint {
    updated_at: i64,
    ids: BTreeSet<u64>,
}

fn parse(checkpoint: Option<&str>) -> Option<Checkpoint> {
    checkpoint.and_then(|c| serde_json::from_str(c).ok())
}

fn updated_at(item: &Value) -> i64 {
    item.get("updated_at").and_then(Value::as_i64).unwrap_or(0)
}

fn id(item: &Value) -> u64 {
    item.get("id").and_then(Value::as_u64).unwrap_or(0)
}

#[async_trait]
impl Pages for LeadPages {
    async fn page(&self, checkpoint: Option<&str>, cursor: Option<&str>) -> Result<Page, ConnectorError> {
        let mut filter = self.filter.clone().unwrap_or_else(|| json!({}));
        if let Some(c) = parse(checkpoint) {
            filter["updated_at"] = json!({ "from": c.updated_at });
        }
        let args = json!({
            "page": cursor.unwrap_or("1"),
            "limit": self.limit,
            "filter": filter,
            "order": { "updated_at": "asc" },
        });
        let page = list_leads(&self.api, &args, self.with.as_deref(), None).await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        let next = page["next"].as_str().map(str::to_owned);
        Ok(Page { items, next, at: None })
    }

    fn seen(&self, checkpoint: Option<&str>, item: &Value) -> bool {
        parse(checkpoint).is_some_and(|c| {
            updated_at(item) < c.updated_at || (updated_at(item) == c.updated_at && c.ids.contains(&id(item)))
        })
    }

    fn advance(&self, checkpoint: Option<String>, items: &[Value], _: Option<&str>, _: Option<&str>) -> Option<String> {
        let mut c = parse(checkpoint.as_deref()).unwrap_or_default();
        for item in items {
            let (at, id) = (updated_at(item), id(item));
            if at > c.updated_at {
                c = Checkpoint { updated_at: at, ids: BTreeSet::from([id]) };
            } else if at == c.updated_at {
                c.ids.insert(id);
            }
        }
        if c == Checkpoint::default() { checkpoint } else { serde_json::to_string(&c).ok() }
    }

    fn message(&self, item: Value) -> Message {
        let lead = id(&item);
        let mut msg = Message::new(Body::Json(item));
        msg.meta.key = Some(lead.to_string());
        msg.meta.source.insert("connector".into(), Value::from(self.api.name.as_str()));
        msg.meta.source.insert("entity".into(), Value::from("lead"));
        msg.meta.source.insert("id".into(), Value::from(lead));
        msg
    }

    fn describe(&self) -> String {
        format!("amocrm {} leads, changed since the last walk", self.api.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages() -> LeadPages {
        let client = reqwest::Client::new();
        let api = Api {
            name: "crm".into(),
            base: reqwest::Url::parse("http://127.0.0.1:1").expect("url"),
            client,
            auth: Default::default(),
        };
        LeadPages { api: Arc::new(api), filter: None, with: None, limit: 250 }
    }

    #[test]
    fn the_checkpoint_skips_what_the_last_walk_delivered_and_nothing_else() {
        let p = pages();
        let lead = |id: u64, at: i64| json!({ "id": id, "updated_at": at });
        let c = p.advance(None, &[lead(1, 100), lead(2, 105), lead(3, 105)], None, None);
        let c = c.as_deref();
        assert!(p.seen(c, &lead(1, 100)));
        assert!(p.seen(c, &lead(2, 105)) && p.seen(c, &lead(3, 105)));
        assert!(!p.seen(c, &lead(4, 105)), "another lead changed within the same second");
        assert!(!p.seen(c, &lead(2, 106)), "a lead changed again");
        let c2 = p.advance(c.map(str::to_owned), &[lead(4, 105)], None, None);
        assert!(p.seen(c2.as_deref(), &lead(2, 105)) && p.seen(c2.as_deref(), &lead(4, 105)));
        assert_eq!(p.advance(c2.clone(), &[], None, None), c2, "an empty page keeps the checkpoint");
    }
}
