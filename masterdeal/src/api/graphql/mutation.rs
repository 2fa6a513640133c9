//! The mutation root: the same writes as REST, through the store's typed layer (which checks
//! versions, lifecycles and rules for every surface). Transitions and
//! updates of existing records take `expectedVersion` (the `version` read) and fail with
//! `CONFLICT` when the record moved on.

use async_graphql::{Context, ID, Object, Result};

use super::error::Coded;
use super::inputs::{CampaignInput, ContractInput, DayStatsInput, DealInput, MediaPlanInput, ProposalInput};
use super::parse;
use super::records::{Campaign, Contract, Proposal};
use super::types::{Deal, MediaPlan, scope};
use crate::domain::DealStatus;
use crate::store::{self, NewCampaign, NewPlan};

pub(super) struct MutationRoot;

#[Object]
impl MutationRoot {
    /// Creates the deal with this CRM id; one that exists is updated only at
    /// `expectedVersion` (required then) and keeps its status, as REST's `POST /deals`.
    async fn upsert_deal(&self, ctx: &Context<'_>, input: DealInput, expected_version: Option<i64>) -> Result<Deal> {
        let (row, _created) =
            store::save_deal(&scope(ctx)?.store, input.into_new()?, expected_version).await.coded()?;
        Ok(Deal(row))
    }

    /// Overwrites the deal's fields at `expectedVersion`; its status stays (it moves only by
    /// `transitionDeal`, which checks the lifecycle), so `input.status` must be the current one.
    async fn update_deal(&self, ctx: &Context<'_>, id: ID, expected_version: i64, input: DealInput) -> Result<Deal> {
        let id = parse::id("id", &id)?;
        Ok(Deal(store::update_deal(&scope(ctx)?.store, id, expected_version, input.into_new()?).await.coded()?))
    }

    /// Moves the deal along its lifecycle at `expectedVersion`.
    async fn transition_deal(&self, ctx: &Context<'_>, id: ID, to: String, expected_version: i64) -> Result<Deal> {
        let id = parse::id("id", &id)?;
        let to: DealStatus = parse::status("to", &to)?;
        Ok(Deal(store::transition_deal(&scope(ctx)?.store, id, expected_version, to).await.coded()?))
    }

    /// Adds the deal's next plan as a draft.
    async fn add_media_plan(&self, ctx: &Context<'_>, deal_id: ID, input: MediaPlanInput) -> Result<MediaPlan> {
        let deal_id = parse::id("dealId", &deal_id)?;
        let store = &scope(ctx)?.store;
        let currency = match &input.currency {
            Some(code) => parse::currency(code)?,
            None => store::currency_of_deal(store, deal_id).await.coded()?,
        };
        let lines = input.lines.into_iter().map(|l| l.into_new(currency)).collect::<Result<_>>()?;
        let plan = NewPlan {
            deal_id,
            source: input.source,
            prompt_template_version: input.prompt_template_version,
            model: input.model,
            lines,
        };
        Ok(MediaPlan(store::add_media_plan(store, plan).await.coded()?))
    }

    /// Propose, approve, reject or rework; approval checks the deal's budget.
    async fn transition_media_plan(
        &self,
        ctx: &Context<'_>,
        id: ID,
        to: String,
        expected_version: i64,
    ) -> Result<MediaPlan> {
        let id = parse::id("id", &id)?;
        let to = parse::status("to", &to)?;
        let scope = scope(ctx)?;
        let result = store::transition_plan(&scope.store, id, expected_version, to).await;
        // Whatever happened, the next read goes to the database.
        scope.plans.invalidate(id).await;
        Ok(MediaPlan(result.coded()?))
    }

    async fn attach_proposal(&self, ctx: &Context<'_>, media_plan_id: ID, input: ProposalInput) -> Result<Proposal> {
        let plan = parse::id("mediaPlanId", &media_plan_id)?;
        Ok(Proposal(store::attach_proposal(&scope(ctx)?.store, input.into_new(plan)).await.coded()?))
    }

    /// Send, accept or decline.
    async fn transition_proposal(
        &self,
        ctx: &Context<'_>,
        id: ID,
        to: String,
        expected_version: i64,
    ) -> Result<Proposal> {
        let id = parse::id("id", &id)?;
        let to = parse::status("to", &to)?;
        Ok(Proposal(store::transition_proposal(&scope(ctx)?.store, id, expected_version, to).await.coded()?))
    }

    /// Creates the contract with this number, or overwrites it (at `expectedVersion` if given).
    async fn upsert_contract(
        &self,
        ctx: &Context<'_>,
        deal_id: ID,
        input: ContractInput,
        expected_version: Option<i64>,
    ) -> Result<Contract> {
        let contract = input.into_new(parse::id("dealId", &deal_id)?)?;
        let expected = store::Expected::or(expected_version, store::Expected::New);
        let (row, _created) = store::upsert_contract(&scope(ctx)?.store, contract, expected).await.coded()?;
        Ok(Contract(row))
    }

    /// Send, sign or terminate.
    async fn transition_contract(
        &self,
        ctx: &Context<'_>,
        id: ID,
        to: String,
        expected_version: i64,
    ) -> Result<Contract> {
        let id = parse::id("id", &id)?;
        let to = parse::status("to", &to)?;
        Ok(Contract(store::transition_contract(&scope(ctx)?.store, id, expected_version, to).await.coded()?))
    }

    /// Creates a campaign on a line of the approved plan, or overwrites the one with its
    /// platform campaign id (at `expectedVersion` if given).
    async fn upsert_campaign(
        &self,
        ctx: &Context<'_>,
        input: CampaignInput,
        expected_version: Option<i64>,
    ) -> Result<Campaign> {
        let line = parse::id("mediaPlanLineId", &input.media_plan_line_id)?;
        let store = &scope(ctx)?.store;
        let currency = match &input.currency {
            Some(code) => parse::currency(code)?,
            None => store::currency_of_line(store, line).await.coded()?,
        };
        let campaign = NewCampaign {
            media_plan_line_id: line,
            status: parse::status("status", &input.status)?,
            flight: parse::period("flight", &input.flight_from, &input.flight_to)?,
            budget: parse::money("budget", &input.budget, currency)?,
            platform: input.platform,
            platform_campaign_id: input.platform_campaign_id,
            name: input.name,
        };
        let expected = store::Expected::or(expected_version, store::Expected::New);
        let (row, _created) = store::upsert_campaign(store, campaign, expected).await.coded()?;
        Ok(Campaign(row))
    }

    /// Upserts these days; the campaign's spend becomes the sum of all its days.
    async fn record_campaign_stats(
        &self,
        ctx: &Context<'_>,
        campaign_id: ID,
        days: Vec<DayStatsInput>,
        #[graphql(desc = "The spend's currency; the campaign's when absent.")] currency: Option<String>,
    ) -> Result<Campaign> {
        let id = parse::id("campaignId", &campaign_id)?;
        let store = &scope(ctx)?.store;
        let currency = match &currency {
            Some(code) => parse::currency(code)?,
            None => store::currency_of_campaign(store, id).await.coded()?,
        };
        let days = days.into_iter().map(|d| d.into_new(currency)).collect::<Result<_>>()?;
        Ok(Campaign(store::record_campaign_stats(store, id, days).await.coded()?))
    }

    /// Deletes a deal without plans or contracts; answers its id. `NOT_DELETABLE` otherwise.
    async fn delete_deal(&self, ctx: &Context<'_>, id: ID, expected_version: i64) -> Result<ID> {
        let uuid = parse::id("id", &id)?;
        store::delete_deal(&scope(ctx)?.store, uuid, expected_version).await.coded()?;
        Ok(id)
    }

    /// Deletes a draft or rejected plan without proposals or campaigns; answers its id.
    async fn delete_media_plan(&self, ctx: &Context<'_>, id: ID, expected_version: i64) -> Result<ID> {
        let uuid = parse::id("id", &id)?;
        let scope = scope(ctx)?;
        let result = store::delete_plan(&scope.store, uuid, expected_version).await;
        scope.plans.invalidate(uuid).await;
        result.coded()?;
        Ok(id)
    }

    /// Deletes a draft proposal; answers its id.
    async fn delete_proposal(&self, ctx: &Context<'_>, id: ID, expected_version: i64) -> Result<ID> {
        let uuid = parse::id("id", &id)?;
        store::delete_proposal(&scope(ctx)?.store, uuid, expected_version).await.coded()?;
        Ok(id)
    }

    /// Deletes a draft contract; answers its id.
    async fn delete_contract(&self, ctx: &Context<'_>, id: ID, expected_version: i64) -> Result<ID> {
        let uuid = parse::id("id", &id)?;
        store::delete_contract(&scope(ctx)?.store, uuid, expected_version).await.coded()?;
        Ok(id)
    }

    /// Deletes a draft campaign without stats; answers its id.
    async fn delete_campaign(&self, ctx: &Context<'_>, id: ID, expected_version: i64) -> Result<ID> {
        let uuid = parse::id("id", &id)?;
        store::delete_campaign(&scope(ctx)?.store, uuid, expected_version).await.coded()?;
        Ok(id)
    }
}
