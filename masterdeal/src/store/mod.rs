//! MasterDeal's tables in the engine's store: their migrations, one repository per
//! aggregate (`deals`, `plans`, `proposals`, `contracts`, `campaigns` with `stats`,
//! `generations`) and the transactional outbox their writes append to.
//!
//! This is the one typed layer every write goes through, whichever surface asked (the
//! connector's ops for routes and REST, GraphQL's mutations): create, update, transition and
//! delete of each aggregate check, inside their transaction, the version the caller read, the
//! lifecycle (statuses are typed: a move the lifecycle forbids cannot be written) and the
//! domain's rules (through `to_domain`). The surfaces only turn their input into these types.
//!
//! Queries go through the engine's `Any` pool in SQL both backends read, like the engine's
//! own store; the one difference, money as NUMERIC on Postgres, is confined to [`money`].

mod campaign_row;
mod campaigns;
mod columns;
mod contract_row;
mod contracts;
mod currencies;
mod database;
mod deal_row;
mod deals;
mod deletes;
mod error;
mod generations;
mod outbox;
mod pages;
mod plan_row;
mod plans;
mod proposal_row;
mod proposals;
mod stats;
mod summary;
#[cfg(test)]
pub(crate) mod test_db;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_plans;
mod to_domain;
mod versioned;

use junction_engine::store::{Backend, Store};
use sqlx::{Any, Transaction};

pub use campaigns::{
    CampaignRow, DayStatsRow, NewCampaign, campaign_by_platform_id, get_campaign, list_campaigns, open_campaigns,
    upsert_campaign,
};
pub use contracts::{
    ContractRow, NewContract, get_contract, list_contracts, transition_contract, unpaid_contracts, upsert_contract,
};
pub use currencies::{currency_of_campaign, currency_of_deal, currency_of_line};
pub use database::Database;
pub use deals::{
    DealFilter, DealRow, NewDeal, create_deal, get, get_by_crm_id, list, save_deal, transition_deal, update_deal,
    upsert_by_crm_id,
};
pub use deletes::{delete_campaign, delete_contract, delete_deal, delete_plan, delete_proposal};
pub use error::MasterDealStoreError;
pub use generations::{GenerationRow, check_drafted_plan, end_generation, get_generation, request_generation};
pub use outbox::{OutboxEvent, Trace, backlog, mark_published, pending, relay_once, traced};
pub use pages::{ChildPage, page_campaigns, page_contracts, page_plans, page_proposals};
pub use plans::{
    NewPlan, NewPlanLine, PlanLineRow, PlanRow, add_media_plan, approved_plan, get_plan, list_plans, plan_of_line,
    transition_plan,
};
pub use proposals::{NewProposal, ProposalRow, attach_proposal, get_proposal, list_proposals, transition_proposal};
pub use stats::{NewDayStats, record_campaign_stats};
pub use summary::{ChannelSummaryRow, DealSummary, deal_summary};
pub use versioned::{Expected, is_constraint_violation};

/// Runs MasterDeal's migrations (versions from 1001). Call after [`Store::open`].
pub async fn migrate(store: &Store) -> Result<(), MasterDealStoreError> {
    let mut migrator = match store.backend() {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
    };
    // sqlx's migrations table may also hold other crates' rows; they are not ours to miss.
    migrator.set_ignore_missing(true);
    migrator.run(store.pool()).await.map_err(|source| MasterDealStoreError::Migration { source })
}

/// Starts a write transaction. On SQLite it takes the write lock up front (`IMMEDIATE`):
/// a deferred transaction that reads and then writes fails with "database is locked" when
/// another writer got in between, instead of waiting its turn.
async fn begin(store: &Store, op: &'static str) -> Result<Transaction<'static, Any>, MasterDealStoreError> {
    let statement = match store.backend() {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
    };
    store.pool().begin_with(statement).await.map_err(MasterDealStoreError::query(op))
}

/// The placeholder `$n` for a money value bound as decimal text. The `Any` driver sends
/// text, which Postgres will not put in a NUMERIC column without a cast; SQLite keeps the
/// text as it is (a cast there would turn it into a float).
fn money(store: &Store, n: u8) -> String {
    match store.backend() {
        Backend::Sqlite => format!("${n}"),
        Backend::Postgres => format!("CAST(${n} AS NUMERIC)"),
    }
}

/// Now, as stored: unix milliseconds.
fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
