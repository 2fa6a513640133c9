//! The mutation root: the same writes as REST, straight to the store. Transitions and
//! updates of existing records take `expectedVersion` (the `version` read) and fail with
//! `CONFLICT` when the record moved on.

use async_graphql::{Context, ID, Object, Result};
use serde::Deserialize;

use super::error::{Coded, coded, found, invalid};
use super::inputs::{CampaignInput, ContractInput, DayStatsInput, DealInput, MediaPlanInput, ProposalInput};
use super::parse;
use super::records::{Campaign, Contract, Proposal};
use super::types::{Deal, MediaPlan, scope};
use crate::domain::{Currency, DealStatus, Lifecycle, transition};
use crate::store::{self, MasterDealStoreError, NewCampaign, NewPlan};

pub(super) struct MutationRoot;

#[Object]
impl MutationRoot {
    /// Creates the deal with this CRM id; one that exists is updated only at
    /// `expectedVersion` (required then) and keeps its status, as REST's `POST /deals`.
    async fn upsert_deal(&self, ctx: &Context<'_>, input: DealInput, expected_version: Option<i64>) -> Result<Deal> {
        let store = &scope(ctx)?.store;
        let deal = input.into_new()?;
        match store::get_by_crm_id(store, &deal.crm_id).await.coded()? {
            None => Ok(Deal(store::create_deal(store, deal).await.coded()?)),
            Some(current) => {
                let Some(expected_version) = expected_version else {
                    return Err(coded(
                        "PRECONDITION_REQUIRED",
                        format!(
                            "master deal with CRM id `{}` exists (version {}): send expectedVersion to update it",
                            current.crm_id, current.version
                        ),
                    ));
                };
                update_existing(store, current, expected_version, deal).await
            }
        }
    }

    /// Overwrites the deal's fields at `expectedVersion`; its status stays (it moves only by
    /// `transitionDeal`, which checks the lifecycle), so `input.status` must be the current one.
    async fn update_deal(&self, ctx: &Context<'_>, id: ID, expected_version: i64, input: DealInput) -> Result<Deal> {
        let id = parse::id("id", &id)?;
        let store = &scope(ctx)?.store;
        let current = found("master deal", id, store::get(store, id).await.coded()?)?;
        update_existing(store, current, expected_version, input.into_new()?).await
    }

    /// `store::update_status` writes whatever status it is given, so the lifecycle is checked
    /// here, as the connector's `transition` does; the store rechecks the version atomically.
    async fn transition_deal(&self, ctx: &Context<'_>, id: ID, to: String, expected_version: i64) -> Result<Deal> {
        let id = parse::id("id", &id)?;
        let to: DealStatus = parse::status("to", &to)?;
        let store = &scope(ctx)?.store;
        let row = found("master deal", id, store::get(store, id).await.coded()?)?;
        let from = DealStatus::deserialize(serde_json::Value::String(row.status.clone()))
            .map_err(|e| MasterDealStoreError::Corrupt {
                what: "master deal",
                id: id.to_string(),
                reason: e.to_string(),
            })
            .coded()?;
        // The version first: a stale caller should reload, whatever it asked for.
        if row.version != expected_version {
            let (what, id) = ("master deal", id.to_string());
            return Err(MasterDealStoreError::Conflict { what, id, expected: expected_version, actual: row.version })
                .coded();
        }
        transition(from, to).map_err(MasterDealStoreError::from).coded()?;
        Ok(Deal(store::update_status(store, id, expected_version, to.as_str()).await.coded()?))
    }

    /// Adds the deal's next plan as a draft.
    async fn add_media_plan(&self, ctx: &Context<'_>, deal_id: ID, input: MediaPlanInput) -> Result<MediaPlan> {
        let deal_id = parse::id("dealId", &deal_id)?;
        let store = &scope(ctx)?.store;
        let currency = match &input.currency {
            Some(code) => parse::currency(code)?,
            None => {
                let deal = found("master deal", deal_id, store::get(store, deal_id).await.coded()?)?;
                stored_currency(&deal.currency)?
            }
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
            None => {
                let plan = found("media plan line", line, store::plan_of_line(store, line).await.coded()?)?;
                stored_currency(&plan.currency)?
            }
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
            None => {
                let campaign = found("campaign", id, store::get_campaign(store, id).await.coded()?)?;
                stored_currency(&campaign.currency)?
            }
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

/// `deal` over `current` at `expected_version`, its status unchanged. The version is checked
/// against this read first, so the status kept is the one of the version the caller read.
async fn update_existing(
    store: &junction_engine::store::Store,
    current: store::DealRow,
    expected_version: i64,
    deal: store::NewDeal,
) -> Result<Deal> {
    if current.version != expected_version {
        let (what, id) = ("master deal", current.id.to_string());
        return Err(MasterDealStoreError::Conflict { what, id, expected: expected_version, actual: current.version })
            .coded();
    }
    if deal.status != current.status {
        return Err(invalid(format!(
            "the status of master deal `{}` is `{}`; change it with transitionDeal, not an update",
            current.id, current.status
        )));
    }
    Ok(Deal(store::update_deal(store, current.id, expected_version, deal).await.coded()?))
}

/// A currency the store wrote; unreadable only if the row was edited by hand.
fn stored_currency(code: &str) -> Result<Currency> {
    Currency::parse(code).map_err(|e| coded("CORRUPT_RECORD", format!("a stored currency is unreadable: {e}")))
}
