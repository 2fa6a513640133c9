//! MasterDeal's HTTP APIs, served on the gateway under the connector's `api: { path }`:
//! REST (`rest`) for every aggregate, and GraphQL (`graphql`) at `<path>/graphql`. The gateway
//! puts them behind the same layers as routes (audit, auth, rate limit), so both APIs have
//! the same callers.

mod cursor;
mod graphql;
mod openapi;
mod rest;
mod wire;

use async_trait::async_trait;
use bytes::Bytes;
use http::Request;
use junction_engine::cache::Cache;
use junction_engine::gateway::{GatewayResponse, HttpApi};
use junction_engine::store::Store;
use junction_engine::trace;
use serde_json::Value;

use crate::store;
use wire::ApiError;

/// The APIs of one `masterdeal` connector.
pub struct MasterDealApi {
    /// Shared with the connector.
    database: store::Database,
    pub(crate) plans: crate::cache::PlanCache,
}

impl MasterDealApi {
    pub(crate) fn new(database: store::Database, cache: Option<Cache>) -> Self {
        Self { database, plans: crate::cache::PlanCache::new(cache) }
    }

    /// The MasterDeal database, migrated.
    async fn store(&self) -> Result<&Store, ApiError> {
        Ok(self.database.get().await?)
    }
}

#[async_trait]
impl HttpApi for MasterDealApi {
    async fn handle(&self, req: Request<Bytes>) -> GatewayResponse {
        // The events a change writes carry the caller's trace (its `traceparent`), or one of
        // their own: every route they set off runs in it.
        let (trace_id, parent_span_id) = trace::of_request(req.headers());
        store::traced(Some(store::Trace { trace_id, parent_span_id }), rest::handle(self, req)).await
    }

    fn openapi(&self) -> Value {
        openapi::document()
    }
}
