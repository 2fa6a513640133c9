//! Failures a simulator can be told to give, one per request, in order.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// What the next request gets instead of (or on top of) its answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// An answer with this status and a problem body; `retry_after` in seconds when set.
    Status { status: u16, retry_after: Option<u64> },
    /// The real answer, cut in the middle (a connection the proxy dropped).
    Truncate,
    /// The real answer, this many milliseconds late.
    Delay { ms: u64 },
    /// The request is carried out (a document is created) and then answered with this status,
    /// as a server that committed and failed afterwards.
    AfterCommit { status: u16 },
}

impl Fault {
    pub fn status(status: u16) -> Self {
        Fault::Status { status, retry_after: None }
    }

    pub fn too_many_requests(retry_after: Option<u64>) -> Self {
        Fault::Status { status: 429, retry_after }
    }
}

/// The answer a `Status` fault gives.
pub(crate) fn status_answer(status: u16, retry_after: Option<u64>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({
        "title": code.canonical_reason().unwrap_or("Error"),
        "type": format!("https://httpstatus.es/{status}"),
        "status": status,
        "detail": "simulated failure",
    });
    let mut resp = (code, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response();
    if let Some(secs) = retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// `resp` with its body cut in half (the content length stays the whole's, as a dropped
/// connection would leave it; the client sees a short, unparsable body).
async fn truncated(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
    let half = bytes.slice(..bytes.len() / 2);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(half))
}

/// The answer to a request with the next fault, if any, applied.
pub(crate) async fn apply(fault: Option<Fault>, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match fault {
        None => next.run(req).await,
        Some(Fault::Status { status, retry_after }) => status_answer(status, retry_after),
        Some(Fault::Truncate) => truncated(next.run(req).await).await,
        Some(Fault::Delay { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            next.run(req).await
        }
        Some(Fault::AfterCommit { status }) => {
            let _committed = next.run(req).await;
            status_answer(status, None)
        }
    }
}
