//! The records as GraphQL objects. Each wraps its store row; relations (a deal's plans, a
//! plan's proposals…) are read only when a query selects them. Money is an exact decimal
//! string, dates `YYYY-MM-DD`, times RFC 3339, statuses their `snake_case` REST names.

use std::collections::BTreeMap;

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::Scope;
use super::error::Coded;
use super::records::{Campaign, Contract, DealSummary, PlanLine, Proposal};
use crate::domain::Lifecycle;
use crate::store::{self, DealRow, MasterDealStoreError, PlanRow};

/// An id in another system (CRM, billing), by the system's name.
#[derive(SimpleObject)]
pub(super) struct SystemId {
    pub system: String,
    pub id: String,
}

pub(super) fn system_ids(ids: &BTreeMap<String, String>) -> Vec<SystemId> {
    ids.iter().map(|(system, id)| SystemId { system: system.clone(), id: id.clone() }).collect()
}

pub(super) fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A status (or any unit enum) by its serde name, the one REST and the database use.
pub(super) fn wire_name(status: &impl Serialize) -> String {
    match serde_json::to_value(status) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

pub(super) fn scope<'a>(ctx: &Context<'a>) -> Result<&'a Scope> {
    ctx.data::<Scope>()
}

/// A master deal.
pub(super) struct Deal(pub DealRow);

#[Object]
impl Deal {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn crm_id(&self) -> &str {
        &self.0.crm_id
    }
    async fn external_ids(&self) -> Vec<SystemId> {
        system_ids(&self.0.external_ids)
    }
    async fn advertiser_name(&self) -> &str {
        &self.0.advertiser_name
    }
    async fn advertiser_inn(&self) -> &str {
        &self.0.advertiser_inn
    }
    async fn advertiser_kpp(&self) -> Option<&str> {
        self.0.advertiser_kpp.as_deref()
    }
    async fn owner(&self) -> &str {
        &self.0.owner
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn budget(&self) -> String {
        self.0.budget.to_string()
    }
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    async fn period_from(&self) -> String {
        self.0.period_from.to_string()
    }
    async fn period_to(&self) -> String {
        self.0.period_to.to_string()
    }
    async fn status(&self) -> &str {
        self.0.status.as_str()
    }
    async fn version(&self) -> i64 {
        self.0.version
    }
    async fn created_at(&self) -> String {
        time(&self.0.created_at)
    }
    async fn updated_at(&self) -> String {
        time(&self.0.updated_at)
    }
    /// By number.
    #[graphql(complexity = "LIST_COST + LIST_COST * child_complexity")]
    async fn media_plans(&self, ctx: &Context<'_>) -> Result<Vec<MediaPlan>> {
        let plans = store::list_plans(&scope(ctx)?.store, self.0.id).await.coded()?;
        Ok(plans.into_iter().map(MediaPlan).collect())
    }
    #[graphql(complexity = "LIST_COST + LIST_COST * child_complexity")]
    async fn proposals(&self, ctx: &Context<'_>) -> Result<Vec<Proposal>> {
        let rows = store::list_proposals(&scope(ctx)?.store, self.0.id).await.coded()?;
        Ok(rows.into_iter().map(Proposal).collect())
    }
    #[graphql(complexity = "LIST_COST + LIST_COST * child_complexity")]
    async fn contracts(&self, ctx: &Context<'_>) -> Result<Vec<Contract>> {
        let rows = store::list_contracts(&scope(ctx)?.store, self.0.id).await.coded()?;
        Ok(rows.into_iter().map(Contract).collect())
    }
    #[graphql(complexity = "LIST_COST + LIST_COST * child_complexity")]
    async fn campaigns(&self, ctx: &Context<'_>) -> Result<Vec<Campaign>> {
        let rows = store::list_campaigns(&scope(ctx)?.store, self.0.id).await.coded()?;
        Ok(rows.into_iter().map(Campaign).collect())
    }
    /// Budget against spend by channel; null while the deal has no approved plan.
    #[graphql(complexity = "LIST_COST + child_complexity")]
    async fn summary(&self, ctx: &Context<'_>) -> Result<Option<DealSummary>> {
        match store::deal_summary(&scope(ctx)?.store, self.0.id).await {
            Ok(s) => Ok(Some(DealSummary(s))),
            Err(MasterDealStoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(super::error::store_error(e)),
        }
    }
}

/// What a nested list costs in the complexity limit: a query, and as many items as a deal
/// typically has of each (its plans, proposals, contracts, campaigns), so nesting multiplies.
pub(super) const LIST_COST: usize = 10;

/// A media plan with its lines.
pub(super) struct MediaPlan(pub PlanRow);

#[Object]
impl MediaPlan {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn deal_id(&self) -> ID {
        ID(self.0.deal_id.to_string())
    }
    async fn number(&self) -> i64 {
        self.0.number
    }
    async fn status(&self) -> String {
        wire_name(&self.0.status)
    }
    /// `manual` or `llm`.
    async fn source(&self) -> &str {
        &self.0.source
    }
    async fn prompt_template_version(&self) -> Option<&str> {
        self.0.prompt_template_version.as_deref()
    }
    async fn model(&self) -> Option<&str> {
        self.0.model.as_deref()
    }
    async fn total(&self) -> String {
        self.0.total.to_string()
    }
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    async fn version(&self) -> i64 {
        self.0.version
    }
    async fn created_at(&self) -> String {
        time(&self.0.created_at)
    }
    async fn updated_at(&self) -> String {
        time(&self.0.updated_at)
    }
    /// In position order.
    async fn lines(&self) -> Vec<PlanLine> {
        self.0.lines.iter().cloned().map(PlanLine).collect()
    }
    /// The proposals written from this plan.
    #[graphql(complexity = "LIST_COST + LIST_COST * child_complexity")]
    async fn proposals(&self, ctx: &Context<'_>) -> Result<Vec<Proposal>> {
        let rows = store::list_proposals(&scope(ctx)?.store, self.0.deal_id).await.coded()?;
        Ok(rows.into_iter().filter(|p| p.media_plan_id == self.0.id).map(Proposal).collect())
    }
}
