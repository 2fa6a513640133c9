//! A running project: the store opened, sources started, the gateway serving; and a clean
//! stop that lets in-flight messages finish.

pub mod deliver;
pub mod detach;
pub mod replay;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bus::EmbeddedBus;
use crate::cache::Cache;
use crate::config::error::Diagnostics;
use crate::config::{Loader, Project};
use crate::connector::{Registry, Resources};
use crate::gateway;
use crate::route::RouteTable;
use crate::script::{ScriptEngine, ScriptLimits};
use crate::sources::{self, SourceCx};
use crate::store::{Store, StoreError};

/// Why a project could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(Diagnostics),
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot open the cache: {0}")]
    Cache(crate::cache::CacheError),
    #[error("cannot listen on {addr}: {source} (is another process using the port? set JUNCTION_LISTEN)")]
    Bind { addr: String, source: std::io::Error },
}

/// Resolves once `stop` turns true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// A started project.
pub struct Runtime {
    addr: SocketAddr,
    table: RouteTable,
    store: Store,
    stop: watch::Sender<bool>,
    gateway: JoinHandle<()>,
    sources: Vec<JoinHandle<()>>,
    shutdown_timeout: Duration,
}

impl Runtime {
    /// Loads `dir`, opens its store, starts every route's source and the gateway.
    pub async fn start(dir: &Path, registry: Registry, env: HashMap<String, String>) -> Result<Self, StartError> {
        let scripts = Arc::new(ScriptEngine::new(&ScriptLimits::default()));
        // A first, pure load validates everything and tells where the store is.
        let mut loader = Loader { registry, resources: Resources::default(), env, scripts, intercept: None };
        let settings = loader.load(dir).map_err(StartError::Config)?.settings;
        let store = Store::open(&settings.store).await?;
        let bus = EmbeddedBus::new(store.clone());
        loader.resources = Resources { store: Some(store.clone()), bus: Some(bus.clone()) };
        let project: Project = loader.load(dir).map_err(StartError::Config)?;

        let listener = gateway::bind(&settings.listen)
            .await
            .map_err(|source| StartError::Bind { addr: settings.listen.clone(), source })?;
        let addr =
            listener.local_addr().map_err(|source| StartError::Bind { addr: settings.listen.clone(), source })?;
        let (stop, stop_rx) = watch::channel(false);
        let cx = SourceCx { store: store.clone(), bus: bus.clone(), stop: stop_rx.clone() };
        let sources = project.routes.iter().flat_map(|r| sources::start(r, &cx)).collect();
        let cache = Cache::open(&settings.cache).await.map_err(StartError::Cache)?;
        let audit = gateway::AuditSink::start(store.clone(), settings.audit_mode, settings.audit_retention);
        let shared = Arc::new(gateway::Shared { store: store.clone(), bus, cache, audit });
        let state = Arc::new(gateway::State::new(&project.routes, shared));
        let gateway = tokio::spawn(gateway::serve(listener, state, stop_rx));
        for route in project.routes.iter() {
            tracing::info!(route = %route.id, version = %route.version, "route started");
        }
        tracing::info!(listen = %addr, routes = project.routes.routes.len(), "junction is running");
        Ok(Self {
            addr,
            table: project.routes,
            store,
            stop,
            gateway,
            sources,
            shutdown_timeout: project.settings.shutdown_timeout,
        })
    }

    /// The gateway's bound address (useful when listening on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn routes(&self) -> &RouteTable {
        &self.table
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stops taking new messages, waits (up to the shutdown timeout) for those in flight to
    /// finish and be acked.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let aborts: Vec<_> = self.sources.iter().map(JoinHandle::abort_handle).collect();
        let drain = async {
            let _ = self.gateway.await;
            for task in self.sources {
                let _ = task.await;
            }
            for route in self.table.iter() {
                let n = u32::try_from(route.max_in_flight).unwrap_or(u32::MAX);
                let _ = route.permits.acquire_many(n).await;
            }
        };
        if tokio::time::timeout(self.shutdown_timeout, drain).await.is_err() {
            tracing::warn!(
                timeout_ms = self.shutdown_timeout.as_millis() as u64,
                "in-flight messages did not finish in time; unacked ones will be redelivered"
            );
            aborts.iter().for_each(tokio::task::AbortHandle::abort);
        }
        tracing::info!("junction stopped");
    }
}
