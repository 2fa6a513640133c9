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
        if shared.audit.covers(source) {
            let action = format!("{} {}", source.method, source.path);
            service =
                BoxCloneSyncService::new(Stage(Audit::new(service, shared.audit.clone(), action, route.id.clone())));
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
        Self { by_method, all, openapi: OnceLock::new() }
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
