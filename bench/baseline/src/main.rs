//! The hand-written handler the benchmark measures Junction against: the work of the
//! `crm-deal-preview` route (read, validate, map to the master deal, reply) in plain hyper,
//! written the way one would without an engine.
//!
//! Usage: `junction-bench-baseline [ADDR]` (default `127.0.0.1:18081`); POST a CRM deal to
//! any path.

mod date_time;
mod deal;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

const DEFAULT_ADDR: &str = "127.0.0.1:18081";
const BODY_LIMIT: usize = 1024 * 1024;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args().nth(1).as_deref().unwrap_or(DEFAULT_ADDR).parse()?;
    let listener = TcpListener::bind(addr).await?;
    eprintln!("junction-bench-baseline listening on http://{addr}");

    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning on accept.
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Replies are one small write each; Nagle would hold them for the client's ACK.
        if let Err(e) = stream.set_nodelay(true) {
            eprintln!("TCP_NODELAY not set: {e}");
        }
        let builder = builder.clone();
        tokio::spawn(async move {
            // A client hanging up mid-request is routine under load, not worth a log line.
            let _ = builder.serve_connection(TokioIo::new(stream), service_fn(handle)).await;
        });
    }
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::POST {
        return Ok(error(StatusCode::METHOD_NOT_ALLOWED, "only POST is served"));
    }
    let body = match Limited::new(req.into_body(), BODY_LIMIT).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return Ok(error(StatusCode::PAYLOAD_TOO_LARGE, "the body is over 1 MiB"));
        }
        Err(_) => return Ok(error(StatusCode::BAD_REQUEST, "the body could not be read")),
    };
    Ok(match deal::preview(&body) {
        Ok(json) => reply(StatusCode::OK, json),
        Err(rejection) => error(rejection.status(), &rejection.to_string()),
    })
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "error": message });
    reply(status, body.to_string().into_bytes())
}

fn reply(status: StatusCode, json: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(json)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
