//! MasterDeal's HTTP APIs, served on the gateway under the connector's `api: { path }`:
//! REST (`rest`) for every aggregate, and GraphQL (`graphql`) at `<path>/graphql`. The gateway
//! puts them behind the same layers as routes (audit, auth, rate limit), so both APIs have
//! the same callers.

mod cursor;
mod graphql;
mod openapi;
mod rest;
mod wire;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::Request;
use junction_engine::cache::Cache;
use junction_engine::gateway::{GatewayResponse, HttpApi};
use junction_engine::store::Store;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::store;
use wire::ApiError;

/// The APIs of one `masterdeal` connector.
pub struct MasterDealApi {
    /// `None` under `junction check`.
    store: Option<Store>,
    /// Shared with the connector: migrations run once per process.
    migrated: Arc<OnceCell<()>>,
    pub(crate) plans: crate::cache::PlanCache,
}

impl MasterDealApi {
    pub(crate) fn new(store: Option<Store>, migrated: Arc<OnceCell<()>>, cache: Option<Cache>) -> Self {
        Self { store, migrated, plans: crate::cache::PlanCache::new(cache) }
    }

    /// The store, migrated.
    async fn store(&self) -> Result<&Store, ApiError> {
        let store = self.store.as_ref().ok_or_else(|| {
            ApiError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "No store",
                "the masterdeal API needs the engine's store",
            )
        })?;
        self.migrated.get_or_try_init(|| store::migrate(store)).await?;
        Ok(store)
    }
}

#[async_trait]
impl HttpApi for MasterDealApi {
    async fn handle(&self, req: Request<Bytes>) -> GatewayResponse {
        rest::handle(self, req).await
    }

    fn openapi(&self) -> Value {
        openapi::document()
    }
}
