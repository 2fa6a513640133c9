//! An HTTP API a connector serves under a path prefix on the gateway (`api:` in its config),
//! such as MasterDeal's REST and GraphQL.

use async_trait::async_trait;
use bytes::Bytes;
use http::Request;
use serde_json::Value;

/// What an API answers: a whole body, as every gateway answer is.
pub type ApiResponse = http::Response<http_body_util::Full<Bytes>>;

/// An HTTP API served by a connector. Requests arrive with the path relative to the mount
/// (`/deals/42` for `/api/deals/42` mounted at `/api`), after the gateway's layers (audit,
/// auth, rate limit) let them through, with the body already read; the caller's principal
/// and the request's context are request extensions.
#[async_trait]
pub trait HttpApi: Send + Sync + 'static {
    async fn handle(&self, req: Request<Bytes>) -> ApiResponse;

    /// The API's part of the gateway's OpenAPI document: `{"paths": {…}, "schemas": {…}}`,
    /// paths relative to the mount; schemas are referenced as `#/components/schemas/Name`.
    fn openapi(&self) -> Value {
        Value::Null
    }
}
