//! HTTP APIs a connector serves under a path prefix on the gateway (`api:` in its config),
//! such as MasterDeal's REST and GraphQL. They sit behind the same layers as routes: audit,
//! auth, rate limit; the API itself only sees requests those let through, body already read.

use std::sync::Arc;

use http::{Request, Uri};

use super::auth::Authenticator;
use super::handler::read_body;
use super::{EndpointLayer, GatewayRequest, GatewayResponse, RequestCx};
use crate::connector::HttpApi;
use crate::route::RateLimit;

/// The prefix a request's API is mounted at (a request extension), for links it answers with.
#[derive(Debug, Clone)]
pub struct MountedAt(pub Arc<str>);

/// A connector's API as configured: where it is served and who may call it.
pub struct Mount {
    /// The connector's name: the mount's id in metrics, audit records and logs.
    pub name: Arc<str>,
    /// `/api`: the API serves every path under it (never ending in `/`).
    pub prefix: String,
    pub auth: Option<Arc<Authenticator>>,
    /// The scheme's name as written, or `none`.
    pub auth_name: String,
    pub rate_limit: Option<RateLimit>,
    pub max_body: u64,
    /// Browser origins allowed to call, one entry per method the API serves; empty: none.
    pub cors: Vec<Arc<super::cors::Cors>>,
    pub api: Arc<dyn HttpApi>,
}

impl Mount {
    /// The path relative to the mount, if `path` is under it.
    pub fn relative<'p>(&self, path: &'p str) -> Option<&'p str> {
        let rest = path.strip_prefix(self.prefix.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }
}

/// The innermost service of a mount: reads the body within its limit and hands the request
/// to the API with its path made relative.
#[derive(Clone)]
pub(super) struct MountService {
    pub(super) mount: Arc<Mount>,
}

impl EndpointLayer for MountService {
    async fn serve(self, req: GatewayRequest) -> GatewayResponse {
        let request_id = req.extensions().get::<RequestCx>().map(|cx| cx.request_id.clone()).unwrap_or_default();
        let (mut parts, body) = req.into_parts();
        let body = match read_body(body, self.mount.max_body).await {
            Ok(b) => b,
            Err(p) => return p.into_response(&request_id),
        };
        let relative = self.mount.relative(parts.uri.path()).unwrap_or("/");
        let relative = if relative.is_empty() { "/" } else { relative };
        let path_and_query = match parts.uri.query() {
            Some(q) => format!("{relative}?{q}"),
            None => relative.to_owned(),
        };
        if let Ok(uri) = path_and_query.parse::<Uri>() {
            parts.uri = uri;
        }
        parts.extensions.insert(MountedAt(self.mount.prefix.as_str().into()));
        self.mount.api.handle(Request::from_parts(parts, body)).await
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use bytes::Bytes;

    use super::*;

    struct Nothing;

    #[async_trait]
    impl HttpApi for Nothing {
        async fn handle(&self, _req: Request<Bytes>) -> GatewayResponse {
            GatewayResponse::default()
        }
    }

    fn mount(prefix: &str) -> Mount {
        Mount {
            name: "md".into(),
            prefix: prefix.into(),
            auth: None,
            auth_name: "none".into(),
            rate_limit: None,
            max_body: 1024,
            cors: Vec::new(),
            api: Arc::new(Nothing),
        }
    }

    #[test]
    fn serves_paths_under_the_prefix_only() {
        let m = mount("/api");
        assert_eq!(m.relative("/api/deals/1"), Some("/deals/1"));
        assert_eq!(m.relative("/api"), Some(""));
        assert_eq!(m.relative("/apix/deals"), None, "a prefix is whole path segments");
        assert_eq!(m.relative("/other"), None);
    }
}
