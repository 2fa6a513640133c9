//! The rate-limit layer: a token bucket per client (or per endpoint) in the project's cache,
//! so with `cache: redis://…` the limit holds across instances. Over the limit: 429 with
//! `Retry-After`. Should the cache be unreachable, requests pass (and it is logged): a rate
//! limiter that fails closed would turn a Redis outage into a full outage.

use std::sync::Arc;

use http::StatusCode;
use metrics::Counter;
use tower::ServiceExt;

use super::auth::Principal;
use super::problem::Problem;
use super::{EndpointLayer, EndpointService, GatewayRequest, GatewayResponse, RequestCx};
use crate::cache::{Cache, Decision, Rate};
use crate::route::RateLimit;
use crate::route::spec::LimitPer;

#[derive(Clone)]
pub(super) struct RateLimited {
    inner: EndpointService,
    route: Arc<str>,
    limit: RateLimit,
    cache: Cache,
    /// Counts the 429 answers.
    limited: Counter,
}

impl RateLimited {
    pub(super) fn new(
        inner: EndpointService,
        route: &Arc<str>,
        limit: RateLimit,
        cache: Cache,
        limited: Counter,
    ) -> Self {
        Self { inner, route: route.clone(), limit, cache, limited }
    }

    fn bucket(&self, req: &GatewayRequest) -> String {
        match self.limit.per {
            LimitPer::Endpoint => format!("{}", self.route),
            // The authenticated caller when there is one: many clients may share an IP (NAT),
            // and one client may come from many.
            LimitPer::Client => match (req.extensions().get::<Principal>(), req.extensions().get::<RequestCx>()) {
                (Some(p), _) if p.kind != "none" => format!("{}:{}:{}", self.route, p.kind, p.id),
                (_, Some(cx)) => format!("{}:ip:{}", self.route, cx.peer.ip()),
                _ => format!("{}", self.route),
            },
        }
    }
}

impl EndpointLayer for RateLimited {
    async fn serve(self, req: GatewayRequest) -> GatewayResponse {
        let bucket = self.bucket(&req);
        let (inner, cache, route, limited) =
            (self.inner.clone(), self.cache.clone(), self.route.clone(), self.limited.clone());
        let rate = Rate { per_second: self.limit.per_second, burst: self.limit.burst };

        match cache.take(&bucket, rate).await {
            Ok(Decision::Allowed { .. }) => {}
            Ok(Decision::Limited { retry_after }) => {
                limited.increment(1);
                let request_id =
                    req.extensions().get::<RequestCx>().map(|cx| cx.request_id.clone()).unwrap_or_default();
                let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                return Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    "Too many requests",
                    format!("route {route} allows {} requests per second; try again in {seconds}s", rate.per_second),
                )
                .retry_after(seconds)
                .into_response(&request_id);
            }
            Err(e) => {
                tracing::warn!(route = %route, error = %e, "rate limit not checked: the cache is unreachable")
            }
        }
        let Ok(resp) = inner.oneshot(req).await;
        resp
    }
}
