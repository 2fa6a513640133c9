//! The gateway's index of http routes by method and path, built once per route table.

use std::collections::HashMap;
use std::sync::Arc;

use http::Method;

use crate::route::{Route, RouteTable, Source};

/// Where a request goes.
pub enum Lookup {
    Found {
        route: Arc<Route>,
        params: Vec<(String, String)>,
    },
    /// The path exists, for other methods.
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

#[derive(Default)]
pub struct Endpoints {
    by_method: HashMap<Method, matchit::Router<Arc<Route>>>,
}

impl Endpoints {
    /// Indexes the table's http routes. Conflicts were rejected when the project loaded.
    pub fn new(table: &RouteTable) -> Self {
        let mut by_method: HashMap<Method, matchit::Router<Arc<Route>>> = HashMap::new();
        for route in table.iter() {
            if let Source::Http(h) = &route.source {
                let router = by_method.entry(h.method.clone()).or_default();
                if let Err(e) = router.insert(h.path.clone(), route.clone()) {
                    tracing::error!(route = %route.id, error = %e, "path conflict slipped past validation");
                }
            }
        }
        Self { by_method }
    }

    pub fn lookup(&self, method: &Method, path: &str) -> Lookup {
        if let Some(router) = self.by_method.get(method)
            && let Ok(m) = router.at(path)
        {
            let params = m.params.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
            return Lookup::Found { route: m.value.clone(), params };
        }
        let mut allowed: Vec<Method> =
            self.by_method.iter().filter(|(_, r)| r.at(path).is_ok()).map(|(m, _)| m.clone()).collect();
        if allowed.is_empty() {
            return Lookup::NotFound;
        }
        allowed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Lookup::MethodNotAllowed(allowed)
    }
}
