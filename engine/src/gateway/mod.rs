//! The gateway: one hyper server for every `from: http` route. Routes are looked up per
//! request in an atomically swapped index, so a reload never pauses serving.
//!
//! Each endpoint is a tower stack built once per route table, with only the layers its route
//! asks for: [`audit`] → [`authenticate`] → [`rate_limit`] → the route itself ([`handler`]).

mod audit;
pub mod auth;
mod authenticate;
pub mod cors;
mod endpoints;
mod form;
pub(crate) mod handler;
pub mod mount;
pub mod openapi;
pub mod problem;
mod rate_limit;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::util::BoxCloneSyncService;

use crate::cache::Cache;
use crate::connector::Bus;
pub use crate::connector::HttpApi;
use crate::route::RouteTable;
use crate::store::Store;
pub use audit::{AuditMode, AuditSink, outcome};
pub use endpoints::Endpoints;
pub use handler::percent_decode;
pub use mount::{Mount, MountedAt};

/// A request as the endpoint stacks see it: the body as it arrived, or already read (a
/// signature check needs the raw body first).
pub type GatewayRequest = Request<Either<Incoming, Full<Bytes>>>;
pub type GatewayResponse = Response<Full<Bytes>>;
/// One endpoint's stack of layers over its route.
pub type EndpointService = BoxCloneSyncService<GatewayRequest, GatewayResponse, Infallible>;

/// What the gateway knows of a request before any layer runs (a request extension).
#[derive(Debug, Clone)]
pub struct RequestCx {
    /// The caller's `X-Request-Id`, or a fresh one.
    pub request_id: Arc<str>,
    /// Whether the id was made here (then the message takes it as its own id).
    pub fresh_id: bool,
    pub peer: SocketAddr,
    /// The path's `{name}` parameters.
    pub params: Vec<(String, String)>,
}

/// One stage of an endpoint's stack: what it does with a request. [`Stage`] makes it a tower
/// `Service`, so every stage is written as one `async fn`.
pub(crate) trait EndpointLayer: Clone + Send + Sync + 'static {
    fn serve(self, req: GatewayRequest) -> impl Future<Output = GatewayResponse> + Send;
}

/// An [`EndpointLayer`] as a tower `Service` (always ready; never fails: problems are answers).
#[derive(Clone)]
pub(crate) struct Stage<L>(pub L);

impl<L: EndpointLayer> tower::Service<GatewayRequest> for Stage<L> {
    type Response = GatewayResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<GatewayResponse, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: GatewayRequest) -> Self::Future {
        let layer = self.0.clone();
        Box::pin(async move { Ok(layer.serve(req).await) })
    }
}

/// What every endpoint shares: where messages and audit records go, and the cache.
pub struct Shared {
    pub store: Store,
    pub bus: Arc<dyn Bus>,
    pub cache: Cache,
    pub audit: AuditSink,
    /// Routes an admin paused: their endpoints answer 503 meanwhile.
    pub paused: crate::runtime::Paused,
}

/// What every request handler shares.
pub struct State {
    pub endpoints: ArcSwap<Endpoints>,
    pub shared: Arc<Shared>,
    /// Answers no route matched (404, 405) are counted under route `none`.
    pub unmatched: crate::telemetry::GatewayMetrics,
}

impl State {
    pub fn new(table: &RouteTable, shared: Arc<Shared>) -> Self {
        Self {
            endpoints: ArcSwap::from_pointee(Endpoints::new(table, &shared)),
            shared,
            unmatched: crate::telemetry::GatewayMetrics::unmatched(),
        }
    }

    /// Serves `table` from the next request on; requests already in flight finish on the old one.
    pub fn swap(&self, table: &RouteTable) {
        self.endpoints.store(Arc::new(Endpoints::new(table, &self.shared)));
    }
}

/// Binds the gateway's listener (so a taken port fails start-up, not later).
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// What bounds the gateway's connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// A connection that sends nothing for this long, or takes longer to send a request's
    /// headers, is closed, so idle and slow clients cannot keep the connections taken.
    pub idle_timeout: std::time::Duration,
}

impl Limits {
    pub fn of(settings: &crate::config::Settings) -> Self {
        Limits { max_connections: settings.max_connections, idle_timeout: settings.idle_timeout }
    }
}

/// Serves until `shutdown` turns true; then stops accepting and lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // HTTP/1: the header timeout also runs while a kept-alive connection waits for its next request.
    builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(limits.idle_timeout);
    let idle = limits.idle_timeout;
    // One permit per open connection: at the limit, new ones wait in the kernel's accept queue.
    let connections =
        Arc::new(tokio::sync::Semaphore::new(limits.max_connections.min(tokio::sync::Semaphore::MAX_PERMITS)));
    loop {
        let slot = tokio::select! {
            slot = connections.clone().acquire_owned() => slot.expect("the connection semaphore is never closed"),
            () = crate::runtime::stopped(&mut shutdown) => break,
        };
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = crate::runtime::stopped(&mut shutdown) => break,
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let service = service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(handler::handle(state, req, peer).await) }
        });
        let Some(tls) = &tls else {
            let (builder, watcher) = (builder.clone(), graceful.watcher());
            tokio::spawn(async move {
                // Until a client's first bytes tell HTTP/1 from HTTP/2, no header timeout runs.
                // (`readable()` may wake without data; a peek waits for a byte or the end.)
                if !matches!(tokio::time::timeout(idle, stream.peek(&mut [0u8; 1])).await, Ok(Ok(1..))) {
                    return tracing::debug!(peer = %peer, "connection sent nothing; closed");
                }
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                if let Err(e) = watcher.watch(conn).await {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                drop(slot);
            });
            continue;
        };
        // The handshake runs in the connection's own task: a slow client cannot hold up accepting.
        let (tls, builder, watcher) = (tls.clone(), builder.clone(), graceful.watcher());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(std::time::Duration::from_secs(10), tls.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(peer = %peer, "TLS handshake timed out"),
            };
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
