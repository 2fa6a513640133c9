//! The REST API: one table of operations (method, path, handler) that both dispatches
//! requests and describes them in the OpenAPI document, so the two cannot drift apart.
//!
//! Records carry `version`, sent as the ETag; writes to an existing record need it back as
//! `If-Match` (or `expected_version` in the body) and lose with 409 when it moved on. Lists
//! page by cursor: `?limit=50&cursor=<next_cursor of the previous page>`.

mod handlers;

use std::collections::HashMap;
use std::sync::LazyLock;

use bytes::Bytes;
use http::{Method, Request};
use junction_engine::gateway::GatewayResponse;
use junction_engine::gateway::problem;

use super::MasterDealApi;
use super::wire::{ApiError, Req};

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    ListDeals,
    UpsertDeal,
    GetDeal,
    UpdateDeal,
    TransitionDeal,
    DealSummary,
    ListPlans,
    AddPlan,
    GetPlan,
    TransitionPlan,
    ListProposals,
    AttachProposal,
    GetProposal,
    TransitionProposal,
    ListContracts,
    UpsertContract,
    GetContract,
    TransitionContract,
    ListCampaigns,
    UpsertCampaign,
    GetCampaign,
    RecordStats,
    DeleteDeal,
    DeletePlan,
    DeleteProposal,
    DeleteContract,
    DeleteCampaign,
    GenerateMediaPlan,
    GenerateProposal,
    GetGeneration,
    GraphQl,
}

/// One REST operation, as dispatched and as documented.
pub(super) struct Operation {
    pub method: Method,
    pub path: &'static str,
    pub op: Op,
    pub summary: &'static str,
    /// The schema (in `openapi`) of the request body, if it takes one.
    pub input: Option<&'static str>,
    /// The schema of the answer.
    pub output: &'static str,
}

macro_rules! operations {
    ($($method:ident $path:literal => $op:ident, $summary:literal, $input:expr, $output:literal;)*) => {
        vec![$(Operation {
            method: Method::$method,
            path: $path,
            op: Op::$op,
            summary: $summary,
            input: $input,
            output: $output,
        },)*]
    };
}

/// Every operation of the REST API, paths relative to the API's mount.
pub(super) static OPERATIONS: LazyLock<Vec<Operation>> = LazyLock::new(|| {
    operations! {
        GET "/deals" => ListDeals, "List master deals (filters: status, owner; cursor paging)", None, "DealPage";
        POST "/deals" => UpsertDeal, "Create a master deal, or update the one with this external_id (If-Match when it exists)", Some("DealInput"), "Deal";
        GET "/deals/{id}" => GetDeal, "Get a master deal (ETag: its version)", None, "Deal";
        PUT "/deals/{id}" => UpdateDeal, "Replace a master deal's fields (If-Match required)", Some("DealInput"), "Deal";
        POST "/deals/{id}/transitions" => TransitionDeal, "Move a master deal to another status (If-Match required)", Some("DealTransition"), "Deal";
        GET "/deals/{id}/summary" => DealSummary, "Budget vs spend by channel for the deal's approved plan", None, "DealSummary";
        GET "/deals/{id}/media-plans" => ListPlans, "The deal's media plans, by number", None, "MediaPlanList";
        POST "/deals/{id}/media-plans" => AddPlan, "Add a media plan (the next number) to the deal", Some("MediaPlanInput"), "MediaPlan";
        GET "/media-plans/{id}" => GetPlan, "Get a media plan with its lines (cached)", None, "MediaPlan";
        POST "/media-plans/{id}/transitions" => TransitionPlan, "Propose, approve, reject or rework a media plan (If-Match required)", Some("MediaPlanTransition"), "MediaPlan";
        GET "/deals/{id}/proposals" => ListProposals, "The deal's commercial proposals", None, "ProposalList";
        POST "/media-plans/{id}/proposals" => AttachProposal, "Attach a commercial proposal (КП) to a media plan", Some("ProposalInput"), "Proposal";
        GET "/proposals/{id}" => GetProposal, "Get a commercial proposal", None, "Proposal";
        POST "/proposals/{id}/transitions" => TransitionProposal, "Send, accept or decline a proposal (If-Match required)", Some("ProposalTransition"), "Proposal";
        GET "/deals/{id}/contracts" => ListContracts, "The deal's contracts", None, "ContractList";
        POST "/deals/{id}/contracts" => UpsertContract, "Create a contract, or update the one with this number (If-Match when it exists)", Some("ContractInput"), "Contract";
        GET "/contracts/{id}" => GetContract, "Get a contract", None, "Contract";
        POST "/contracts/{id}/transitions" => TransitionContract, "Send, sign or terminate a contract (If-Match required)", Some("ContractTransition"), "Contract";
        GET "/deals/{id}/campaigns" => ListCampaigns, "The deal's campaigns with their daily stats", None, "CampaignList";
        POST "/campaigns" => UpsertCampaign, "Create a campaign, or update the one with this platform campaign id (If-Match when it exists)", Some("CampaignInput"), "Campaign";
        GET "/campaigns/{id}" => GetCampaign, "Get a campaign with its daily stats", None, "Campaign";
        POST "/campaigns/{id}/stats" => RecordStats, "Record daily stats; the campaign's spend becomes their sum", Some("StatsInput"), "Campaign";
        DELETE "/deals/{id}" => DeleteDeal, "Delete a master deal that has no plans or contracts (If-Match required); answers the deleted record", None, "Deal";
        DELETE "/media-plans/{id}" => DeletePlan, "Delete a draft or rejected media plan without proposals or campaigns (If-Match required)", None, "MediaPlan";
        DELETE "/proposals/{id}" => DeleteProposal, "Delete a draft proposal (If-Match required)", None, "Proposal";
        DELETE "/contracts/{id}" => DeleteContract, "Delete a draft contract (If-Match required)", None, "Contract";
        DELETE "/campaigns/{id}" => DeleteCampaign, "Delete a draft campaign without stats (If-Match required)", None, "Campaign";
        POST "/deals/{id}/media-plan-generations" => GenerateMediaPlan, "Draft a media plan for the deal with a model: 202, then follow `Location` until `done` (the plan's id in `result_id`) or `failed`", None, "Generation";
        POST "/media-plans/{id}/proposal-generations" => GenerateProposal, "Draft the commercial proposal (КП) of an approved media plan with a model: 202, then follow `Location`", None, "Generation";
        GET "/generations/{id}" => GetGeneration, "A generation: `pending`, `done` with `result_id`, or `failed` with `problem`", None, "Generation";
        POST "/graphql" => GraphQl, "GraphQL: queries and mutations over the same data", Some("GraphQlRequest"), "GraphQlResponse";
    }
});

/// Paths to their operations by method.
static ROUTER: LazyLock<matchit::Router<Vec<(Method, Op)>>> = LazyLock::new(|| {
    let mut by_path: Vec<(&str, Vec<(Method, Op)>)> = Vec::new();
    for o in OPERATIONS.iter() {
        match by_path.iter_mut().find(|(p, _)| *p == o.path) {
            Some((_, ops)) => ops.push((o.method.clone(), o.op)),
            None => by_path.push((o.path, vec![(o.method.clone(), o.op)])),
        }
    }
    let mut router = matchit::Router::new();
    for (path, ops) in by_path {
        router.insert(path, ops).expect("the operation table has no conflicting paths");
    }
    router
});

pub(super) async fn handle(api: &MasterDealApi, req: Request<Bytes>) -> GatewayResponse {
    let (parts, body) = req.into_parts();
    let request_id = parts
        .extensions
        .get::<junction_engine::gateway::RequestCx>()
        .map(|cx| cx.request_id.clone())
        .unwrap_or_default();
    let Ok(found) = ROUTER.at(parts.uri.path()) else {
        return problem::not_found(parts.uri.path()).into_response(&request_id);
    };
    let Some(op) = found.value.iter().find(|(m, _)| *m == parts.method).map(|(_, op)| *op) else {
        let allowed: Vec<Method> = found.value.iter().map(|(m, _)| m.clone()).collect();
        return problem::method_not_allowed(&parts.method, &allowed, &request_id);
    };
    let params: HashMap<String, String> = found.params.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    let req = Req::new(&parts, params, body);
    if op == Op::GraphQl {
        return super::graphql::handle(api, &req).await;
    }
    handlers::handle(api, op, &req).await.unwrap_or_else(|e| e.into_response(&request_id))
}

/// A page size from `?limit=` (1 to 1000, default 100).
fn limit(req: &Req) -> Result<u32, ApiError> {
    match req.query.get("limit") {
        None => Ok(100),
        Some(raw) => match raw.parse::<u32>() {
            Ok(n @ 1..=1000) => Ok(n),
            _ => Err(ApiError::bad_request(format!("limit `{raw}` is not a number from 1 to 1000"))),
        },
    }
}
