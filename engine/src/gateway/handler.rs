//! One HTTP request: find its endpoint, run it through the endpoint's layers, answer; and,
//! innermost, the route itself: read and check the body, run the route.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use metrics::Counter;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use super::endpoints::Lookup;
use super::problem::{self, Problem};
use super::{EndpointLayer, GatewayRequest, GatewayResponse, RequestCx, Shared, State};
use crate::message::{Body, Message};
use crate::route::{HttpSource, Route, Source};
use crate::runtime::deliver::{Delivered, deliver_with};
use crate::runtime::detach::detach_on_drop;
use crate::steps::ErrorKind;
use crate::telemetry::GatewayMetrics;

const REQUEST_ID: &str = "x-request-id";

pub(super) async fn handle(state: Arc<State>, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let given = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty() && v.len() <= 200);
    // A request without an id gets a fresh one, which its message then takes as its own id.
    let (request_id, fresh_id): (Arc<str>, bool) = match given {
        Some(v) => (v.into(), false),
        None => (uuid::Uuid::now_v7().to_string().into(), true),
    };
    let origin = req.headers().get(header::ORIGIN).cloned();
    let (mut resp, metrics) = route_request(
        &state,
        req,
        RequestCx { request_id: request_id.clone(), fresh_id, peer, params: Vec::new() },
        origin,
    )
    .await;
    metrics.as_deref().unwrap_or(&state.unmatched).answered(resp.status());
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

/// The answer, and the metrics of the endpoint that gave it (`None` when nothing matched).
async fn route_request(
    state: &State,
    req: Request<Incoming>,
    mut cx: RequestCx,
    origin: Option<HeaderValue>,
) -> (Response<Full<Bytes>>, Option<Arc<GatewayMetrics>>) {
    let endpoints = state.endpoints.load();
    let lookup = endpoints.lookup(req.method(), req.uri().path());
    // A mounted API serves what no route does, a method the routes on its path lack included.
    if !matches!(lookup, Lookup::Found { .. })
        && let Some(mounted) = endpoints.mount_at(req.uri().path()).cloned()
    {
        drop(endpoints);
        if let Some(origin) = &origin
            && is_preflight(&req)
        {
            let cors: Vec<&super::cors::Cors> = mounted.mount.cors.iter().map(Arc::as_ref).collect();
            return (preflight_answer(origin, &cors, &cx.request_id), None);
        }
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(cx);
        let Ok(mut resp) = mounted.service.oneshot(Request::from_parts(parts, Either::Left(body))).await;
        if let (Some(origin), Some(cors)) = (origin, mounted.mount.cors.first()) {
            cors.decorate(&origin, resp.headers_mut());
        }
        return (resp, Some(mounted.metrics));
    }
    let (endpoint, params) = match lookup {
        Lookup::Found { endpoint, params } => (endpoint, params),
        Lookup::MethodNotAllowed(allowed) => {
            if let Some(origin) = &origin
                && is_preflight(&req)
            {
                let cors = endpoints.cors_at(req.uri().path());
                let cors: Vec<&super::cors::Cors> = cors.iter().map(Arc::as_ref).collect();
                return (preflight_answer(origin, &cors, &cx.request_id), None);
            }
            return (problem::method_not_allowed(req.method(), &allowed, &cx.request_id), None);
        }
        Lookup::NotFound if super::openapi::wanted(&req) => return (super::openapi::response(&endpoints), None),
        Lookup::NotFound => return (problem::not_found(req.uri().path()).into_response(&cx.request_id), None),
    };
    drop(endpoints);
    cx.params = params;
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(cx);
    let req = Request::from_parts(parts, Either::Left(body));
    let Ok(mut resp) = endpoint.service.clone().oneshot(req).await;
    if let (Some(origin), Some(cors)) = (origin, endpoint.source().and_then(|s| s.cors.as_ref())) {
        cors.decorate(&origin, resp.headers_mut());
    }
    (resp, Some(endpoint.metrics))
}

/// A browser asking whether it may send the request it names.
fn is_preflight<B>(req: &Request<B>) -> bool {
    req.method() == http::Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The preflight's answer from the CORS settings of what serves the path: 403 when none
/// allows the origin.
fn preflight_answer(origin: &HeaderValue, cors: &[&super::cors::Cors], request_id: &str) -> Response<Full<Bytes>> {
    super::cors::preflight(origin, cors).unwrap_or_else(|| {
        Problem::new(
            StatusCode::FORBIDDEN,
            "cors-origin-not-allowed",
            "Origin not allowed",
            "this origin may not call this endpoint",
        )
        .into_response(request_id)
    })
}

/// The innermost service of every endpoint: the route itself.
#[derive(Clone)]
pub(super) struct RouteService {
    route: Arc<Route>,
    shared: Arc<Shared>,
    /// Counts requests turned away because the route is at `max_in_flight`.
    shed: Counter,
}

impl RouteService {
    pub(super) fn new(route: Arc<Route>, shared: Arc<Shared>, shed: Counter) -> Self {
        Self { route, shared, shed }
    }
}

impl EndpointLayer for RouteService {
    async fn serve(self, req: GatewayRequest) -> GatewayResponse {
        let (route, shared, shed) = (self.route.clone(), self.shared.clone(), self.shed.clone());

        let Source::Http(source) = &route.source else {
            return problem::not_found(req.uri().path()).into_response("");
        };
        let cx = req.extensions().get::<RequestCx>().cloned().expect("the gateway sets RequestCx on every request");
        if shared.paused.is(&route.id) {
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "route-paused",
                "The route is paused",
                format!("route {} is paused by an admin; try again later", route.id),
            )
            .retry_after(5)
            .into_response(&cx.request_id);
        }
        match accept(&shared, &route, source, req, &cx, &shed).await {
            Ok(resp) | Err(resp) => resp,
        }
    }
}

/// Reads the request into a message and runs it; `Err` is an early problem answer.
async fn accept(
    shared: &Shared,
    route: &Arc<Route>,
    source: &HttpSource,
    req: GatewayRequest,
    cx: &RequestCx,
    shed: &Counter,
) -> Result<Response<Full<Bytes>>, Response<Full<Bytes>>> {
    let (request_id, fresh, params) = (&*cx.request_id, cx.fresh_id, cx.params.clone());
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, source.max_body).await.map_err(|p| {
        // The rest of the body is unread: this connection cannot carry another request.
        let mut resp = p.into_response(request_id);
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        resp
    })?;
    let expects_json = source.schema.is_some();
    let body = parse_body(&parts.headers, bytes.clone(), expects_json).map_err(|p| p.into_response(request_id))?;
    if let Some(schema) = &source.schema {
        let violations = schema.violations(&body.json());
        if !violations.is_empty() {
            let detail = format!("the body does not match {}", schema.file());
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "schema-violation",
                "Request body does not match its schema",
                detail,
            )
            .with("errors", json!(violations))
            .into_response(request_id));
        }
    }
    // A key that travels in the query is checked and goes no further.
    let secret_query = source.auth.as_ref().and_then(|a| a.query_param()).map(str::to_owned);
    let msg = message(
        &parts,
        body,
        params.clone(),
        secret_query.as_deref(),
        request_id,
        fresh.then(|| request_id.to_owned()),
    );
    if source.is_async {
        return Ok(enqueue(shared, route, &msg, request_id).await);
    }
    // A request/reply run holds a route permit while it runs (taken only now, so a slow
    // upload does not hold one); an async accept only stores the message, and its consumer
    // takes the permits.
    let Ok(permit) = route.permits.clone().try_acquire_owned() else {
        shed.increment(1);
        return Err(problem::overloaded(&route.id).into_response(request_id));
    };
    // Should the route fail, the original is read again from the request rather than copied
    // up front: most requests never need it.
    let (id, request) = (msg.id.clone(), request_id.to_owned());
    let rebuild = move || {
        let body = parse_body(&parts.headers, bytes, expects_json).unwrap_or_else(|_| Body::Json(Value::Null));
        message(&parts, body, params, secret_query.as_deref(), &request, Some(id))
    };
    let message_id = msg.id.clone();
    // A caller that hangs up or stops waiting must not cancel the run halfway (that would
    // lose the message); it finishes, or is dead-lettered, regardless.
    let mut run = {
        let (route, store) = (route.clone(), shared.store.clone());
        detach_on_drop(async move {
            let result = deliver_with(&route, 0, msg, rebuild, &store).await;
            drop(permit);
            result
        })
    };
    // `run` first: most runs finish on their first poll, and then the timer is never armed.
    let result = tokio::select! {
        biased;
        r = &mut run => match r {
            Ok(r) => r,
            Err(panic) => {
                let error = panic.downcast_ref::<&str>().copied().or_else(|| panic.downcast_ref::<String>().map(String::as_str)).unwrap_or("a panic");
                tracing::error!(route = %route.id, message_id, error, "a route run panicked");
                return Ok(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal-error", "Internal error", "the route failed unexpectedly; see the logs")
                    .into_response(request_id));
            }
        },
        () = tokio::time::sleep(source.timeout) => {
            return Ok(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "The route took too long",
                format!("no answer within {} ms; the message is still being processed", source.timeout.as_millis()),
            )
            .with("message_id", json!(message_id))
            .retry_after(1)
            .into_response(request_id));
        }
    };
    Ok(match result {
        Ok(Delivered::Done(out)) => reply(out),
        Ok(Delivered::DeadLettered { failure, dead_letter_id }) => {
            let (status, kind, title) = match failure.error.kind {
                ErrorKind::Rejected => (StatusCode::UNPROCESSABLE_ENTITY, "rejected", "The route rejected the message"),
                ErrorKind::Retryable => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "dependency-unavailable",
                    "A dependency of the route is unavailable",
                ),
                ErrorKind::Fatal => {
                    (StatusCode::BAD_GATEWAY, "route-failed", "The route could not process the message")
                }
                ErrorKind::Exhausted => {
                    (StatusCode::TOO_MANY_REQUESTS, "budget-exhausted", "A budget of the route is spent")
                }
            };
            let mut p = Problem::new(status, kind, title, failure.error.message.clone())
                .with("route", json!(&*route.id))
                .with("step", json!(failure.step))
                .with("dead_letter_id", json!(dead_letter_id));
            if status == StatusCode::SERVICE_UNAVAILABLE {
                p = p.retry_after(failure.error.retry_after.map_or(5, |d| d.as_secs().max(1)));
            } else if let (StatusCode::TOO_MANY_REQUESTS, Some(after)) = (status, failure.error.retry_after) {
                p = p.retry_after(after.as_secs().max(1));
            }
            p.into_response(request_id)
        }
        Err(e) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            "The store is unavailable",
            e.to_string(),
        )
        .retry_after(5)
        .into_response(request_id),
    })
}

/// The body, up to `limit` bytes (413 beyond).
pub(super) async fn read_body<B>(body: B, limit: u64) -> Result<Bytes, Box<Problem>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Box::new(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Request body too large",
            format!("the body exceeds {limit} bytes"),
        ))),
        Err(e) => Err(Box::new(Problem::new(
            StatusCode::BAD_REQUEST,
            "unreadable-body",
            "Request body could not be read",
            e.to_string(),
        ))),
    }
}

/// A message from a request: headers without credentials, the request's facts in `meta.source`.
fn message(
    parts: &http::request::Parts,
    body: Body,
    params: Vec<(String, String)>,
    secret_query: Option<&str>,
    request_id: &str,
    id: Option<String>,
) -> Message {
    let mut msg = match id {
        Some(id) => Message::with_id(id, body),
        None => Message::new(body),
    };
    msg.headers = request_headers(&parts.headers);
    msg.meta.source = source_meta(parts, params, secret_query, request_id);
    let (trace_id, parent_span_id) = crate::trace::of_request(&parts.headers);
    msg.meta.trace_id = Some(trace_id);
    msg.meta.parent_span_id = parent_span_id;
    msg
}

/// A form (`application/x-www-form-urlencoded`) as JSON with its nested keys (unless the body
/// is JSON, as `curl -d` labels it); JSON when the
/// request says JSON, says nothing, or the route has a schema (then bad JSON is a 400); for
/// other content types JSON if it parses, raw bytes otherwise.
fn parse_body(headers: &HeaderMap, bytes: Bytes, expects_json: bool) -> Result<Body, Box<Problem>> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    const FORM: &str = "application/x-www-form-urlencoded";
    if content_type.trim_start().get(..FORM.len()).is_some_and(|t| t.eq_ignore_ascii_case(FORM)) {
        // `curl -d '{"a": 1}'` sends JSON labelled as a form: JSON that parses stays JSON.
        if let Ok(value) = crate::json::from_slice(&bytes, MAX_BODY_DEPTH) {
            return Ok(Body::Json(value));
        }
        return Ok(Body::Json(super::form::nested(&bytes)));
    }
    let is_json = expects_json || content_type.is_empty() || content_type.contains("json");
    if !is_json {
        return Ok(Body::from_bytes_lenient(bytes));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Body::Json(Value::Null));
    }
    match crate::json::from_slice(&bytes, MAX_BODY_DEPTH) {
        Ok(value) => Ok(Body::Json(value)),
        Err(crate::json::ReadError::Syntax(e)) => Err(Box::new(
            Problem::new(StatusCode::BAD_REQUEST, "malformed-json", "Request body is not valid JSON", format!("{e}"))
                .with("line", json!(e.line()))
                .with("column", json!(e.column())),
        )),
        Err(crate::json::ReadError::TooDeep) => Err(Box::new(Problem::new(
            StatusCode::BAD_REQUEST,
            "too-deeply-nested",
            "Request body is nested too deeply",
            format!("arrays and objects may nest at most {MAX_BODY_DEPTH} levels"),
        ))),
    }
}

/// How deeply an accepted body may nest: well inside what the store can read back (serde_json
/// stops at 128 levels, and a stored message wraps the body in two more).
const MAX_BODY_DEPTH: usize = 100;

/// Request headers as message headers, without credentials (they must never reach a log, the
/// store or a downstream system by accident).
fn request_headers(headers: &HeaderMap) -> Map<String, Value> {
    let mut out = Map::with_capacity(headers.len());
    for (name, v) in headers {
        if let Ok(v) = v.to_str()
            && !is_credential(name.as_str())
        {
            out.insert(name.as_str().to_owned(), Value::String(v.to_owned()));
        }
    }
    out
}

/// Header names that carry secrets: the standard ones, and the usual custom spellings (a name
/// containing token, secret, password, api-key, apikey, signature or session).
fn is_credential(name: &str) -> bool {
    if matches!(name, "authorization" | "proxy-authorization" | "cookie" | "set-cookie") {
        return true;
    }
    // One pass over the name, looking for a word only where its first letter is.
    let name = name.as_bytes();
    (0..name.len()).any(|i| {
        let rest = &name[i..];
        match rest[0] {
            b't' => rest.starts_with(b"token"),
            b's' => rest.starts_with(b"secret") || rest.starts_with(b"signature") || rest.starts_with(b"session"),
            b'p' => rest.starts_with(b"password"),
            b'a' => rest.starts_with(b"api-key") || rest.starts_with(b"apikey"),
            _ => false,
        }
    })
}

fn source_meta(
    parts: &http::request::Parts,
    params: Vec<(String, String)>,
    secret_query: Option<&str>,
    request_id: &str,
) -> Map<String, Value> {
    let query: Map<String, Value> = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), Value::String(percent_decode(v)))
        })
        // A secret in the URL (a webhook's `?token=…`) is checked by the route's auth and goes
        // no further.
        .filter(|(k, _)| Some(k.as_str()) != secret_query && !is_credential(&k.to_ascii_lowercase()))
        .collect();
    let mut m = Map::with_capacity(5);
    m.insert("method".into(), Value::String(parts.method.to_string()));
    m.insert("path".into(), Value::String(parts.uri.path().to_owned()));
    m.insert("params".into(), Value::Object(params.into_iter().map(|(k, v)| (k, Value::String(v))).collect()));
    m.insert("query".into(), Value::Object(query));
    m.insert("request_id".into(), Value::String(request_id.to_owned()));
    m
}

/// Decodes `%XX` escapes and `+` (a space in query strings); invalid escapes stay as written.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// `async: true`: the message is stored on the route's own topic, then acknowledged.
async fn enqueue(shared: &Shared, route: &Route, msg: &Message, request_id: &str) -> Response<Full<Bytes>> {
    match shared.bus.publish(&crate::route::http_topic(&route.id), msg).await {
        Ok(()) => json_response(StatusCode::ACCEPTED, &json!({ "id": msg.id, "status": "accepted" })),
        // Back-pressure: the route's consumer is behind by as much as the bus may hold.
        Err(e @ crate::connector::PublishError::Full { .. }) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "backlog-full",
            "Too many messages are waiting",
            e.to_string(),
        )
        .retry_after(1)
        .into_response(request_id),
        Err(e) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            "The message could not be stored",
            e.to_string(),
        )
        .retry_after(5)
        .into_response(request_id),
    }
}

/// The route's output as the answer: one message is its body, several an array, none 204.
/// A route may set the status with an `http_status` header.
fn reply(mut out: Vec<Message>) -> Response<Full<Bytes>> {
    let status = out
        .first()
        .and_then(|m| m.headers.get("http_status"))
        .and_then(Value::as_u64)
        .and_then(|s| StatusCode::from_u16(u16::try_from(s).ok()?).ok())
        .unwrap_or(StatusCode::OK);
    match out.len() {
        0 => {
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = StatusCode::NO_CONTENT;
            resp
        }
        1 => match out.pop().map(|m| m.body) {
            Some(Body::Bytes(b)) => {
                let mut resp = Response::new(Full::new(b));
                *resp.status_mut() = status;
                resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
                resp
            }
            Some(Body::Json(v)) => json_response(status, &v),
            None => json_response(status, &Value::Null),
        },
        _ => json_response(status, &Value::Array(out.into_iter().map(|m| m.body.to_json()).collect())),
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    // Sized for a typical answer up front rather than grown a few bytes at a time.
    let mut bytes = Vec::with_capacity(512);
    serde_json::to_writer(&mut bytes, value).expect("a JSON value always serializes");
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_escapes() {
        assert_eq!(percent_decode("a%20b+c%2Fd"), "a b c/d");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%C3%A9"), "%zzé");
    }

    #[test]
    fn credentials_are_recognised() {
        for h in [
            "authorization",
            "cookie",
            "x-api-key",
            "apikey",
            "x-auth-token",
            "x-hub-signature-256",
            "x-client-secret",
            "x-session-id",
            "db-password",
        ] {
            assert!(is_credential(h), "{h}");
        }
        for h in ["content-type", "x-request-id", "user-agent", "accept", "traceparent", "x-stage", "a", ""] {
            assert!(!is_credential(h), "{h}");
        }
    }

    /// The problem `parse_body` answers with: its status and type.
    async fn refusal(bytes: Bytes) -> (StatusCode, String) {
        let problem = parse_body(&HeaderMap::new(), bytes, true).expect_err("refused");
        let resp = problem.into_response("r");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("a full body").to_bytes();
        let body: Value = serde_json::from_slice(&body).expect("problem+json");
        (status, body["type"].as_str().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_owned())
    }

    #[tokio::test]
    async fn limits_nesting() {
        let nested = |levels: usize| Bytes::from(format!("{}1{}", "[".repeat(levels), "]".repeat(levels)));
        assert!(parse_body(&HeaderMap::new(), nested(MAX_BODY_DEPTH), true).is_ok());
        assert_eq!(refusal(nested(MAX_BODY_DEPTH + 1)).await, (StatusCode::BAD_REQUEST, "too-deeply-nested".into()));
        assert_eq!(refusal(nested(1000)).await, (StatusCode::BAD_REQUEST, "too-deeply-nested".into()));
        assert_eq!(refusal(Bytes::from_static(b"{\"a\": }")).await, (StatusCode::BAD_REQUEST, "malformed-json".into()));
    }
}
