//! What every connector speaking to an HTTP API shares (the `http` kind and the adapters):
//! credentials ([`auth`]), one call with its reply read, bounded and checked ([`Api`]), how a
//! failed call is classified for retries and dead letters, and walking pages ([`paging`]).
//! Limits, the breaker, metrics and spans around each call are the engine's (a connector's
//! `limits` and `breaker` options), not this module's.

pub mod args;
pub mod auth;
pub mod daily;
pub mod paging;

use std::time::Duration;

use bytes::Bytes;
use junction_engine::connector::{ConnectorError, Delivery};
use junction_engine::telemetry::otlp;
use junction_engine::trace;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

pub use auth::Auth;

/// The largest reply body read; a bigger one is an error rather than a memory blow-up.
pub const MAX_REPLY: usize = 16 << 20;

/// An HTTP API: a base URL, a pooled client and the credentials every call carries.
pub struct Api {
    /// The connector's name, in errors and spans.
    pub name: String,
    pub base: Url,
    pub client: reqwest::Client,
    pub auth: Auth,
}

/// What a call expects back on a 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A JSON document; a 2xx whose body is not one (an HTML error page, a truncated reply)
    /// is an error, never passed on.
    Json,
    /// JSON, or nothing at all (204 No Content, an empty 200).
    JsonOrEmpty,
    /// Text as it is (a TSV report), as a JSON string.
    Text,
}

/// A call's answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    /// `Value::Null` for an empty reply.
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

/// One request, as [`Api::call`] sends it.
pub struct Call<'a> {
    pub method: Method,
    /// Appended to the base URL (`/api/v4/leads`); may hold a query.
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub body: Option<&'a Value>,
    /// Headers of this call only (`If-Match`).
    pub headers: &'a [(&'static str, String)],
    /// Whether sending the call again is harmless. A 2xx whose body cannot be read is then
    /// retried; otherwise (a POST that made something) it is a permanent failure, since the
    /// other side took the call and a retry would make a second.
    pub idempotent: bool,
    pub expect: Expect,
    pub trace_id: Option<&'a str>,
}

impl<'a> Call<'a> {
    pub fn new(method: Method, path: &'a str) -> Self {
        let idempotent = method != Method::POST;
        Self { method, path, query: &[], body: None, headers: &[], idempotent, expect: Expect::Json, trace_id: None }
    }
}

impl Api {
    /// The API a connector's `base_url` and `timeout` options describe (errors at the
    /// options' positions), with `auth` to be set by the kind.
    pub fn from_options(
        name: &str,
        base_url: &str,
        timeout: Duration,
        options: &junction_engine::config::node::Node,
    ) -> Result<Api, junction_engine::config::node::NodeError> {
        use junction_engine::config::node::NodeError;
        let base = Url::parse(base_url).map_err(|e| NodeError {
            message: format!("base_url is not a URL: {e}"),
            pos: Some(options.get("base_url").map_or(options.pos, |n| n.pos)),
        })?;
        let client =
            reqwest::Client::builder().timeout(timeout).connect_timeout(Duration::from_secs(5)).build().map_err(
                |e| NodeError { message: format!("cannot build the HTTP client: {e}"), pos: Some(options.pos) },
            )?;
        Ok(Api { name: name.to_owned(), base, client, auth: Auth::None })
    }

    /// The URL of `path` under the base URL.
    pub fn url(&self, path: &str) -> Result<Url, ConnectorError> {
        let joined = format!("{}{}", self.base.as_str().trim_end_matches('/'), path);
        Url::parse(&joined).map_err(|e| ConnectorError::permanent(format!("{}: bad URL {joined}: {e}", self.name)))
    }

    /// A URL the server gave (absolute, or from its root) as a path under the base URL, the way
    /// [`Api::call`] takes it. A URL elsewhere is refused: the connector's credentials go to its
    /// own API only.
    pub fn relative(&self, url: &str) -> Result<String, ConnectorError> {
        let full = self.base.join(url).map_err(|e| {
            ConnectorError::permanent(format!("{}: the server gave `{url}`, not a URL: {e}", self.name))
        })?;
        let base_path = self.base.path().trim_end_matches('/');
        let same_origin = full.origin() == self.base.origin();
        let under = full
            .path()
            .strip_prefix(base_path)
            .filter(|rest| same_origin && (rest.is_empty() || rest.starts_with('/')));
        match under {
            Some(rest) => Ok(match full.query() {
                Some(q) => format!("{rest}?{q}"),
                None => rest.to_owned(),
            }),
            None => Err(ConnectorError::permanent(format!(
                "{}: the server's next page {} is not under {}",
                self.name,
                shown_url(&full),
                shown_url(&self.base)
            ))),
        }
    }

    /// Sends `call` with the credentials, reads and checks the reply. A 401 makes the
    /// credentials fetch a new token once (one that expired early, or was revoked) and the
    /// call go again.
    pub async fn call(&self, call: &Call<'_>) -> Result<Reply, ConnectorError> {
        match self.send(call).await {
            Err(Failure::Unauthorized(message)) if self.auth.can_renew() => {
                self.auth.renew().await?;
                let _ = message;
                self.send(call).await.map_err(|f| f.into_error(true))
            }
            other => other.map_err(|f| f.into_error(false)),
        }
    }

    async fn send(&self, call: &Call<'_>) -> Result<Reply, Failure> {
        let mut url = self.url(call.path).map_err(Failure::Error)?;
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(call.query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        if otlp::call::traced() {
            otlp::call::set("http.request.method", call.method.as_str());
            otlp::call::set("url.full", shown_url(&url));
        }
        let what = format!("{} {}", call.method, self.name);
        let mut req = self.client.request(call.method.clone(), url);
        req = self.auth.apply(req).await.map_err(Failure::Error)?;
        if let Some(trace) = call.trace_id {
            let span_id = otlp::call::id().unwrap_or_else(trace::new_span_id);
            req = req.header("traceparent", trace::traceparent(trace, &span_id));
        }
        for (name, value) in call.headers {
            req = req.header(*name, value);
        }
        if let Some(body) = call.body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| Failure::Error(transport_error(&what, &e)))?;
        let status = resp.status();
        otlp::call::set("http.response.status_code", status.as_u16());
        let headers = resp.headers().clone();
        let bytes = read_limited(resp).await.map_err(Failure::Error)?;
        if status.is_success() {
            let body = checked_body(&what, &headers, &bytes, call.expect).map_err(|e| {
                Failure::Error(if call.idempotent {
                    e
                } else {
                    ConnectorError::permanent(format!("{}; not sent again, since it was taken", e.message()))
                })
            })?;
            return Ok(Reply { status, body, headers });
        }
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned();
        let message = format!("{what} answered {status}: {text}");
        if status == StatusCode::UNAUTHORIZED {
            return Err(Failure::Unauthorized(message));
        }
        Err(Failure::Error(status_error(status, message, &headers)))
    }
}

/// A call that failed: a 401 is told apart, since new credentials may cure it.
enum Failure {
    Unauthorized(String),
    Error(ConnectorError),
}

impl Failure {
    /// The error to give; `renewed` when the call was refused once already and sent again with
    /// a new token.
    fn into_error(self, renewed: bool) -> ConnectorError {
        match self {
            // Twice refused (or credentials that cannot renew): the other side refuses them.
            Failure::Unauthorized(message) => {
                let message = if renewed { format!("{message} (again after a new token)") } else { message };
                ConnectorError::rejected(format!("{message}; check the connector's credentials"))
            }
            Failure::Error(e) => e,
        }
    }
}

/// A non-2xx answer as an error: 5xx, 408 and 429 are retryable (honouring `Retry-After`), 401
/// and 403 and other 4xx are the other side refusing the call (not retried).
pub fn status_error(status: StatusCode, message: String, headers: &reqwest::header::HeaderMap) -> ConnectorError {
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
        .or_else(|| (status == StatusCode::TOO_MANY_REQUESTS).then(|| exhausted_window(headers)).flatten());
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT {
        ConnectorError::retryable(message).with_retry_after(retry_after)
    } else {
        ConnectorError::rejected(message)
    }
}

/// The error status the other side answered, when `e` is such an answer ([`status_error`]'s
/// `… answered 429 Too Many Requests: …`) rather than no answer or a broken one.
pub fn answered(e: &ConnectorError) -> Option<u16> {
    e.message().split(" answered ").skip(1).find_map(|rest| {
        let code = rest.get(..4)?;
        code.ends_with(' ').then(|| code[..3].parse().ok()).flatten()
    })
}

/// Without `Retry-After`, the wait that `X-RateLimit-<window>-Remaining: 0` headers imply (VK
/// Ads sends them for the second, minute, hour and day, counted in calendar periods): until the
/// longest exhausted window turns.
fn exhausted_window(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    use chrono::Timelike;
    let spent = |window: &str| {
        headers
            .get(format!("x-ratelimit-{window}-remaining"))
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0")
    };
    let now = chrono::Utc::now();
    let into_hour = u64::from(now.minute() * 60 + now.second());
    // A little past the turn: the server's clock, and its day's time zone, are not ours.
    let slack = Duration::from_secs(2);
    let wait = if spent("daily") {
        Duration::from_secs(86_400 - u64::from(now.num_seconds_from_midnight()))
    } else if spent("hourly") {
        Duration::from_secs(3600 - into_hour)
    } else if spent("minutely") {
        Duration::from_secs(60 - u64::from(now.second()))
    } else if spent("rps") {
        Duration::from_secs(1)
    } else {
        return None;
    };
    Some(wait + slack)
}

/// A request that got no answer: nobody listening is an outage; a timeout or a broken
/// reply may pass on a retry.
pub fn transport_error(what: &str, e: &reqwest::Error) -> ConnectorError {
    let message = format!("{what}: {}", describe(e));
    if e.is_connect() { ConnectorError::unavailable(message) } else { ConnectorError::retryable(message) }
}

/// The reply's body as the call expects it.
fn checked_body(
    what: &str,
    headers: &reqwest::header::HeaderMap,
    bytes: &Bytes,
    expect: Expect,
) -> Result<Value, ConnectorError> {
    if expect == Expect::Text {
        return Ok(Value::String(String::from_utf8_lossy(bytes).into_owned()));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return match expect {
            Expect::JsonOrEmpty | Expect::Text => Ok(Value::Null),
            Expect::Json => {
                Err(ConnectorError::retryable(format!("{what} answered with an empty body where JSON was expected")))
            }
        };
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let kind = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("no content type");
        // Truncated or an error page from a proxy: the next try may get the real answer.
        ConnectorError::retryable(format!("{what} answered a body that is not JSON ({kind}): {e}"))
    })
}

/// A URL as a span shows it: without credentials, query or fragment, which may hold secrets.
pub fn shown_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    // Only URLs that cannot have credentials refuse these, and those have none to hide.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.into()
}

/// Reads a reply's body, refusing one above [`MAX_REPLY`].
pub async fn read_limited(mut resp: reqwest::Response) -> Result<Bytes, ConnectorError> {
    if resp.content_length().is_some_and(|n| n > MAX_REPLY as u64) {
        return Err(ConnectorError::permanent(format!("the reply is larger than {MAX_REPLY} bytes")));
    }
    let mut body = Vec::new();
    while let Some(chunk) =
        resp.chunk().await.map_err(|e| ConnectorError::retryable(format!("reading the reply: {}", describe(&e))))?
    {
        if body.len() + chunk.len() > MAX_REPLY {
            return Err(ConnectorError::permanent(format!("the reply is larger than {MAX_REPLY} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}

/// Seconds, or an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v.trim()).ok()?;
    Some((when.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO))
}

/// An error with its causes, which reqwest keeps apart (`error sending request: connection
/// refused`), its URL shown without query or credentials (an API key may travel in the query).
pub fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), &shown_url(url));
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Waits for every delivery in `running`; whether all of them settled (a stop may leave some,
/// and then the checkpoint must not move past them).
async fn all_settled(running: &mut tokio::task::JoinSet<Delivery>) -> bool {
    let mut all = true;
    while let Some(done) = running.join_next().await {
        all &= matches!(done, Ok(Delivery::Settled));
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2xx_that_is_not_json_is_an_error_not_a_body() {
        let headers = reqwest::header::HeaderMap::new();
        let html = Bytes::from_static(b"<html>502 Bad Gateway</html>");
        let e = checked_body("GET crm", &headers, &html, Expect::Json).expect_err("an HTML page");
        assert!(e.is_retryable() && e.message().contains("not JSON"), "{e:?}");
        let truncated = Bytes::from_static(b"{\"_embedded\": {\"leads\": [");
        assert!(checked_body("GET crm", &headers, &truncated, Expect::Json).is_err());
        assert_eq!(checked_body("GET crm", &headers, &Bytes::new(), Expect::JsonOrEmpty).ok(), Some(Value::Null));
        assert!(checked_body("GET crm", &headers, &Bytes::new(), Expect::Json).is_err());
    }

    #[test]
    fn urls_in_errors_lose_their_query() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let e = runtime
            .block_on(reqwest::Client::new().get("http://127.0.0.1:1/hook?key=SECRET").send())
            .expect_err("nothing listens on port 1");
        let text = describe(&e);
        assert!(!text.contains("SECRET") && text.contains("127.0.0.1:1/hook"), "{text}");
    }

    #[test]
    fn statuses_are_classified() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(RETRY_AFTER, "3".parse().expect("header"));
        let e = status_error(StatusCode::TOO_MANY_REQUESTS, "429".into(), &headers);
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        let mut limited = reqwest::header::HeaderMap::new();
        limited.insert("x-ratelimit-rps-remaining", "0".parse().expect("header"));
        let e = status_error(StatusCode::TOO_MANY_REQUESTS, "429".into(), &limited);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)), "a spent second waits for the next, and a little");
        limited.insert("x-ratelimit-hourly-remaining", "0".parse().expect("header"));
        let hour = status_error(StatusCode::TOO_MANY_REQUESTS, "429".into(), &limited).retry_after();
        assert!(hour.is_some_and(|w| w > Duration::from_secs(2) && w <= Duration::from_secs(3602)), "{hour:?}");
        let e = status_error(StatusCode::BAD_REQUEST, "400".into(), &reqwest::header::HeaderMap::new());
        assert!(matches!(e, ConnectorError::Rejected { .. }), "{e:?}");
    }
}
