//! The query root: one record by id, or a page of deals.

use async_graphql::{Context, ID, Object, Result, SimpleObject};

use super::error::{Coded, invalid};
use super::parse;
use super::records::{Campaign, Contract, Proposal};
use super::types::{Deal, MediaPlan, scope};
use crate::api::cursor;
use crate::store::{self, DealFilter};

const DEFAULT_PAGE: i32 = 100;
const MAX_PAGE: i32 = 1000;

pub(super) struct QueryRoot;

/// A page of deals; `nextCursor` (null on the last page) is the `after` of the next one.
#[derive(SimpleObject)]
pub(super) struct DealPage {
    items: Vec<Deal>,
    next_cursor: Option<String>,
}

#[Object]
impl QueryRoot {
    async fn deal(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Deal>> {
        let id = parse::id("id", &id)?;
        Ok(store::get(&scope(ctx)?.store, id).await.coded()?.map(Deal))
    }

    /// Deals in creation order, filtered by status and owner; `first` is 1 to 1000 (100).
    #[graphql(complexity = "first.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE) as usize * child_complexity")]
    async fn deals(
        &self,
        ctx: &Context<'_>,
        status: Option<String>,
        owner: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<DealPage> {
        let first = first.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&first) {
            return Err(invalid(format!("first {first} is not from 1 to {MAX_PAGE}")));
        }
        let after_id = after.as_deref().map(cursor::decode).transpose().map_err(|e| invalid(e.detail))?;
        let limit = first.unsigned_abs();
        let status = status.as_deref().map(|s| parse::status("status", s)).transpose()?;
        let filter = DealFilter { status, owner, after_id, limit: Some(limit) };
        let rows = store::list(&scope(ctx)?.store, &filter).await.coded()?;
        // A full page may have more after it; a short one is the last.
        let next_cursor = rows.last().filter(|_| rows.len() == limit as usize).map(|r| cursor::encode(r.id));
        Ok(DealPage { items: rows.into_iter().map(Deal).collect(), next_cursor })
    }

    /// Through the plan cache, like REST's `GET /media-plans/{id}`.
    async fn media_plan(&self, ctx: &Context<'_>, id: ID) -> Result<Option<MediaPlan>> {
        let id = parse::id("id", &id)?;
        let scope = scope(ctx)?;
        Ok(scope.plans.get(&scope.store, id).await.coded()?.map(MediaPlan))
    }

    async fn proposal(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Proposal>> {
        let id = parse::id("id", &id)?;
        Ok(store::get_proposal(&scope(ctx)?.store, id).await.coded()?.map(Proposal))
    }

    async fn contract(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Contract>> {
        let id = parse::id("id", &id)?;
        Ok(store::get_contract(&scope(ctx)?.store, id).await.coded()?.map(Contract))
    }

    async fn campaign(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Campaign>> {
        let id = parse::id("id", &id)?;
        Ok(store::get_campaign(&scope(ctx)?.store, id).await.coded()?.map(Campaign))
    }
}
