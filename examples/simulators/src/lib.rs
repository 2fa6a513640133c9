//! Simulators of the outside systems Junction's adapters speak to. Each serves the vendor's
//! API shapes (paths, bodies, status codes, auth) on a local port, keeps its state in memory,
//! and can be told to fail the way the real one does (a 503, a 429 with or without
//! `Retry-After`, a truncated body, a slow reply, a revoked token).
//!
//! Tests start one in process ([`amocrm::Amocrm::start`]) and poke its state directly; the
//! `junction-simulators` binary serves them for the offline demo, with a control API under
//! `/_sim/`.

pub mod amocrm;
pub mod clickhouse;
pub mod demo;
pub mod direct;
mod faults;
pub mod onec;
pub mod openai;
pub mod outside;
pub mod vk;

pub use faults::Fault;

/// Serves `app` on `listen` in the background; the address it listens on. `name` says which
/// simulator stopped, should it.
pub(crate) async fn serve(
    listen: &str,
    app: axum::Router,
    name: &'static str,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the {name} simulator stopped");
        }
    });
    Ok(addr)
}
