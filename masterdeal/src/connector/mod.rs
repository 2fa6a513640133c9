//! `kind: masterdeal`: the MasterDeal store as a connector. Each step names one operation
//! (`op: upsert_deal_by_external_id`, `add_media_plan`, `deal_summary`…, see [`Op`]); the
//! message body is its input and the reply body its result.
//!
//! Building it does no I/O, so `junction check` accepts it without a store. Started, it runs
//! the outbox relay (see [`relay`]) as a background task, in one instance at a time.

/// Also what the REST and GraphQL APIs call, so every surface shares one implementation.
pub(crate) mod ops;
mod relay;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_generations;
#[cfg(test)]
mod tests_plans;

use std::sync::Arc;

use async_trait::async_trait;
use junction_engine::Message;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::{BuildCx, Bus, Connector, ConnectorError, Endpoint, Kind, Role, StartCx, Task};
use junction_engine::gateway::HttpApi;
use serde::Deserialize;

use crate::api::MasterDealApi;
use crate::cache::PlanCache;
use crate::store::{self, Database, Expected, MasterDealStoreError};

pub struct MasterDealKind;

/// `masterdeal`'s options (besides `api:`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// The MasterDeal database (`sqlite://…` or `postgres://…`), apart from the engine's store
    /// (the integration database: bus, dead letters, checkpoints, leases, audit). Without it
    /// the tables live in the engine's store.
    #[serde(default)]
    database: Option<String>,
}

/// What a step asks: `request: { connector: masterdeal, op: get_deal }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpSpec {
    /// One of [`Op::ALL`].
    op: String,
}

impl Kind for MasterDealKind {
    const NAME: &'static str = "masterdeal";
    type Config = Options;

    fn build(&self, name: &str, options: Options, _: &Node, cx: &BuildCx<'_>) -> Result<Arc<dyn Connector>, NodeError> {
        // `junction check` (no store) opens no database either.
        let database = match (options.database, &cx.resources.store) {
            (Some(url), Some(_)) => Database::own(url),
            (_, store) => Database::engine(store.clone()),
        };
        let api = MasterDealApi::new(database.clone(), cx.resources.cache.clone());
        Ok(Arc::new(MasterDealConnector {
            name: name.to_owned(),
            plans: api.plans.clone(),
            api: Arc::new(api),
            database,
            started: std::sync::OnceLock::new(),
        }))
    }
}

struct MasterDealConnector {
    name: String,
    /// What the outbox relay publishes to, once started.
    started: std::sync::OnceLock<Arc<dyn Bus>>,
    database: Database,
    /// The plans the REST and GraphQL APIs read through; steps that change a plan drop it.
    plans: PlanCache,
    /// Served on the gateway when the connector's config has `api:`.
    api: Arc<MasterDealApi>,
}

/// The operations a step can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    UpsertDealByExternalId,
    GetDeal,
    ListDeals,
    Transition,
    AddMediaPlan,
    ApproveMediaPlan,
    AttachProposal,
    UpsertContract,
    UpsertCampaign,
    RecordCampaignStats,
    DealSummary,
    UpdateDeal,
    TransitionMediaPlan,
    TransitionProposal,
    TransitionContract,
    CheckMediaPlan,
    FinishGeneration,
    FailGeneration,
    RequestGeneration,
    GetApprovedPlan,
    AdvanceDeal,
    UpdateContractBilling,
    UnpaidContracts,
    OpenCampaigns,
}

impl Op {
    const ALL: [Op; 24] = [
        Op::UpsertDealByExternalId,
        Op::GetDeal,
        Op::ListDeals,
        Op::Transition,
        Op::AddMediaPlan,
        Op::ApproveMediaPlan,
        Op::AttachProposal,
        Op::UpsertContract,
        Op::UpsertCampaign,
        Op::RecordCampaignStats,
        Op::DealSummary,
        Op::UpdateDeal,
        Op::TransitionMediaPlan,
        Op::TransitionProposal,
        Op::TransitionContract,
        Op::CheckMediaPlan,
        Op::FinishGeneration,
        Op::FailGeneration,
        Op::RequestGeneration,
        Op::GetApprovedPlan,
        Op::AdvanceDeal,
        Op::UpdateContractBilling,
        Op::UnpaidContracts,
        Op::OpenCampaigns,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Op::UpsertDealByExternalId => "upsert_deal_by_external_id",
            Op::GetDeal => "get_deal",
            Op::ListDeals => "list_deals",
            Op::Transition => "transition",
            Op::AddMediaPlan => "add_media_plan",
            Op::ApproveMediaPlan => "approve_media_plan",
            Op::AttachProposal => "attach_proposal",
            Op::UpsertContract => "upsert_contract",
            Op::UpsertCampaign => "upsert_campaign",
            Op::RecordCampaignStats => "record_campaign_stats",
            Op::DealSummary => "deal_summary",
            Op::UpdateDeal => "update_deal",
            Op::TransitionMediaPlan => "transition_media_plan",
            Op::TransitionProposal => "transition_proposal",
            Op::TransitionContract => "transition_contract",
            Op::CheckMediaPlan => "check_media_plan",
            Op::FinishGeneration => "finish_generation",
            Op::FailGeneration => "fail_generation",
            Op::RequestGeneration => "request_generation",
            Op::GetApprovedPlan => "get_approved_plan",
            Op::AdvanceDeal => "advance_deal",
            Op::UpdateContractBilling => "update_contract_billing",
            Op::UnpaidContracts => "unpaid_contracts",
            Op::OpenCampaigns => "open_campaigns",
        }
    }

    fn parse(options: &Node) -> Result<Op, NodeError> {
        let spec: OpSpec = options.parse()?;
        Op::ALL.into_iter().find(|op| op.as_str() == spec.op).ok_or_else(|| {
            let known: Vec<_> = Op::ALL.iter().map(|op| op.as_str()).collect();
            NodeError {
                message: format!("unknown masterdeal op `{}`; known ops: {}", spec.op, known.join(", ")),
                pos: Some(options.get("op").map_or(options.pos, |n| n.pos)),
            }
        })
    }
}

#[async_trait]
impl Connector for MasterDealConnector {
    fn kind(&self) -> &'static str {
        "masterdeal"
    }

    fn endpoint(&self, _role: Role, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Endpoint>, NodeError> {
        let op = Op::parse(options)?;
        Ok(Arc::new(MasterDealEndpoint { op, database: self.database.clone(), plans: self.plans.clone() }))
    }

    fn http_api(&self) -> Option<Arc<dyn HttpApi>> {
        Some(self.api.clone())
    }

    async fn start(&self, cx: &StartCx) -> Result<(), ConnectorError> {
        let _ = self.started.set(cx.bus.clone());
        // Migrations run per database at start; one that is down now is retried on first use.
        if let Err(error) = self.database.get().await {
            tracing::warn!(connector = %self.name, %error, "masterdeal: the database is not ready yet");
        }
        Ok(())
    }

    fn tasks(&self) -> Vec<Task> {
        let Some(bus) = self.started.get().cloned() else { return Vec::new() };
        let database = self.database.clone();
        let metrics = junction_engine::telemetry::OutboxMetrics::new(&self.name);
        vec![Task {
            name: format!("{}.outbox", self.name),
            once: true,
            run: Arc::new(move |stop| relay::task(metrics.clone(), database.clone(), bus.clone(), stop)),
        }]
    }
}

struct MasterDealEndpoint {
    op: Op,
    database: Database,
    plans: PlanCache,
}

#[async_trait]
impl Endpoint for MasterDealEndpoint {
    async fn send(&self, msg: &Message) -> Result<(), ConnectorError> {
        self.request(msg).await.map(|_| ())
    }

    async fn request(&self, msg: &Message) -> Result<Message, ConnectorError> {
        let store = self.database.get().await.map_err(store_error)?;
        let input = msg.body.json();
        let work = async {
            match self.op {
                Op::UpsertDealByExternalId => ops::upsert(store, &input).await,
                Op::GetDeal => ops::get(store, &input).await,
                Op::ListDeals => ops::list(store, &input).await,
                Op::Transition => ops::transition(store, &input).await,
                Op::AddMediaPlan => ops::add_media_plan(store, &input).await,
                Op::ApproveMediaPlan => ops::approve_media_plan(store, &input).await,
                Op::TransitionMediaPlan => ops::transition_media_plan(store, &input).await,
                Op::AttachProposal => ops::attach_proposal(store, &input).await,
                // Steps sync from the systems of record: what they send is the truth.
                Op::UpsertContract => ops::upsert_contract(store, &input, Expected::AnyVersion).await,
                Op::UpsertCampaign => ops::upsert_campaign(store, &input, Expected::AnyVersion).await,
                Op::RecordCampaignStats => ops::record_campaign_stats(store, &input).await,
                Op::DealSummary => ops::deal_summary(store, &input).await,
                Op::UpdateDeal => ops::update_deal(store, &input).await,
                Op::TransitionProposal => ops::transition_proposal(store, &input).await,
                Op::TransitionContract => ops::transition_contract(store, &input).await,
                Op::CheckMediaPlan => ops::check_media_plan(store, &input).await,
                Op::FinishGeneration => ops::finish_generation(store, &input).await,
                Op::FailGeneration => ops::fail_generation(store, &input).await,
                Op::RequestGeneration => ops::request_generation(store, &input).await,
                Op::GetApprovedPlan => ops::get_approved_plan(store, &input).await,
                Op::AdvanceDeal => ops::advance_deal(store, &input).await,
                Op::UpdateContractBilling => ops::update_contract_billing(store, &input).await,
                Op::UnpaidContracts => ops::unpaid_contracts(store, &input).await,
                Op::OpenCampaigns => ops::open_campaigns(store, &input).await,
            }
        };
        // The events this op writes carry the message's trace (see store::traced).
        let trace = msg
            .meta
            .trace_id
            .clone()
            .map(|trace_id| store::Trace { trace_id, parent_span_id: msg.meta.parent_span_id.clone() });
        let output = store::traced(trace, work).await;
        // A plan step changes the plan, whatever its outcome: the APIs' next read of it goes
        // to the database.
        if matches!(self.op, Op::ApproveMediaPlan | Op::TransitionMediaPlan)
            && let Some(id) = input.get("id").and_then(|v| v.as_str()).and_then(|s| s.parse().ok())
        {
            self.plans.invalidate(id).await;
        }
        let output = output.map_err(store_error)?;
        Ok(msg.clone().with_body(junction_engine::Body::Json(output)))
    }

    fn describe(&self) -> String {
        format!("masterdeal {}", self.op.as_str())
    }
}

/// A lost connection may come back; anything else will fail the same way again.
fn store_error(e: MasterDealStoreError) -> ConnectorError {
    use sqlx::Error as E;
    let transient = match &e {
        MasterDealStoreError::Query { source, .. } => {
            matches!(source, E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Protocol(_))
        }
        MasterDealStoreError::Raced { .. } | MasterDealStoreError::Unavailable { .. } => true,
        _ => false,
    };
    match e {
        _ if transient => ConnectorError::retryable(e.to_string()),
        // What the message asked for cannot be done as it is: the caller is told, not paged.
        MasterDealStoreError::NotFound { .. }
        | MasterDealStoreError::Conflict { .. }
        | MasterDealStoreError::Transition(_)
        | MasterDealStoreError::Rule(_)
        | MasterDealStoreError::Invalid(_)
        | MasterDealStoreError::NotDeletable { .. }
        | MasterDealStoreError::VersionRequired { .. } => {
            ConnectorError::rejected(format!("masterdeal rejected the request: {e}"))
        }
        _ => ConnectorError::permanent(e.to_string()),
    }
}
