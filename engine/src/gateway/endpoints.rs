//! The gateway's index of http routes by method and path, each with its stack of layers,
//! built once per route table.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::Method;
use tower::util::BoxCloneSyncService;

use super::audit::Audit;
use super::authenticate::Authenticate;
use super::cors::Cors;
use super::handler::RouteService;
use super::mount::{Mount, MountService};
use super::rate_limit::RateLimited;
use super::{EndpointService, Shared, Stage};
use crate::route::{HttpSource, Route, RouteTable, Source};
use crate::telemetry::GatewayMetrics;

/// An http route and the stack serving it.
#[derive(Clone)]
pub struct Endpoint {
    pub route: Arc<Route>,
    pub service: EndpointService,
    /// Counted per answer; its layers count their own early answers (429, 503) too.
    pub metrics: Arc<GatewayMetrics>,
}

impl Endpoint {
    fn new(route: &Arc<Route>, source: &HttpSource, shared: &Arc<Shared>) -> Self {
        let metrics = Arc::new(GatewayMetrics::new(&route.id));
        let mut service: EndpointService =
            BoxCloneSyncService::new(Stage(RouteService::new(route.clone(), shared.clone(), metrics.shed.clone())));
        // Innermost first: the limit applies to callers auth let in, and audit sees everything.
        if let Some(limit) = source.rate_limit {
            let limited = metrics.rate_limited.clone();
            service = BoxCloneSyncService::new(Stage(RateLimited::new(
                service,
                &route.id,
                limit,
                shared.cache.clone(),
                limited,
            )));
        }
        if let Some(auth) = &source.auth {
            service = BoxCloneSyncService::new(Stage(Authenticate::new(service, auth.clone(), source.max_body)));
        }
        if shared.audit.covers(source.auth.is_some()) {
            let action = format!("{} {}", source.method, source.path);
            service = BoxCloneSyncService::new(Stage(Audit::new(
                service,
                shared.audit.clone(),
                Some(action),
                route.id.clone(),
            )));
        }
        Self { route: route.clone(), service, metrics }
    }

    pub fn source(&self) -> Option<&HttpSource> {
        match &self.route.source {
            Source::Http(h) => Some(h),
            _ => None,
        }
    }
}

/// A connector's API and the stack serving it: the same layers as a route's.
#[derive(Clone)]
pub struct MountEndpoint {
    pub mount: Arc<Mount>,
    pub service: EndpointService,
    pub metrics: Arc<GatewayMetrics>,
}

impl MountEndpoint {
    fn new(mount: &Arc<Mount>, shared: &Arc<Shared>) -> Self {
        let metrics = Arc::new(GatewayMetrics::new(&mount.name));
        let mut service: EndpointService = BoxCloneSyncService::new(Stage(MountService { mount: mount.clone() }));
        if let Some(limit) = mount.rate_limit {
            let limited = metrics.rate_limited.clone();
            service = BoxCloneSyncService::new(Stage(RateLimited::new(
                service,
                &mount.name,
                limit,
                shared.cache.clone(),
                limited,
            )));
        }
        if let Some(auth) = &mount.auth {
            service = BoxCloneSyncService::new(Stage(Authenticate::new(service, auth.clone(), mount.max_body)));
        }
        if shared.audit.covers(mount.auth.is_some()) {
            service =
                BoxCloneSyncService::new(Stage(Audit::new(service, shared.audit.clone(), None, mount.name.clone())));
        }
        Self { mount: mount.clone(), service, metrics }
    }
}

/// Where a request goes.
pub enum Lookup {
    Found {
        endpoint: Endpoint,
        params: Vec<(String, String)>,
    },
    /// The path exists, for other methods.
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

#[derive(Default)]
pub struct Endpoints {
    by_method: HashMap<Method, matchit::Router<Endpoint>>,
    all: Vec<Endpoint>,
    /// Connectors' APIs, longest prefix first; asked when no route matches.
    mounts: Vec<MountEndpoint>,
    /// The OpenAPI document of these endpoints, built on its first request.
    pub(super) openapi: OnceLock<Bytes>,
}

impl Endpoints {
    /// Indexes the table's http routes. Conflicts were rejected when the project loaded.
    pub fn new(table: &RouteTable, shared: &Arc<Shared>) -> Self {
        let mut by_method: HashMap<Method, matchit::Router<Endpoint>> = HashMap::new();
        let mut all = Vec::new();
        for route in table.iter() {
            if let Source::Http(h) = &route.source {
                let endpoint = Endpoint::new(route, h, shared);
                let router = by_method.entry(h.method.clone()).or_default();
                match router.insert(h.path.clone(), endpoint.clone()) {
                    Ok(()) => all.push(endpoint),
                    Err(e) => tracing::error!(route = %route.id, error = %e, "path conflict slipped past validation"),
                }
            }
        }
        let mut mounts: Vec<MountEndpoint> = table.mounts.iter().map(|m| MountEndpoint::new(m, shared)).collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.mount.prefix.len()));
        Self { by_method, all, mounts, openapi: OnceLock::new() }
    }

    /// The connector API serving `path`, when no route does.
    pub fn mount_at(&self, path: &str) -> Option<&MountEndpoint> {
        self.mounts.iter().find(|m| m.mount.relative(path).is_some())
    }

    /// Every connector API.
    pub fn mounts(&self) -> impl Iterator<Item = &Mount> {
        self.mounts.iter().map(|m| &*m.mount)
    }

    pub fn lookup(&self, method: &Method, path: &str) -> Lookup {
        if let Some(router) = self.by_method.get(method)
            && let Ok(m) = router.at(path)
        {
            let params = m.params.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
            return Lookup::Found { endpoint: m.value.clone(), params };
        }
        let mut allowed: Vec<Method> =
            self.by_method.iter().filter(|(_, r)| r.at(path).is_ok()).map(|(m, _)| m.clone()).collect();
        if allowed.is_empty() {
            return Lookup::NotFound;
        }
        allowed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Lookup::MethodNotAllowed(allowed)
    }

    /// The CORS settings of every endpoint on `path` (for a preflight, which names no route).
    pub fn cors_at(&self, path: &str) -> Vec<Arc<Cors>> {
        let mut out: Vec<(&Method, Arc<Cors>)> = self
            .by_method
            .iter()
            .filter_map(|(m, r)| Some((m, r.at(path).ok()?.value.source()?.cors.clone()?)))
            .collect();
        out.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        out.into_iter().map(|(_, c)| c).collect()
    }

    /// Every endpoint (the OpenAPI document, the admin API).
    pub fn iter(&self) -> impl Iterator<Item = &Endpoint> {
        self.all.iter()
    }
}
