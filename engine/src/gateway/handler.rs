//! One HTTP request: find its route, read and check the body, run the route, answer.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Map, Value, json};

use super::State;
use super::endpoints::Lookup;
use super::problem::{self, Problem};
use crate::message::{Body, Message};
use crate::route::{HttpSource, Route, Source};
use crate::runtime::deliver::{Delivered, deliver_with};
use crate::steps::ErrorKind;

const REQUEST_ID: &str = "x-request-id";

pub(super) async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let given = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty() && v.len() <= 200);
    // A request without an id gets a fresh one, which its message then takes as its own id.
    let (request_id, fresh) = match given {
        Some(v) => (v.to_owned(), false),
        None => (uuid::Uuid::now_v7().to_string(), true),
    };
    let mut resp = route_request(&state, req, &request_id, fresh).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

async fn route_request(state: &State, req: Request<Incoming>, request_id: &str, fresh: bool) -> Response<Full<Bytes>> {
    let endpoints = state.endpoints.load();
    let (route, params) = match endpoints.lookup(req.method(), req.uri().path()) {
        Lookup::Found { route, params } => (route, params),
        Lookup::MethodNotAllowed(allowed) => {
            let mut resp = problem::method_not_allowed(req.method(), &allowed).into_response(request_id);
            let list: Vec<&str> = allowed.iter().map(http::Method::as_str).collect();
            if let Ok(v) = HeaderValue::from_str(&list.join(", ")) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
            return resp;
        }
        Lookup::NotFound => return problem::not_found(req.uri().path()).into_response(request_id),
    };
    drop(endpoints);
    let Source::Http(source) = &route.source else {
        return problem::not_found(req.uri().path()).into_response(request_id);
    };
    // A request/reply run holds a route permit while it runs; an async accept only stores the
    // message (the durable queue is the buffer) and its consumer takes the permits.
    let _permit = if source.is_async {
        None
    } else {
        match route.permits.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => return problem::overloaded(&route.id).into_response(request_id),
        }
    };
    match accept(state, &route, source, req, params, request_id, fresh).await {
        Ok(resp) | Err(resp) => resp,
    }
}

/// Reads the request into a message and runs it; `Err` is an early problem answer.
async fn accept(
    state: &State,
    route: &Arc<Route>,
    source: &HttpSource,
    req: Request<Incoming>,
    params: Vec<(String, String)>,
    request_id: &str,
    fresh: bool,
) -> Result<Response<Full<Bytes>>, Response<Full<Bytes>>> {
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
    let msg = message(&parts, body, params.clone(), request_id, fresh.then(|| request_id.to_owned()));
    if source.is_async {
        return Ok(enqueue(state, route, &msg, request_id).await);
    }
    // Should the route fail, the original is read again from the request rather than copied
    // up front: most requests never need it.
    let (id, request) = (msg.id.clone(), request_id.to_owned());
    let rebuild = move || {
        let body = parse_body(&parts.headers, bytes, expects_json).unwrap_or_else(|_| Body::Json(Value::Null));
        message(&parts, body, params, &request, Some(id))
    };
    let run = tokio::time::timeout(source.timeout, deliver_with(route, 0, msg, rebuild, &state.store)).await;
    Ok(match run {
        Ok(Ok(Delivered::Done(out))) => reply(out),
        Ok(Ok(Delivered::DeadLettered { failure, dead_letter_id })) => {
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
            };
            let mut p = Problem::new(status, kind, title, failure.error.message.clone())
                .with("route", json!(&*route.id))
                .with("step", json!(failure.step))
                .with("dead_letter_id", json!(dead_letter_id));
            if status == StatusCode::SERVICE_UNAVAILABLE {
                p = p.retry_after(failure.error.retry_after.map_or(5, |d| d.as_secs().max(1)));
            }
            p.into_response(request_id)
        }
        Ok(Err(e)) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            "The store is unavailable",
            e.to_string(),
        )
        .retry_after(5)
        .into_response(request_id),
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "The route took too long",
            format!("no answer within {} ms", source.timeout.as_millis()),
        )
        .retry_after(1)
        .into_response(request_id),
    })
}

async fn read_body(body: Incoming, limit: u64) -> Result<Bytes, Box<Problem>> {
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
    request_id: &str,
    id: Option<String>,
) -> Message {
    let mut msg = Message::new(body);
    if let Some(id) = id {
        msg.id = id;
    }
    msg.headers = request_headers(&parts.headers);
    msg.meta.source = source_meta(parts, params, request_id);
    msg
}

/// JSON when the request says JSON, says nothing, or the route has a schema (then bad JSON is
/// a 400); for other content types JSON if it parses, raw bytes otherwise.
fn parse_body(headers: &HeaderMap, bytes: Bytes, expects_json: bool) -> Result<Body, Box<Problem>> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let is_json = expects_json || content_type.is_empty() || content_type.contains("json");
    if !is_json {
        return Ok(Body::from_bytes_lenient(bytes));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Body::Json(Value::Null));
    }
    serde_json::from_slice(&bytes).map(Body::Json).map_err(|e| {
        Box::new(
            Problem::new(StatusCode::BAD_REQUEST, "malformed-json", "Request body is not valid JSON", format!("{e}"))
                .with("line", json!(e.line()))
                .with("column", json!(e.column())),
        )
    })
}

/// Request headers as message headers, without credentials (they must never reach a log or
/// a downstream system by accident).
fn request_headers(headers: &HeaderMap) -> Map<String, Value> {
    headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "authorization" | "cookie" | "proxy-authorization"))
        .filter_map(|(name, v)| v.to_str().ok().map(|v| (name.as_str().to_owned(), Value::String(v.to_owned()))))
        .collect()
}

fn source_meta(parts: &http::request::Parts, params: Vec<(String, String)>, request_id: &str) -> Map<String, Value> {
    let query: Map<String, Value> = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), Value::String(v.to_owned()))
        })
        .collect();
    let mut m = Map::new();
    m.insert("method".into(), Value::String(parts.method.to_string()));
    m.insert("path".into(), Value::String(parts.uri.path().to_owned()));
    m.insert("params".into(), Value::Object(params.into_iter().map(|(k, v)| (k, Value::String(v))).collect()));
    m.insert("query".into(), Value::Object(query));
    m.insert("request_id".into(), Value::String(request_id.to_owned()));
    m
}

/// `async: true`: the message is stored on the route's own topic, then acknowledged.
async fn enqueue(state: &State, route: &Route, msg: &Message, request_id: &str) -> Response<Full<Bytes>> {
    match state.bus.publish(&crate::sources::http_topic(&route.id), msg).await {
        Ok(_) => json_response(StatusCode::ACCEPTED, &json!({ "id": msg.id, "status": "accepted" })),
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
    let bytes = serde_json::to_vec(value).expect("a JSON value always serializes");
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
