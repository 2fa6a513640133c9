//! The gateway: one hyper server for every `from: http` route. Routes are looked up per
//! request in an atomically swapped index, so a reload never pauses serving.

mod endpoints;
mod handler;
pub mod problem;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::bus::EmbeddedBus;
use crate::route::RouteTable;
use crate::store::Store;
pub use endpoints::Endpoints;

/// What every request handler shares.
pub struct State {
    pub endpoints: ArcSwap<Endpoints>,
    pub store: Store,
    pub bus: EmbeddedBus,
}

impl State {
    pub fn new(table: &RouteTable, store: Store, bus: EmbeddedBus) -> Self {
        Self { endpoints: ArcSwap::from_pointee(Endpoints::new(table)), store, bus }
    }
}

/// Binds the gateway's listener (so a taken port fails start-up, not later).
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until `shutdown` turns true; then stops accepting and lets open requests finish.
pub async fn serve(listener: TcpListener, state: Arc<State>, mut shutdown: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
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
            async move { Ok::<_, std::convert::Infallible>(handler::handle(state, req).await) }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
