//! The `masterdeal_generation` repository: a media plan or proposal a route drafts with a
//! model. Asking for one appends its `requested` event in the same transaction, with what the
//! route needs to write its prompt (the deal; the plan too, for a proposal); the relay
//! publishes it on `masterdeal.media_plan_generation` or `masterdeal.proposal_generation`.

use chrono::{DateTime, Utc};
use junction_engine::store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe};
use uuid::Uuid;

use super::columns::Columns;
use super::{MasterDealStoreError, begin, deals, now_millis, outbox, plans};
use crate::domain::{GenerationKind, GenerationStatus, Lifecycle, PlanStatus, RuleError, transition};

const COLUMNS: &str = "id, kind, subject_id, status, result_id, problem, created_at, updated_at";
const WHAT: &str = "generation";

/// A generation as stored, and as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationRow {
    pub id: Uuid,
    pub kind: GenerationKind,
    /// The deal a media plan is drafted for; the media plan a proposal is drafted for.
    pub subject_id: Uuid,
    pub status: GenerationStatus,
    /// What was stored, once `done`: the media plan's or the proposal's id.
    pub result_id: Option<Uuid>,
    /// Why it `failed`: a problem (`type`, `title`, `detail`, `dead_letter_id`).
    pub problem: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Asks for a generation: a pending row and its `requested` event. A proposal is drafted
/// only for an approved plan.
pub async fn request_generation(
    store: &Store,
    kind: GenerationKind,
    subject_id: Uuid,
) -> Result<GenerationRow, MasterDealStoreError> {
    const OP: &str = "request_generation";
    let mut tx = begin(store, OP).await?;
    let id = Uuid::now_v7();
    let payload = match kind {
        GenerationKind::MediaPlan => {
            let deal = deals::get_in(&mut tx, subject_id)
                .await?
                .ok_or_else(|| MasterDealStoreError::not_found("master deal", subject_id))?;
            json!({ "generation_id": id, "deal": deal })
        }
        GenerationKind::Proposal => {
            let plan = plans::plan_in(&mut tx, subject_id)
                .await?
                .ok_or_else(|| MasterDealStoreError::not_found("media plan", subject_id))?;
            if plan.status != PlanStatus::Approved {
                return Err(
                    RuleError::ProposalOfUnapprovedPlan { number: plan.number, status: plan.status.as_str() }.into()
                );
            }
            let deal = deals::get_in(&mut tx, plan.deal_id)
                .await?
                .ok_or_else(|| MasterDealStoreError::not_found("master deal", plan.deal_id))?;
            json!({ "generation_id": id, "media_plan": plan, "deal": deal })
        }
    };
    let now = now_millis();
    sqlx::query(
        "INSERT INTO masterdeal_generation (id, kind, subject_id, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(id.to_string())
    .bind(kind.as_str())
    .bind(subject_id.to_string())
    .bind(GenerationStatus::Pending.as_str())
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(MasterDealStoreError::query(OP))?;
    let aggregate = format!("{}_generation", kind.as_str());
    outbox::append(&mut tx, &aggregate, id, &format!("masterdeal.{aggregate}.requested"), &payload).await?;
    let row = generation_in(&mut tx, id).await?.ok_or_else(|| MasterDealStoreError::not_found(WHAT, id))?;
    tx.commit().await.map_err(MasterDealStoreError::query(OP))?;
    Ok(row)
}

pub async fn get_generation(store: &Store, id: Uuid) -> Result<Option<GenerationRow>, MasterDealStoreError> {
    let mut conn = store.pool().acquire().await.map_err(MasterDealStoreError::query("get_generation"))?;
    generation_in(&mut conn, id).await
}

/// Ends a generation: `done` with what was stored, or `failed` with the problem. A move its
/// lifecycle forbids (ending a `done` one again) is a `Transition` error.
pub async fn end_generation(
    store: &Store,
    id: Uuid,
    to: GenerationStatus,
    result_id: Option<Uuid>,
    problem: Option<&Value>,
) -> Result<GenerationRow, MasterDealStoreError> {
    const OP: &str = "end_generation";
    let mut tx = begin(store, OP).await?;
    let row = generation_in(&mut tx, id).await?.ok_or_else(|| MasterDealStoreError::not_found(WHAT, id))?;
    transition(row.status, to)?;
    sqlx::query(
        "UPDATE masterdeal_generation SET status = $2, result_id = $3, problem = $4, updated_at = $5 WHERE id = $1",
    )
    .bind(id.to_string())
    .bind(to.as_str())
    .bind(result_id.map(|r| r.to_string()))
    .bind(problem.map(Value::to_string))
    .bind(now_millis())
    .execute(&mut *tx)
    .await
    .map_err(MasterDealStoreError::query(OP))?;
    let row = generation_in(&mut tx, id).await?.ok_or_else(|| MasterDealStoreError::not_found(WHAT, id))?;
    tx.commit().await.map_err(MasterDealStoreError::query(OP))?;
    Ok(row)
}

/// What is wrong with a model's drafted plan for deal `deal_id` (see
/// [`crate::domain::check_drafted_plan`]); empty when it can be stored.
pub async fn check_drafted_plan(
    store: &Store,
    deal_id: Uuid,
    draft: &Value,
) -> Result<Vec<String>, MasterDealStoreError> {
    let deal =
        deals::get(store, deal_id).await?.ok_or_else(|| MasterDealStoreError::not_found("master deal", deal_id))?;
    Ok(crate::domain::check_drafted_plan(&super::to_domain::deal(&deal)?, draft))
}

async fn generation_in(conn: &mut AnyConnection, id: Uuid) -> Result<Option<GenerationRow>, MasterDealStoreError> {
    let sql = format!("SELECT {COLUMNS} FROM masterdeal_generation WHERE id = $1");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(conn)
        .await
        .map_err(MasterDealStoreError::query("get_generation"))?;
    row.as_ref().map(decode).transpose()
}

fn decode(row: &AnyRow) -> Result<GenerationRow, MasterDealStoreError> {
    let c = Columns::new(row, WHAT);
    Ok(GenerationRow {
        id: c.uuid("id")?,
        kind: c.variant("kind")?,
        subject_id: c.uuid("subject_id")?,
        status: c.variant("status")?,
        result_id: c
            .get::<Option<String>>("result_id")?
            .map(|r| r.parse())
            .transpose()
            .map_err(|e| c.corrupt(format!("result_id: {e}")))?,
        problem: c
            .get::<Option<String>>("problem")?
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(|e| c.corrupt(format!("problem: {e}")))?,
        created_at: c.time("created_at")?,
        updated_at: c.time("updated_at")?,
    })
}
