//! `from: { connector: api, pages: { path, every, items, id, next } }`: any HTTP API's list
//! walked page by page on a schedule, from a checkpoint — the generic REST poller. Where the
//! next page is:
//!
//! - `next: link` — the `Link: <…>; rel="next"` header (RFC 8288; GitHub, GitLab, Shopify);
//! - `next: { url: /_links/next/href }` — a URL in the body, at a JSON pointer (HAL, DRF's
//!   `next`);
//! - `next: { param: start, value: /next }` — a value in the body sent back as a query
//!   parameter (Bitrix24's `start`/`next`, cursors: `{ param: cursor, value: /meta/next }`);
//! - `next: { page: page }` — page numbers, until a page comes back empty.
//!
//! The checkpoint is the page a walk ended on and the ids delivered from it: the next walk
//! asks that page again (a feed grows at its end), skips what it delivered, and follows the
//! next links from there. Items are messages keyed by their `id`.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use junction_engine::config::duration::ConfigDuration;
use junction_engine::config::node::{Node, NodeError, NodeValue};
use junction_engine::connector::{ConnectorError, Consumer};
use junction_engine::store::Store;
use junction_engine::{Body, Message};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::web::paging::{Page, Pages, PagingSource};
use crate::web::{Api, Call, Expect};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceSpec {
    pages: PagesSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PagesSpec {
    /// The first page, under `base_url` (a query included).
    path: String,
    /// Between two walks (default 1m).
    #[serde(default)]
    every: Option<ConfigDuration>,
    /// A JSON pointer to the page's items (default: the body when it is an array, else `/items`).
    #[serde(default)]
    items: Option<String>,
    /// A JSON pointer to an item's id (default `/id`).
    #[serde(default)]
    id: Option<String>,
    next: Node,
}

/// Where the next page is.
#[derive(Debug, Clone, PartialEq)]
enum Next {
    Link,
    Url(String),
    Param { param: String, value: String },
    Page(String),
}

fn next_of(node: &Node) -> Result<Next, NodeError> {
    let wrong = || NodeError {
        message: "`next` is `link`, `{ url: /pointer }`, `{ param: name, value: /pointer }` or `{ page: name }`".into(),
        pos: Some(node.pos),
    };
    let text = |key: &str| node.get(key).and_then(Node::as_str).map(str::to_owned);
    let keys: Vec<&str> = match &node.value {
        NodeValue::Str(s) if s == "link" => return Ok(Next::Link),
        NodeValue::Map(entries) => entries.iter().map(|(k, _)| k.name.as_str()).collect(),
        _ => return Err(wrong()),
    };
    match keys.as_slice() {
        ["url"] => text("url").map(Next::Url).ok_or_else(wrong),
        ["page"] => text("page").map(Next::Page).ok_or_else(wrong),
        ["param", "value"] | ["value", "param"] => match (text("param"), text("value")) {
            (Some(param), Some(value)) => Ok(Next::Param { param, value }),
            _ => Err(wrong()),
        },
        _ => Err(wrong()),
    }
}

pub(super) fn consumer(
    api: &Arc<Api>,
    store: &Arc<OnceLock<Store>>,
    route: &str,
    options: &Node,
) -> Result<Arc<dyn Consumer>, NodeError> {
    let spec: SourceSpec = options.parse()?;
    let at = options.get("pages").map(|n| n.pos);
    let p = spec.pages;
    for pointer in [&p.items, &p.id].into_iter().flatten() {
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(NodeError { message: format!("`{pointer}` is not a JSON pointer (`/items`)"), pos: at });
        }
    }
    let next = next_of(&p.next)?;
    Ok(Arc::new(PagingSource {
        pages: HttpPages {
            api: api.clone(),
            start: p.path,
            items: p.items,
            id: p.id.unwrap_or_else(|| "/id".into()),
            next,
        },
        every: p.every.map_or(Duration::from_secs(60), |d| d.0),
        key: format!("http:{}:pages:{route}", api.name),
        store: store.clone(),
    }))
}

struct HttpPages {
    api: Arc<Api>,
    start: String,
    items: Option<String>,
    id: String,
    next: Next,
}

/// The page a walk ended on, and the ids it delivered from it.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct Checkpoint {
    at: String,
    seen: BTreeSet<String>,
}

fn parse(checkpoint: Option<&str>) -> Option<Checkpoint> {
    checkpoint.and_then(|c| serde_json::from_str(c).ok())
}

impl HttpPages {
    fn id(&self, item: &Value) -> String {
        match item.pointer(&self.id) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            // No id: the item itself tells it apart.
            None => item.to_string(),
        }
    }

    /// The next page's path (under the base URL) after the page at `path` answered `reply`.
    fn next_path(&self, path: &str, reply: &crate::web::Reply, items: usize) -> Result<Option<String>, ConnectorError> {
        let value = |pointer: &str| match reply.body.pointer(pointer) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Ok(match &self.next {
            // A URL the server gave: under the connector's base URL, or refused.
            Next::Link => reply
                .headers
                .get_all(reqwest::header::LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(link_next)
                .map(|n| self.api.relative(&n))
                .transpose()?,
            Next::Url(pointer) => value(pointer).map(|n| self.api.relative(&n)).transpose()?,
            Next::Param { param, value: pointer } => value(pointer).map(|v| with_param(path, param, &v)),
            Next::Page(param) => (items > 0).then(|| {
                let current = query_value(path, param).and_then(|p| p.parse::<u64>().ok()).unwrap_or(1);
                with_param(path, param, &(current + 1).to_string())
            }),
        })
    }
}

#[async_trait]
impl Pages for HttpPages {
    async fn page(&self, checkpoint: Option<&str>, cursor: Option<&str>) -> Result<Page, ConnectorError> {
        let path = match (cursor, parse(checkpoint)) {
            (Some(c), _) => c.to_owned(),
            (None, Some(c)) => c.at,
            (None, None) => self.start.clone(),
        };
        let call = Call { expect: Expect::Json, ..Call::new(Method::GET, &path) };
        let reply = self.api.call(&call).await?;
        let items = match (&self.items, &reply.body) {
            (Some(pointer), body) => body.pointer(pointer).cloned(),
            (None, Value::Array(_)) => Some(reply.body.clone()),
            (None, body) => body.get("items").cloned(),
        };
        let Some(Value::Array(items)) = items else {
            return Err(ConnectorError::retryable(format!(
                "GET {}{path} answered without a list of items at {}",
                self.api.name,
                self.items.as_deref().unwrap_or("/items")
            )));
        };
        let next = self.next_path(&path, &reply, items.len())?;
        // A server answering its own page as the next would make a walk without end.
        let next = next.filter(|n| *n != path);
        Ok(Page { items, next, at: Some(path) })
    }

    fn seen(&self, checkpoint: Option<&str>, item: &Value) -> bool {
        parse(checkpoint).is_some_and(|c| c.seen.contains(&self.id(item)))
    }

    fn advance(
        &self,
        checkpoint: Option<String>,
        items: &[Value],
        at: Option<&str>,
        next: Option<&str>,
    ) -> Option<String> {
        let c = match (next, at) {
            // Moving on: the next page, nothing of it delivered yet.
            (Some(next), _) => Checkpoint { at: next.to_owned(), seen: BTreeSet::new() },
            // The last page so far: the next walk asks it again.
            (None, Some(at)) => {
                let mut seen = parse(checkpoint.as_deref()).filter(|c| c.at == at).map(|c| c.seen).unwrap_or_default();
                seen.extend(items.iter().map(|i| self.id(i)));
                Checkpoint { at: at.to_owned(), seen }
            }
            (None, None) => return checkpoint,
        };
        serde_json::to_string(&c).ok()
    }

    fn message(&self, item: Value) -> Message {
        let id = self.id(&item);
        let mut msg = Message::new(Body::Json(item));
        msg.meta.key = Some(id.clone());
        msg.meta.source.insert("connector".into(), Value::from(self.api.name.as_str()));
        msg.meta.source.insert("id".into(), Value::from(id));
        msg
    }

    fn describe(&self) -> String {
        format!("http {} pages of {}", self.api.name, self.start)
    }
}

/// The `rel="next"` target of a `Link` header value.
fn link_next(header: &str) -> Option<String> {
    // Links are `<target>; params`, separated by commas outside the angle brackets (a target's
    // query may hold commas: `?fields=id,name`).
    let mut links = Vec::new();
    let mut rest = header;
    while let Some(open) = rest.find('<') {
        let close = rest[open..].find('>')? + open;
        let after = &rest[close + 1..];
        let end = after.find('<').map_or(after.len(), |next| after[..next].rfind(',').unwrap_or(next));
        links.push((&rest[open + 1..close], &after[..end]));
        rest = &after[end..];
    }
    links.into_iter().find_map(|(target, params)| {
        let next = params
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("rel="))
            .any(|rel| rel.trim_matches('"').split_whitespace().any(|r| r.eq_ignore_ascii_case("next")));
        next.then(|| target.to_owned())
    })
}

/// `path` with its query parameter `name` set to `value`.
fn with_param(path: &str, name: &str, value: &str) -> String {
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let mut pairs: Vec<(String, String)> = url_pairs(query).into_iter().filter(|(k, _)| k != name).collect();
    pairs.push((name.to_owned(), value.to_owned()));
    let mut url = reqwest::Url::parse("http://x/").expect("a constant URL");
    url.query_pairs_mut().extend_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    format!("{base}?{}", url.query().unwrap_or_default())
}

fn query_value(path: &str, name: &str) -> Option<String> {
    let query = path.split_once('?')?.1;
    url_pairs(query).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .map(|u| u.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_name_the_next_page() {
        // https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api
        let github = r#"<https://api.github.com/repositories/1300192/issues?page=2>; rel="prev", <https://api.github.com/repositories/1300192/issues?page=4>; rel="next", <https://api.github.com/repositories/1300192/issues?page=515>; rel="last", <https://api.github.com/repositories/1300192/issues?page=1>; rel="first""#;
        assert_eq!(link_next(github).as_deref(), Some("https://api.github.com/repositories/1300192/issues?page=4"));
        assert_eq!(link_next(r#"<https://x/a?page=1>; rel="prev""#), None);
        assert_eq!(
            link_next(
                r#"<https://x/a?fields=id,name&page=1>; rel="prev", <https://x/a?fields=id,name&page=3>; rel="next""#
            )
            .as_deref(),
            Some("https://x/a?fields=id,name&page=3"),
            "commas inside a target"
        );
    }

    #[test]
    fn query_parameters_are_set_and_read() {
        assert_eq!(with_param("/crm.deal.list?filter=a", "start", "50"), "/crm.deal.list?filter=a&start=50");
        assert_eq!(with_param("/items?start=50", "start", "100"), "/items?start=100");
        assert_eq!(query_value("/items?page=3&x=1", "page").as_deref(), Some("3"));
    }
}
