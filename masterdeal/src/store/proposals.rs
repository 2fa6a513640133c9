//! The `proposal` repository: commercial proposals attached to a media plan, and their
//! lifecycle as the client answers. Every write appends its outbox event in its transaction.

use junction_engine::store::Store;
use sqlx::{AnyConnection, AssertSqlSafe};
use uuid::Uuid;

pub use super::proposal_row::ProposalRow;
use super::proposal_row::{PROPOSAL_COLUMNS, decode};
use super::versioned::{check, set_status};
use super::{MasterDealStoreError, begin, now_millis, outbox, plans};
use crate::domain::{Lifecycle, ProposalStatus, proposal_html, sanitised, transition};

const AGGREGATE: &str = "proposal";
const WHAT: &str = "proposal";

/// A proposal as written for a plan; it starts as a draft of the plan's deal.
#[derive(Debug, Clone)]
pub struct NewProposal {
    pub media_plan_id: Uuid,
    pub body_markdown: String,
    /// Stored sanitised; rendered from the Markdown when `None`.
    pub body_html: Option<String>,
    /// `manual:<user>` or `llm:<model>`.
    pub generated_by: String,
    pub prompt_template_version: Option<String>,
}

/// Attaches a draft proposal to the plan. Event `masterdeal.proposal.attached`.
pub async fn attach_proposal(store: &Store, proposal: NewProposal) -> Result<ProposalRow, MasterDealStoreError> {
    const OP: &str = "attach_proposal";
    let mut tx = begin(store, OP).await?;
    let plan = plans::plan_in(&mut tx, proposal.media_plan_id)
        .await?
        .ok_or_else(|| MasterDealStoreError::not_found("media plan", proposal.media_plan_id))?;
    let id = Uuid::now_v7();
    let now = now_millis();
    let html = proposal.body_html.map_or_else(|| proposal_html(&proposal.body_markdown), |html| sanitised(&html));
    sqlx::query(
        "INSERT INTO proposal (id, deal_id, media_plan_id, body_markdown, body_html, status, \
         generated_by, prompt_template_version, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'draft', $6, $7, 1, $8, $8)",
    )
    .bind(id.to_string())
    .bind(plan.deal_id.to_string())
    .bind(plan.id.to_string())
    .bind(proposal.body_markdown)
    .bind(html)
    .bind(proposal.generated_by)
    .bind(proposal.prompt_template_version)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(MasterDealStoreError::query(OP))?;
    let row = proposal_in(&mut tx, id).await?.ok_or_else(|| MasterDealStoreError::not_found(WHAT, id))?;
    outbox::append(&mut tx, AGGREGATE, id, "masterdeal.proposal.attached", &row).await?;
    tx.commit().await.map_err(MasterDealStoreError::query(OP))?;
    Ok(row)
}

pub async fn get_proposal(store: &Store, id: Uuid) -> Result<Option<ProposalRow>, MasterDealStoreError> {
    let mut conn = store.pool().acquire().await.map_err(MasterDealStoreError::query("get_proposal"))?;
    proposal_in(&mut conn, id).await
}

/// The deal's proposals in creation order.
pub async fn list_proposals(store: &Store, deal_id: Uuid) -> Result<Vec<ProposalRow>, MasterDealStoreError> {
    let sql = format!("SELECT {PROPOSAL_COLUMNS} FROM proposal WHERE deal_id = $1 ORDER BY id");
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(deal_id.to_string())
        .fetch_all(store.pool())
        .await
        .map_err(MasterDealStoreError::query("list_proposals"))?;
    rows.iter().map(decode).collect()
}

pub(super) async fn proposal_in(
    conn: &mut AnyConnection,
    id: Uuid,
) -> Result<Option<ProposalRow>, MasterDealStoreError> {
    let sql = format!("SELECT {PROPOSAL_COLUMNS} FROM proposal WHERE id = $1");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(conn)
        .await
        .map_err(MasterDealStoreError::query("get_proposal"))?;
    row.as_ref().map(decode).transpose()
}

/// Moves the proposal to `to` if the lifecycle allows it and it is still at
/// `expected_version`. Events `masterdeal.proposal.sent|accepted|declined`.
pub async fn transition_proposal(
    store: &Store,
    id: Uuid,
    expected_version: i64,
    to: ProposalStatus,
) -> Result<ProposalRow, MasterDealStoreError> {
    const OP: &str = "transition_proposal";
    let mut tx = begin(store, OP).await?;
    let proposal = proposal_in(&mut tx, id).await?.ok_or_else(|| MasterDealStoreError::not_found(WHAT, id))?;
    check(WHAT, id, expected_version, proposal.version)?;
    transition(proposal.status, to)?;
    set_status(&mut tx, ("proposal", WHAT), id, expected_version, to, MasterDealStoreError::query(OP)).await?;
    let row = proposal_in(&mut tx, id).await?.ok_or_else(|| MasterDealStoreError::not_found(WHAT, id))?;
    let event = format!("masterdeal.proposal.{}", to.as_str());
    outbox::append(&mut tx, AGGREGATE, id, &event, &row).await?;
    tx.commit().await.map_err(MasterDealStoreError::query(OP))?;
    Ok(row)
}
