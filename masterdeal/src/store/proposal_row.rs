//! A `proposal` row: the commercial proposal (КП) written from one media plan.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::MasterDealStoreError;
use super::columns::Columns;
use crate::domain::ProposalStatus;

pub(super) const PROPOSAL_COLUMNS: &str = "id, deal_id, media_plan_id, body_markdown, body_html, status, \
     generated_by, prompt_template_version, version, created_at, updated_at";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalRow {
    pub id: Uuid,
    /// The plan's deal.
    pub deal_id: Uuid,
    pub media_plan_id: Uuid,
    pub body_markdown: String,
    pub body_html: String,
    pub status: ProposalStatus,
    /// Who wrote it: `manual:<user>` or `llm:<model>`.
    pub generated_by: String,
    pub prompt_template_version: Option<String>,
    /// 1 on creation, one more on every write: the token of optimistic concurrency.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(super) fn decode(row: &AnyRow) -> Result<ProposalRow, MasterDealStoreError> {
    let c = Columns::new(row, "proposal");
    Ok(ProposalRow {
        id: c.uuid("id")?,
        deal_id: c.uuid("deal_id")?,
        media_plan_id: c.uuid("media_plan_id")?,
        body_markdown: c.text("body_markdown")?,
        body_html: c.text("body_html")?,
        status: c.variant("status")?,
        generated_by: c.text("generated_by")?,
        prompt_template_version: c.get("prompt_template_version")?,
        version: c.get("version")?,
        created_at: c.time("created_at")?,
        updated_at: c.time("updated_at")?,
    })
}
