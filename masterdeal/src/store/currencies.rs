//! The currency of an amount whose writer does not name one: the deal's for a media plan, the
//! plan's for a campaign on one of its lines, the campaign's for its daily stats. One lookup
//! for every surface (routes, REST, GraphQL).

use junction_engine::store::Store;
use uuid::Uuid;

use super::{MasterDealStoreError, campaigns, deals, plans};
use crate::domain::Currency;

pub async fn currency_of_deal(store: &Store, deal_id: Uuid) -> Result<Currency, MasterDealStoreError> {
    let deal =
        deals::get(store, deal_id).await?.ok_or_else(|| MasterDealStoreError::not_found("master deal", deal_id))?;
    stored("master deal", deal_id, &deal.currency)
}

pub async fn currency_of_line(store: &Store, line_id: Uuid) -> Result<Currency, MasterDealStoreError> {
    let plan = plans::plan_of_line(store, line_id)
        .await?
        .ok_or_else(|| MasterDealStoreError::not_found("media plan line", line_id))?;
    stored("media plan", plan.id, &plan.currency)
}

pub async fn currency_of_campaign(store: &Store, campaign_id: Uuid) -> Result<Currency, MasterDealStoreError> {
    let campaign = campaigns::get_campaign(store, campaign_id)
        .await?
        .ok_or_else(|| MasterDealStoreError::not_found("campaign", campaign_id))?;
    stored("campaign", campaign_id, &campaign.currency)
}

/// A currency the store wrote; unreadable only if the row was edited by hand.
fn stored(what: &'static str, id: Uuid, code: &str) -> Result<Currency, MasterDealStoreError> {
    Currency::parse(code).map_err(|e| MasterDealStoreError::corrupt(what, &id.to_string(), format!("currency: {e}")))
}
