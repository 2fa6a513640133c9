//! The gateway's counters for one route: answers by exact status, rate-limited and shed
//! requests. Statuses are few per route, so each gets its counter on first use and keeps it.

use std::sync::{PoisonError, RwLock};

use metrics::{Counter, counter};

pub(super) const REQUESTS: &str = "junction_gateway_requests_total";
pub(super) const RATE_LIMITED: &str = "junction_gateway_rate_limited_total";
pub(super) const SHED: &str = "junction_gateway_shed_total";

/// The route label of answers no route matched (404, 405).
const UNMATCHED: &str = "none";

pub struct GatewayMetrics {
    route: String,
    statuses: RwLock<Vec<(u16, Counter)>>,
    /// Answered 429 by the route's rate limit.
    pub rate_limited: Counter,
    /// Answered 503 because the route had no permit left (`max_in_flight`).
    pub shed: Counter,
}

impl GatewayMetrics {
    pub fn new(route: &str) -> Self {
        Self {
            route: route.to_owned(),
            statuses: RwLock::new(Vec::new()),
            rate_limited: counter!(RATE_LIMITED, "route" => route.to_owned()),
            shed: counter!(SHED, "route" => route.to_owned()),
        }
    }

    /// For answers no route matched.
    pub fn unmatched() -> Self {
        Self::new(UNMATCHED)
    }

    /// Counts one answer with `status`.
    pub fn answered(&self, status: http::StatusCode) {
        let code = status.as_u16();
        if bump(&self.statuses.read().unwrap_or_else(PoisonError::into_inner), code) {
            return;
        }
        let mut statuses = self.statuses.write().unwrap_or_else(PoisonError::into_inner);
        // Another request may have registered it between the two locks.
        if !bump(&statuses, code) {
            let c = counter!(REQUESTS, "route" => self.route.clone(), "status" => code.to_string());
            c.increment(1);
            statuses.push((code, c));
        }
    }

    #[cfg(test)]
    pub(super) fn cached_statuses(&self) -> usize {
        self.statuses.read().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// Increments the counter of `code` if it has one already.
fn bump(statuses: &[(u16, Counter)], code: u16) -> bool {
    statuses.iter().find(|(s, _)| *s == code).map(|(_, c)| c.increment(1)).is_some()
}
