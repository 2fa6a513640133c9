//! `kind: http`: calls an HTTP API. The connector holds the base URL, default headers and a
//! pooled client; each step says the method, path and headers (expressions over the message).

mod pages;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use junction_engine::config::duration::ConfigDuration;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::{BuildCx, Connector, ConnectorError, Consumer, Endpoint, Kind, Role, StartCx};
use junction_engine::script::{Script, ScriptEngine};
use junction_engine::store::Store;
use junction_engine::telemetry::otlp;
use junction_engine::{Body, Message, trace};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};

use crate::web::auth::AuthConfig;
use crate::web::{Api, Auth, parse_retry_after, read_limited, shown_url, transport_error};
use serde::Deserialize;
use serde_json::Value;

pub struct HttpKind;

/// A connector's options in `junction.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Every path is relative to this, e.g. `http://127.0.0.1:8081/crm`.
    base_url: String,
    /// Headers sent on every call (static values).
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    auth: Option<AuthConfig>,
    /// Per-call timeout (default 10s).
    #[serde(default)]
    timeout: Option<ConfigDuration>,
}

/// What a step asks: `{ connector: crm, method: POST, path: "/deals/${body.id}", headers: {…} }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallSpec {
    #[serde(default)]
    method: Option<String>,
    /// Appended to `base_url`; `${expr}` parts are filled in from the message.
    #[serde(default)]
    path: Option<String>,
    /// Header name to expression.
    #[serde(default)]
    headers: Option<Node>,
    /// Overrides the connector's timeout for this call.
    #[serde(default)]
    timeout: Option<ConfigDuration>,
}

impl Kind for HttpKind {
    const NAME: &'static str = "http";
    type Config = HttpConfig;

    fn build(
        &self,
        name: &str,
        config: HttpConfig,
        options: &Node,
        _cx: &BuildCx<'_>,
    ) -> Result<Arc<dyn Connector>, NodeError> {
        let at = |key: &str| options.get(key).map_or(options.pos, |n| n.pos);
        let base = reqwest::Url::parse(&config.base_url)
            .map_err(|e| NodeError { message: format!("base_url is not a URL: {e}"), pos: Some(at("base_url")) })?;
        let mut headers = HeaderMap::new();
        for (k, v) in &config.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| NodeError { message: format!("`{k}` is not a header name"), pos: Some(at("headers")) })?;
            let value = HeaderValue::from_str(v).map_err(|_| NodeError {
                message: format!("the value of `{k}` is not a valid header value"),
                pos: Some(at("headers")),
            })?;
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout.map_or(Duration::from_secs(10), |t| t.0))
            .connect_timeout(Duration::from_secs(5))
            .default_headers(headers)
            .build()
            .map_err(|e| NodeError { message: format!("cannot build the HTTP client: {e}"), pos: Some(options.pos) })?;
        let auth = match &config.auth {
            Some(a) => Auth::new(name, a, &base, &client)
                .map_err(|e| NodeError { message: e.to_string(), pos: Some(at("auth")) })?,
            None => Auth::None,
        };
        let api = Arc::new(Api { name: name.to_owned(), base, client, auth });
        Ok(Arc::new(HttpConnector { api, store: Arc::default() }))
    }
}

struct HttpConnector {
    /// Base URL, client and credentials, shared by its calls and its paging source.
    api: Arc<Api>,
    store: Arc<OnceLock<Store>>,
}

#[async_trait]
impl Connector for HttpConnector {
    fn kind(&self) -> &'static str {
        "http"
    }

    /// Credentials that keep tokens in the store (OAuth2) get it and the cache.
    async fn start(&self, cx: &StartCx) -> Result<(), ConnectorError> {
        self.api.auth.start(&cx.store, &cx.cache);
        let _ = self.store.set(cx.store.clone());
        Ok(())
    }

    fn consumer(&self, route: &str, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Consumer>, NodeError> {
        pages::consumer(&self.api, &self.store, route, options)
    }

    fn endpoint(&self, role: Role, options: &Node, cx: &BuildCx<'_>) -> Result<Arc<dyn Endpoint>, NodeError> {
        let spec: CallSpec = options.parse()?;
        let default_method = if role == Role::Send { "POST" } else { "GET" };
        let method_text = spec.method.as_deref().unwrap_or(default_method).to_ascii_uppercase();
        let method = reqwest::Method::from_bytes(method_text.as_bytes()).map_err(|_| NodeError {
            message: format!("`{method_text}` is not an HTTP method"),
            pos: options.get("method").map(|n| n.pos),
        })?;
        let path = spec.path.unwrap_or_default();
        let path_pos = options.get("path").map_or(options.pos, |n| n.pos);
        let path = template(cx.scripts, &path, path_pos)?;
        let mut headers = Vec::new();
        if let Some(node) = &spec.headers {
            let junction_engine::config::node::NodeValue::Map(entries) = &node.value else {
                return Err(NodeError {
                    message: "headers is a mapping of names to expressions".into(),
                    pos: Some(node.pos),
                });
            };
            for (key, value) in entries {
                let name = HeaderName::from_bytes(key.name.as_bytes()).map_err(|_| NodeError {
                    message: format!("`{}` is not a header name", key.name),
                    pos: Some(key.pos),
                })?;
                let text = value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_json().to_string());
                let script = cx
                    .scripts
                    .compile_expression(&key.name, &text)
                    .map_err(|e| NodeError { message: format!("Rhai: {}", e.message), pos: Some(value.pos) })?;
                headers.push((name, script));
            }
        }
        Ok(Arc::new(HttpCall {
            connector: self.api.name.clone(),
            client: self.api.client.clone(),
            base: self.api.base.clone(),
            auth: self.api.auth.clone(),
            method,
            path,
            headers,
            timeout: spec.timeout.map(|t| t.0),
            scripts: cx.scripts.clone(),
        }))
    }
}

/// A path: literal text with `${expr}` parts. The values filled in are percent-encoded, so
/// a value with `/`, `?` or `..` in it stays one path segment and cannot change the target.
enum Part {
    Text(String),
    Value(Script),
}

fn template(
    scripts: &ScriptEngine,
    text: &str,
    pos: junction_engine::config::node::Pos,
) -> Result<Vec<Part>, NodeError> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let end = rest[start..]
            .find('}')
            .map(|e| start + e)
            .ok_or_else(|| NodeError { message: "`${` without its closing `}` in the path".into(), pos: Some(pos) })?;
        parts.push(Part::Text(rest[..start].to_owned()));
        let script = scripts
            .compile_expression("path", &rest[start + 2..end])
            .map_err(|e| NodeError { message: format!("Rhai: {}", e.message), pos: Some(pos) })?;
        parts.push(Part::Value(script));
        rest = &rest[end + 1..];
    }
    parts.push(Part::Text(rest.to_owned()));
    Ok(parts)
}

/// RFC 3986 unreserved characters stay; everything else becomes `%XX`.
fn encode_segment(value: &str, out: &mut String) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

struct HttpCall {
    connector: String,
    client: reqwest::Client,
    base: reqwest::Url,
    auth: Auth,
    method: reqwest::Method,
    path: Vec<Part>,
    headers: Vec<(HeaderName, Script)>,
    timeout: Option<Duration>,
    scripts: Arc<ScriptEngine>,
}

impl HttpCall {
    fn eval(&self, script: &Script, msg: &Message) -> Result<Value, ConnectorError> {
        self.scripts.eval_message(script, msg).map_err(|e| ConnectorError::permanent(e.to_string()))
    }

    fn url(&self, msg: &Message) -> Result<reqwest::Url, ConnectorError> {
        let mut path = String::new();
        for part in &self.path {
            match part {
                Part::Text(t) => path.push_str(t),
                Part::Value(script) => match self.eval(script, msg)? {
                    Value::String(s) => encode_segment(&s, &mut path),
                    other => encode_segment(&other.to_string(), &mut path),
                },
            }
        }
        if path.is_empty() {
            return Ok(self.base.clone());
        }
        let joined = format!("{}{}", self.base.as_str().trim_end_matches('/'), path);
        reqwest::Url::parse(&joined).map_err(|e| ConnectorError::permanent(format!("bad URL {joined}: {e}")))
    }

    /// One call. The engine counts, times and traces it as every connector's; this adds
    /// what only an HTTP call knows to its span (`POST crm`, the method, URL and status).
    async fn traced(&self, msg: &Message) -> Result<Message, ConnectorError> {
        otlp::call::name(format_args!("{} {}", self.method, self.connector));
        otlp::call::set("http.request.method", self.method.as_str());
        match self.call(msg).await {
            // A token the server refused (expired early, revoked): a new one, and once more.
            Err(f) if f.unauthorized && self.auth.can_renew() => {
                self.auth.renew().await?;
                self.call(msg).await.map_err(|f| f.error)
            }
            other => other.map_err(|f| f.error),
        }
    }

    async fn call(&self, msg: &Message) -> Result<Message, Failed> {
        let url = self.url(msg)?;
        if otlp::call::traced() {
            otlp::call::set("url.full", shown_url(&url));
        }
        let mut req = self.client.request(self.method.clone(), url);
        if let Some(t) = self.timeout {
            req = req.timeout(t);
        }
        req = self.auth.apply(req).await?;
        for (name, script) in &self.headers {
            let value = match self.eval(script, msg)? {
                Value::String(s) => s,
                Value::Null => continue,
                other => other.to_string(),
            };
            let value = HeaderValue::from_str(&value)
                .map_err(|_| ConnectorError::permanent(format!("header {name} has an invalid value")))?;
            req = req.header(name.clone(), value);
        }
        if let Some(id) = msg.meta.source.get("request_id").and_then(Value::as_str) {
            req = req.header("x-request-id", id);
        }
        if let Some(trace) = &msg.meta.trace_id {
            // The called system's spans nest under this call's span; untraced, the call is
            // still a span of its own, as the W3C spec asks.
            let span_id = otlp::call::id().unwrap_or_else(trace::new_span_id);
            req = req.header("traceparent", trace::traceparent(trace, &span_id));
        }
        if !matches!(self.method, reqwest::Method::GET | reqwest::Method::HEAD | reqwest::Method::DELETE) {
            req = match &msg.body {
                Body::Json(v) => req.json(v),
                Body::Bytes(b) => req.body(b.clone()),
            };
        }
        let resp = req.send().await.map_err(|e| transport_error(&format!("{} {}", self.method, self.connector), &e))?;
        let status = resp.status();
        otlp::call::set("http.response.status_code", status.as_u16());
        let retry_after = resp.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        let bytes = read_limited(resp).await?;
        if status.is_success() {
            let mut reply = Message::new(Body::from_bytes_lenient(bytes));
            reply.headers.insert("http_status".into(), Value::from(status.as_u16()));
            return Ok(reply);
        }
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned();
        let message = format!("{} {} answered {status}: {text}", self.method, self.connector);
        let retryable = status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408;
        Err(Failed {
            error: if retryable {
                ConnectorError::retryable(message).with_retry_after(retry_after)
            } else {
                ConnectorError::permanent(message)
            },
            unauthorized: status == reqwest::StatusCode::UNAUTHORIZED,
        })
    }
}

/// A failed call; `unauthorized` when the server answered 401, which new credentials may cure.
struct Failed {
    error: ConnectorError,
    unauthorized: bool,
}

impl From<ConnectorError> for Failed {
    fn from(error: ConnectorError) -> Self {
        Self { error, unauthorized: false }
    }
}

#[async_trait]
impl Endpoint for HttpCall {
    async fn send(&self, msg: &Message) -> Result<(), ConnectorError> {
        self.traced(msg).await.map(|_| ())
    }

    async fn request(&self, msg: &Message) -> Result<Message, ConnectorError> {
        self.traced(msg).await
    }

    fn describe(&self) -> String {
        format!("{} {}", self.method, self.connector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT"), Some(Duration::ZERO));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        let d = parse_retry_after(&later).expect("a date parses");
        assert!(d > Duration::from_secs(80) && d <= Duration::from_secs(90), "{d:?}");
        assert!(parse_retry_after("soon").is_none());
    }

    #[test]
    fn spans_show_urls_without_credentials_or_query() {
        let url = reqwest::Url::parse("https://me:pw@crm.example/deals/7?token=x#top").expect("a URL");
        assert_eq!(shown_url(&url), "https://crm.example/deals/7");
    }

    #[test]
    fn filled_in_values_stay_one_segment() {
        let mut out = String::new();
        encode_segment("a/../b?x=1#y é", &mut out);
        assert_eq!(out, "a%2F..%2Fb%3Fx%3D1%23y%20%C3%A9");
    }
}
