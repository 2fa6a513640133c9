//! The admin API: its own listener (keep it private), a bearer token on every `/admin` call,
//! and every call recorded in the audit log. `/healthz`, `/readyz` and `/metrics` are open,
//! for probes and scrapers. The console (`/console`) is served on the same listener.

mod api;
mod console;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use crate::runtime::Runtime;
use crate::store::AuditEntry;

/// What the admin listener answers with: whole bodies, or the console's event streams.
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// A started admin API.
pub struct Admin {
    pub addr: SocketAddr,
}

/// Binds `listen` and serves the admin API for `runtime` until the process ends.
pub async fn start(runtime: Runtime, settings: &crate::config::AdminSettings) -> std::io::Result<Admin> {
    let listener = TcpListener::bind(&settings.listen).await?;
    let addr = listener.local_addr()?;
    // Only the token's hash is kept, and presented tokens are compared by hash.
    let token: Arc<[u8; 32]> = Arc::new(Sha256::digest(settings.token.as_bytes()).into());
    let console = Arc::new(console::Console::start(&runtime, settings, *token));
    tokio::spawn(async move {
        let builder = auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((stream, peer)) = listener.accept().await else { continue };
            let (runtime, token, console) = (runtime.clone(), token.clone(), console.clone());
            let service = service_fn(move |req: Request<Incoming>| {
                let (runtime, token, console) = (runtime.clone(), token.clone(), console.clone());
                async move {
                    if req.uri().path() == "/console" || req.uri().path().starts_with("/console/") {
                        return Ok::<_, Infallible>(console.handle(&runtime, req, peer.ip()).await);
                    }
                    Ok::<_, Infallible>(handle(&runtime, &token, req).await)
                }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    Ok(Admin { addr })
}

/// What a handler answers, and what the audit records of it.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Value,
    /// The route or dead letter acted on.
    pub target: Option<String>,
    /// An entity tag to send (a reload's version of the project's files).
    pub etag: Option<String>,
}

impl Answer {
    pub(crate) fn ok(body: Value) -> Self {
        Self { status: StatusCode::OK, body, target: None, etag: None }
    }

    pub(crate) fn problem(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        let detail = detail.into();
        Self {
            status,
            body: json!({ "type": format!("{}{kind}", crate::gateway::problem::TYPE_BASE), "title": title, "status": status.as_u16(), "detail": detail }),
            target: None,
            etag: None,
        }
    }

    pub(crate) fn on(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }
}

/// Records an admin action in the audit log: who (`actor`, proved by `actor_kind`), what
/// (`action`), on what and how it ended (from `answer`).
pub(crate) async fn audit(
    runtime: &Runtime,
    actor: &str,
    actor_kind: &str,
    action: String,
    answer: &Answer,
    request_id: &str,
) {
    runtime
        .audit(AuditEntry {
            actor: actor.into(),
            actor_kind: actor_kind.into(),
            action,
            target: answer.target.clone(),
            outcome: crate::gateway::outcome(answer.status.as_u16()).into(),
            status: Some(answer.status.as_u16()),
            request_id: Some(request_id.to_owned()),
            detail: None,
        })
        .await;
}

/// The caller's `x-request-id`, or a new one.
pub(crate) fn request_id<B>(req: &Request<B>) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

async fn handle(runtime: &Runtime, token: &[u8; 32], req: Request<Incoming>) -> Response<Body> {
    let request_id = request_id(&req);
    let path = req.uri().path().to_owned();
    match (req.method().as_str(), path.as_str()) {
        ("GET", "/healthz") => return json_response(StatusCode::OK, &json!({ "status": "ok" })),
        ("GET", "/readyz") => {
            let (status, body) = api::readiness(runtime).await;
            return json_response(status, &body);
        }
        ("GET", "/metrics") => {
            let mut resp = Response::new(full(crate::telemetry::render()));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; version=0.0.4"));
            return resp;
        }
        _ => {}
    }
    let action = format!("{} {}", req.method(), path);
    let authorized = bearer(&req).is_some_and(|t| <[u8; 32]>::from(Sha256::digest(t.as_bytes())) == *token);
    let answer = if authorized {
        let (parts, body) = req.into_parts();
        match Limited::new(body, 1 << 20).collect().await {
            Ok(body) => api::route(runtime, &parts, &body.to_bytes()).await,
            Err(_) => Answer::problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
                "at most 1 MiB",
            ),
        }
    } else {
        Answer::problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Admin token required",
            "send `Authorization: Bearer <admin token>`",
        )
    };
    let (actor, kind) = if authorized { ("admin", "admin_token") } else { ("anonymous", "none") };
    audit(runtime, actor, kind, action, &answer, &request_id).await;
    let mut resp = json_response(answer.status, &answer.body);
    if let Some(tag) = answer.etag.as_deref().and_then(|t| http::HeaderValue::from_str(t).ok()) {
        resp.headers_mut().insert(header::ETAG, tag);
    }

    if answer.status.is_client_error() || answer.status.is_server_error() {
        resp.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/problem+json"));
    }
    if answer.status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
    }
    if let Ok(v) = http::HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

fn bearer<B>(req: &Request<B>) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec_pretty(value).expect("a JSON value always serializes");
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    resp
}
