//! A running project: the store opened, sources started, the gateway serving; reloads that
//! swap routes without losing a message; and a clean stop that lets in-flight messages finish.

pub mod connectors;
pub mod control;
pub mod deliver;
pub mod detach;
mod project_files;
mod reload;
pub mod replay;
pub(crate) mod tasks;
#[cfg(test)]
mod tests;
mod watch_files;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::bus::EmbeddedBus;
use crate::cache::Cache;
use crate::config::error::Diagnostics;
use crate::config::{Loader, Project, Settings};
use crate::connector::{Bus, ConnectorError, Registry, Resources, StartCx};
use crate::gateway;
use crate::route::{Route, RouteTable};
use crate::script::{ScriptEngine, ScriptLimits};
use crate::sources::{self, SourceCx};
use crate::store::{Store, StoreError};
pub use control::Paused;
pub use project_files::{FileChange, ProjectFiles};
pub use reload::{ReloadError, ReloadReport};

/// Why a project could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(Diagnostics),
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot open the cache: {0}")]
    Cache(crate::cache::CacheError),
    // Not a `#[source]`: the message holds the TLS error already, and `junction run` prints
    // the chain of sources (`{:#}`), which would repeat it.
    #[error("cannot set up TLS: {0}")]
    Tls(gateway::tls::TlsError),
    #[error("cannot listen on {addr}: {source} (is another process using the port? set JUNCTION_LISTEN)")]
    Bind { addr: String, source: std::io::Error },
    #[error("a connector cannot start: {0}")]
    Connector(#[from] ConnectorError),
}

pub use crate::connector::{slept, stopped};

/// A started project. Cheap to clone: every clone is the same running project.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    loader: Loader,
    settings: Settings,
    addr: SocketAddr,
    store: Store,
    /// The project's bus, whatever its backend.
    bus: Arc<dyn Bus>,
    cache: Cache,
    paused: Paused,
    /// This process among the instances sharing the store: it names the leases it holds.
    instance: Arc<str>,
    /// The started connectors; held while a reload or stop changes them (after `live`).
    connectors: Mutex<connectors::Started>,
    gateway_state: Arc<gateway::State>,
    /// The table being served, for readers (admin API).
    table: ArcSwap<RouteTable>,
    /// The routes' running sources; held while a reload or stop changes them.
    live: Mutex<BTreeMap<Arc<str>, Running>>,
    stop: watch::Sender<bool>,
    gateway: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// The hash of junction.yaml (without its connectors) the running routes were built from.
    root_version: std::sync::Mutex<String>,
    provenance: Arc<crate::provenance::Provenance>,
    /// The project's files as read just before the running routes were loaded from them, for
    /// a reload's diff and ETag.
    applied: std::sync::Mutex<ProjectFiles>,
}

/// One route version and the tasks feeding it.
struct Running {
    route: Arc<Route>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Runtime {
    /// Loads `dir`, opens its store, starts every route's source and the gateway.
    pub async fn start(dir: &Path, registry: Registry, env: HashMap<String, String>) -> Result<Self, StartError> {
        let scripts = Arc::new(ScriptEngine::new(&ScriptLimits::default()));
        // A first, pure load validates everything and tells where the store is.
        let mut loader = Loader { registry, resources: Resources::default(), env, scripts, intercept: None };
        let settings = loader.load(dir).map_err(StartError::Config)?.settings;
        if let Some(t) = &settings.tracing {
            crate::telemetry::otlp::install(&t.endpoint, &t.service_name);
        }
        let store = Store::open(&settings.store).await?;
        let cache = Cache::open(&settings.cache).await.map_err(StartError::Cache)?;
        let audit = gateway::AuditSink::start(store.clone(), settings.audit_mode, settings.audit_retention);
        let provenance =
            crate::provenance::Provenance::start(store.clone(), crate::redact::Redact::new(&settings.redact));
        loader.resources = Resources {
            store: Some(store.clone()),
            cache: Some(cache.clone()),
            audit: Some(audit.clone()),
            provenance: Some(provenance.clone()),
            ..Resources::default()
        };
        let files = ProjectFiles::read(dir);
        let project: Project = loader.load(dir).map_err(StartError::Config)?;
        let bus = project.connectors.get("bus").and_then(|c| c.bus()).ok_or_else(no_bus)?;
        let instance: Arc<str> = uuid::Uuid::now_v7().to_string().into();
        let mut started = connectors::Started::default();
        let start_cx = StartCx { store: store.clone(), cache: cache.clone(), bus: bus.clone() };
        started.adopt(&project, &start_cx, &instance).await?;

        let listener = gateway::bind(&settings.listen)
            .await
            .map_err(|source| StartError::Bind { addr: settings.listen.clone(), source })?;
        let addr =
            listener.local_addr().map_err(|source| StartError::Bind { addr: settings.listen.clone(), source })?;
        let paused = Paused::load(store.clone()).await?;
        let shared = Arc::new(gateway::Shared {
            store: store.clone(),
            bus: bus.clone(),
            cache: cache.clone(),
            audit,
            paused: paused.clone(),
        });
        let gateway_state = Arc::new(gateway::State::new(&project.routes, shared));
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(paused.clone().follow(stop_rx.clone()));
        let runtime = Self {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                loader,
                settings: project.settings.clone(),
                addr,
                store,
                bus,
                cache,
                paused,
                instance,
                connectors: Mutex::new(started),
                gateway_state: gateway_state.clone(),
                table: ArcSwap::from_pointee(project.routes.clone()),
                live: Mutex::new(BTreeMap::new()),
                stop,
                gateway: std::sync::Mutex::new(None),
                root_version: std::sync::Mutex::new(project.root_version.clone()),
                applied: std::sync::Mutex::new(files),
                provenance,
            }),
        };
        {
            let mut live = runtime.inner.live.lock().await;
            for route in project.routes.iter() {
                live.insert(route.id.clone(), runtime.launch(route));
            }
        }
        tokio::spawn(warn_of_orphans(runtime.inner.store.clone(), runtime.settings().embedded_bus(), runtime.routes()));
        tokio::spawn(publish_counts(runtime.clone(), stop_rx.clone()));
        let tls = match &settings.tls {
            Some((cert, key)) => Some(gateway::tls::acceptor(cert, key).map_err(StartError::Tls)?),
            None => None,
        };
        let handle =
            tokio::spawn(gateway::serve(listener, gateway_state, tls, gateway::Limits::of(&settings), stop_rx));
        *runtime.inner.gateway.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(handle);
        if project.settings.watch {
            watch_files::spawn(runtime.clone());
        }
        tracing::info!(listen = %addr, routes = project.routes.routes.len(), bus = runtime.inner.bus.describe(), "junction is running");
        Ok(runtime)
    }

    /// Starts the tasks feeding one route version.
    fn launch(&self, route: &Arc<Route>) -> Running {
        let (stop, stop_rx) = watch::channel(false);
        let cx = SourceCx {
            store: self.inner.store.clone(),
            stop: stop_rx,
            stopping: self.inner.stop.subscribe(),
            paused: self.inner.paused.clone(),
            instance: self.inner.instance.clone(),
        };
        tracing::info!(route = %route.id, version = %route.version, "route started");
        Running { route: route.clone(), stop, tasks: sources::start(route, &cx) }
    }

    /// The gateway's bound address (useful when listening on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The routes being served now.
    pub fn routes(&self) -> Arc<RouteTable> {
        self.inner.table.load_full()
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The project's bus.
    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.inner.bus
    }

    /// This process's id among the instances sharing the store.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn paused(&self) -> &Paused {
        &self.inner.paused
    }

    pub fn project_dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Runs `msg` through route `route` of the project on disk with every connector replaced
    /// by a recorder (as `junction test` does): what it would output, send, or where it fails.
    pub async fn dry_run(
        &self,
        route: &str,
        msg: crate::message::Message,
    ) -> Result<crate::testing::DryRun, crate::testing::DryRunError> {
        crate::testing::dry_run(&self.inner.loader, &self.inner.dir, route, msg).await
    }

    /// The script engine the project's transforms run on (the console's playground uses it).
    pub fn scripts(&self) -> &Arc<crate::script::ScriptEngine> {
        &self.inner.loader.scripts
    }

    /// What routes record of their messages' steps, and the keys being watched.
    pub fn provenance(&self) -> &Arc<crate::provenance::Provenance> {
        &self.inner.provenance
    }

    /// Records an audit entry (admin calls; the gateway's layer records requests).
    pub async fn audit(&self, entry: crate::store::AuditEntry) {
        self.inner.gateway_state.shared.audit.record(entry).await;
    }

    /// Stops taking new messages, waits (up to the shutdown timeout) for those in flight to
    /// finish and be acked.
    pub async fn shutdown(self) {
        let _ = self.inner.stop.send(true);
        let timeout = self.inner.settings.shutdown_timeout;
        let mut live = self.inner.live.lock().await;
        let running: Vec<Running> = std::mem::take(&mut *live).into_values().collect();
        let aborts: Vec<_> = running.iter().flat_map(|r| r.tasks.iter().map(JoinHandle::abort_handle)).collect();
        let gateway = self.inner.gateway.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        for r in &running {
            let _ = r.stop.send(true);
        }
        let connectors = self.inner.connectors.lock().await.take_all();
        // Each stage is logged, so that a stop that takes long says what it waited for.
        let started = std::time::Instant::now();
        let drain = async {
            if let Some(g) = gateway {
                let _ = g.await;
                tracing::info!(
                    after_ms = started.elapsed().as_millis() as u64,
                    "stopping: the gateway has answered its requests"
                );
            }
            for r in running {
                let (id, before) = (r.route.id.clone(), std::time::Instant::now());
                stop_running(r).await;
                if before.elapsed() > Duration::from_secs(1) {
                    tracing::warn!(route = %id, took_ms = before.elapsed().as_millis() as u64, "stopping: this route took long to stop");
                }
            }
            tracing::info!(after_ms = started.elapsed().as_millis() as u64, "stopping: every route has stopped");
            // Nothing uses the connectors now: they flush what they hold, the bus last.
            for c in connectors {
                c.stop().await;
            }
            tracing::info!(after_ms = started.elapsed().as_millis() as u64, "stopping: the connectors have flushed");
        };
        if tokio::time::timeout(timeout, drain).await.is_err() {
            tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                "in-flight messages did not finish in time; unacked ones will be redelivered"
            );
            aborts.iter().for_each(tokio::task::AbortHandle::abort);
        }
        // The audit of the last requests, and their spans, go out before the process does.
        self.inner.gateway_state.shared.audit.flush(Duration::from_secs(5)).await;
        crate::telemetry::otlp::flush(Duration::from_secs(5)).await;
        tracing::info!("junction stopped");
    }
}

/// Stops one route version's sources and waits for its messages in flight.
async fn stop_running(r: Running) {
    let _ = r.stop.send(true);
    for task in r.tasks {
        let _ = task.await;
    }
    drained(&r.route.permits, r.route.max_in_flight).await;
}

/// Waits until all `n` permits are back, without taking them: a request that found this
/// version just before a reload swapped it out still gets a permit and runs. (Acquiring them
/// all would hand the free ones to the waiting drain, and that request would be turned away
/// with 503 `overloaded` by a route that is nowhere near its limit.)
async fn drained(permits: &tokio::sync::Semaphore, n: usize) {
    while permits.available_permits() < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// How long a stop or a reload waits for old versions to drain before giving up on them.
fn drain_timeout(settings: &Settings) -> Duration {
    settings.shutdown_timeout
}

/// Warns of what the store keeps for routes that are no longer loaded: consumer groups of the
/// embedded bus no route reads (they hold back their topic's retention and count against its
/// backlog bound), and aggregate groups no route's aggregate takes (they wait there, undelivered).
/// How often an instance writes its route counters to the store (for every console).
pub const COUNTS_EVERY: Duration = Duration::from_secs(5);

/// Writes this instance's route counters to the store every [`COUNTS_EVERY`] until the stop,
/// so that each instance's console can show every instance's (a failure is only logged).
async fn publish_counts(runtime: Runtime, mut stop: watch::Receiver<bool>) {
    loop {
        let counts: Vec<crate::store::InstanceCounts> = runtime
            .routes()
            .iter()
            .map(|r| {
                let c = r.counters.snapshot();
                let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                crate::store::InstanceCounts {
                    instance: runtime.instance().to_owned(),
                    route: r.id.to_string(),
                    received: n(c.received),
                    completed: n(c.completed),
                    dead_lettered: n(c.dead_lettered),
                    in_flight: i64::try_from(r.in_flight()).unwrap_or(i64::MAX),
                    updated_at: chrono::Utc::now(),
                }
            })
            .collect();
        let store = runtime.store();
        let gone = chrono::Utc::now() - chrono::Duration::minutes(10);
        if let Err(e) = store.put_instance_counts(&counts).await.and(store.forget_instance_counts(gone).await.map(drop))
        {
            tracing::debug!(error = %e, "this instance's counters could not be written for the console");
        }
        if !slept(COUNTS_EVERY, &mut stop).await {
            return;
        }
    }
}

async fn warn_of_orphans(store: Store, embedded_bus: bool, routes: Arc<RouteTable>) {
    let read: std::collections::HashSet<(String, String)> = routes.iter().flat_map(|r| sources::consumes(r)).collect();
    let groups = if embedded_bus { EmbeddedBus::new(store.clone()).groups().await } else { Ok(Vec::new()) };
    match groups {
        Ok(groups) => {
            for g in groups {
                if !read.contains(&(g.topic.clone(), g.group.clone())) {
                    tracing::warn!(
                        topic = g.topic,
                        group = g.group,
                        backlog = g.backlog,
                        "no loaded route reads this consumer group: the topic keeps what it has not \
                         processed, and that counts against bus_max_backlog; if it is gone for good, \
                         `junction bus forget-group` it"
                    );
                }
            }
        }
        Err(error) => tracing::warn!(%error, "cannot look for consumer groups no route reads"),
    }
    let live: std::collections::HashSet<(&str, &str)> = routes
        .iter()
        .flat_map(|r| r.pipeline.steps.iter())
        .filter_map(|e| e.step.timed()?.kept())
        .map(|at| (at.route.as_str(), at.step.as_str()))
        .collect();
    match store.aggregate_holders().await {
        Ok(held) => {
            for (at, messages) in held {
                if !live.contains(&(at.route.as_str(), at.step.as_str())) {
                    tracing::warn!(
                        route = at.route,
                        step = at.step,
                        messages,
                        "the store holds aggregated messages no loaded route takes: they wait there \
                         until a route with this aggregate is loaded again"
                    );
                }
            }
        }
        Err(error) => tracing::warn!(%error, "cannot look for aggregate groups no route holds"),
    }
}

/// A project that validated always has a bus; this is for the impossible case.
fn no_bus() -> StartError {
    StartError::Connector(ConnectorError::permanent("the project has no bus connector"))
}
