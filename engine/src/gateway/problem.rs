//! RFC 7807 `application/problem+json` answers: a stable `type` per kind of problem, a human
//! `detail`, never a stack trace.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Map, Value, json};

/// The base of every problem `type`; the last segment is stable and documented.
pub const TYPE_BASE: &str = "https://junction.dev/problems/";

/// A problem answer under construction.
pub struct Problem {
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: String,
    extra: Map<String, Value>,
    retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self { status, kind, title, detail: detail.into(), extra: Map::new(), retry_after: None }
    }

    #[must_use]
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    /// Tells the caller when to try again (503, 429).
    #[must_use]
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn into_response(self, request_id: &str) -> Response<Full<Bytes>> {
        let mut body = json!({
            "type": format!("{TYPE_BASE}{}", self.kind),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "request_id": request_id,
        });
        if let Value::Object(m) = &mut body {
            m.extend(self.extra);
        }
        let bytes = serde_json::to_vec(&body).expect("a JSON value always serializes");
        let mut resp = Response::new(Full::new(Bytes::from(bytes)));
        *resp.status_mut() = self.status;
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(s) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

pub fn not_found(path: &str) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "No route serves this path", format!("no route serves {path}"))
}

/// 405 with the `Allow` header RFC 9110 requires (and the same list in the body).
pub fn method_not_allowed(method: &http::Method, allowed: &[http::Method], request_id: &str) -> Response<Full<Bytes>> {
    let list: Vec<&str> = allowed.iter().map(http::Method::as_str).collect();
    let mut resp = Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("{method} is not served here; use {}", list.join(", ")),
    )
    .with("allow", json!(list))
    .into_response(request_id);
    if let Ok(v) = HeaderValue::from_str(&list.join(", ")) {
        resp.headers_mut().insert(header::ALLOW, v);
    }
    resp
}

pub fn overloaded(route: &str) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "Too many requests in flight",
        format!("route {route} is at its in-flight limit; try again shortly"),
    )
    .retry_after(1)
}
