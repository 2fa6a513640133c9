//! GraphQL at `<mount>/graphql`: queries and mutations over the same store as REST, with the
//! same errors (as `extensions.code`) and the same domain checks on input.
//!
//! # Layout
//!
//! - `query`, `mutation`: the roots.
//! - `types` (deals, plans) and `records` (the rest): the records as GraphQL objects, their
//!   relations resolved lazily.
//! - `inputs`: the input objects and their conversion to the store's `New*` structs, with
//!   `parse` for ids, dates, money and statuses from strings.
//! - `error`: store errors as GraphQL errors with REST's meaning as `extensions.code`.
//!
//! Ids, dates and money travel as strings: money must stay an exact decimal, and strings
//! spare the schema custom scalars that clients would have to learn.

mod error;
mod inputs;
mod mutation;
mod parse;
mod query;
mod records;
#[cfg(test)]
mod tests;
mod types;

use std::sync::LazyLock;

use async_graphql::{EmptySubscription, Schema};
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use junction_engine::gateway::GatewayResponse;
use junction_engine::store::Store;

use super::MasterDealApi;
use super::wire::{ApiError, Req};
use crate::cache::PlanCache;
use mutation::MutationRoot;
use query::QueryRoot;

/// Deep enough for deal → plans → lines/proposals and a few fragments, too shallow for a
/// query that walks relations back and forth to multiply the work of one request.
const MAX_DEPTH: usize = 10;

/// Each field costs 1: a thousand fields is far more than any screen shows, and bounds
/// what a single request (many aliases of a costly field, say) can ask of the database.
const MAX_COMPLEXITY: usize = 1000;

type MasterDealSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// Built once: the schema is the same for every connector, only the request's data differs.
static SCHEMA: LazyLock<MasterDealSchema> = LazyLock::new(|| {
    Schema::build(QueryRoot, MutationRoot, EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
});

/// What resolvers reach through the context: the store and the plan cache of this API.
pub(super) struct Scope {
    pub store: Store,
    pub plans: PlanCache,
}

/// Answers a GraphQL request: 400 for a body that is not a GraphQL request, else 200 with
/// `{data, errors}`, errors included, as GraphQL clients expect.
pub(super) async fn handle(api: &MasterDealApi, req: &Req) -> GatewayResponse {
    let request: async_graphql::Request = match serde_json::from_slice(&req.body) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "Malformed GraphQL request",
                format!("the body is not a GraphQL request (JSON with `query`): {e}"),
            )
            .into_response(&req.request_id);
        }
    };
    let store = match api.store().await {
        Ok(store) => store.clone(),
        Err(e) => return e.into_response(&req.request_id),
    };
    let response = SCHEMA.execute(request.data(Scope { store, plans: api.plans.clone() })).await;
    let bytes = serde_json::to_vec(&response).expect("a GraphQL response always serializes");
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
