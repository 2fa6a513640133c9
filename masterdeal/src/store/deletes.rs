//! Deleting a record: only one nothing refers to yet (a deal without plans or contracts; a
//! draft or rejected plan without proposals or campaigns; a draft proposal or contract; a
//! draft campaign without stats), at the version its caller read, with its
//! `masterdeal.<aggregate>.deleted` event (the record as it was) in the same transaction.
//! Anything further along has a history: it is cancelled, rejected or terminated instead.

use junction_engine::store::Store;
use sqlx::{AnyConnection, AssertSqlSafe};
use uuid::Uuid;

use super::versioned::{check, why_not_updated};
use super::{
    CampaignRow, ContractRow, DealRow, MasterDealStoreError, PlanRow, ProposalRow, begin, campaigns, contracts, deals,
    outbox, plans, proposals,
};
use crate::domain::{CampaignStatus, ContractStatus, Lifecycle, PlanStatus, ProposalStatus};

/// What may refer to a record: a count over our tables with `$1` its id, and what that is.
type Uses = [(&'static str, &'static str)];

/// Deletes the deal if nothing hangs off it (plans, and through them proposals and
/// campaigns; contracts).
pub async fn delete_deal(store: &Store, id: Uuid, expected_version: i64) -> Result<DealRow, MasterDealStoreError> {
    const WHAT: &str = "master deal";
    let mut tx = begin(store, "delete_deal").await?;
    let row = deals::get_in(&mut tx, id).await?.ok_or_else(|| MasterDealStoreError::not_found(WHAT, id))?;
    check(WHAT, id, expected_version, row.version)?;
    unused(
        &mut tx,
        WHAT,
        id,
        &[
            ("SELECT COUNT(*) FROM media_plan WHERE deal_id = $1", "media plans"),
            ("SELECT COUNT(*) FROM contract WHERE deal_id = $1", "contracts"),
        ],
    )
    .await?;
    remove(&mut tx, "master_deal", WHAT, id, expected_version).await?;
    outbox::append(&mut tx, "master_deal", id, "masterdeal.deal.deleted", &row).await?;
    tx.commit().await.map_err(MasterDealStoreError::query("delete_deal"))?;
    Ok(row)
}

/// Deletes a draft or rejected plan (with its lines) that no proposal or campaign uses.
pub async fn delete_plan(store: &Store, id: Uuid, expected_version: i64) -> Result<PlanRow, MasterDealStoreError> {
    const WHAT: &str = "media plan";
    let mut tx = begin(store, "delete_plan").await?;
    let row = plans::plan_in(&mut tx, id).await?.ok_or_else(|| MasterDealStoreError::not_found(WHAT, id))?;
    check(WHAT, id, expected_version, row.version)?;
    if !matches!(row.status, PlanStatus::Draft | PlanStatus::Rejected) {
        return Err(not_deletable(WHAT, id, format!("it is {}; reject it instead", row.status.as_str())));
    }
    unused(
        &mut tx,
        WHAT,
        id,
        &[
            ("SELECT COUNT(*) FROM proposal WHERE media_plan_id = $1", "proposals"),
            (
                "SELECT COUNT(*) FROM campaign WHERE media_plan_line_id IN \
                 (SELECT id FROM media_plan_line WHERE media_plan_id = $1)",
                "campaigns",
            ),
        ],
    )
    .await?;
    sqlx::query("DELETE FROM media_plan_line WHERE media_plan_id = $1")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(MasterDealStoreError::query("delete_plan lines"))?;
    remove(&mut tx, "media_plan", WHAT, id, expected_version).await?;
    outbox::append(&mut tx, "media_plan", id, "masterdeal.media_plan.deleted", &row).await?;
    tx.commit().await.map_err(MasterDealStoreError::query("delete_plan"))?;
    Ok(row)
}

/// Deletes a draft proposal.
pub async fn delete_proposal(
    store: &Store,
    id: Uuid,
    expected_version: i64,
) -> Result<ProposalRow, MasterDealStoreError> {
    const WHAT: &str = "proposal";
    let mut tx = begin(store, "delete_proposal").await?;
    let row = proposals::proposal_in(&mut tx, id).await?.ok_or_else(|| MasterDealStoreError::not_found(WHAT, id))?;
    check(WHAT, id, expected_version, row.version)?;
    if row.status != ProposalStatus::Draft {
        return Err(not_deletable(WHAT, id, format!("it is {}; only a draft can be deleted", row.status.as_str())));
    }
    remove(&mut tx, "proposal", WHAT, id, expected_version).await?;
    outbox::append(&mut tx, "proposal", id, "masterdeal.proposal.deleted", &row).await?;
    tx.commit().await.map_err(MasterDealStoreError::query("delete_proposal"))?;
    Ok(row)
}

/// Deletes a draft contract.
pub async fn delete_contract(
    store: &Store,
    id: Uuid,
    expected_version: i64,
) -> Result<ContractRow, MasterDealStoreError> {
    const WHAT: &str = "contract";
    let mut tx = begin(store, "delete_contract").await?;
    let row = contracts::contract_in(&mut tx, id).await?.ok_or_else(|| MasterDealStoreError::not_found(WHAT, id))?;
    check(WHAT, id, expected_version, row.version)?;
    if row.status != ContractStatus::Draft {
        let reason = format!("it is {}; a contract past draft is terminated, not deleted", row.status.as_str());
        return Err(not_deletable(WHAT, id, reason));
    }
    remove(&mut tx, "contract", WHAT, id, expected_version).await?;
    outbox::append(&mut tx, "contract", id, "masterdeal.contract.deleted", &row).await?;
    tx.commit().await.map_err(MasterDealStoreError::query("delete_contract"))?;
    Ok(row)
}

/// Deletes a draft campaign that has no stats.
pub async fn delete_campaign(
    store: &Store,
    id: Uuid,
    expected_version: i64,
) -> Result<CampaignRow, MasterDealStoreError> {
    const WHAT: &str = "campaign";
    let mut tx = begin(store, "delete_campaign").await?;
    let row = campaigns::campaign_in(&mut tx, id).await?.ok_or_else(|| MasterDealStoreError::not_found(WHAT, id))?;
    check(WHAT, id, expected_version, row.version)?;
    if row.status != CampaignStatus::Draft {
        return Err(not_deletable(WHAT, id, "it has been launched; cancel it instead".to_owned()));
    }
    unused(&mut tx, WHAT, id, &[("SELECT COUNT(*) FROM campaign_stats WHERE campaign_id = $1", "days of stats")])
        .await?;
    remove(&mut tx, "campaign", WHAT, id, expected_version).await?;
    outbox::append(&mut tx, "campaign", id, "masterdeal.campaign.deleted", &row).await?;
    tx.commit().await.map_err(MasterDealStoreError::query("delete_campaign"))?;
    Ok(row)
}

fn not_deletable(what: &'static str, id: Uuid, reason: String) -> MasterDealStoreError {
    MasterDealStoreError::NotDeletable { what, id: id.to_string(), reason }
}

/// `NotDeletable` naming the first kind of record that refers to this one.
async fn unused(
    conn: &mut AnyConnection,
    what: &'static str,
    id: Uuid,
    uses: &Uses,
) -> Result<(), MasterDealStoreError> {
    for (count, used_by) in uses {
        let n: i64 = sqlx::query_scalar(*count)
            .bind(id.to_string())
            .fetch_one(&mut *conn)
            .await
            .map_err(MasterDealStoreError::query("delete: count references"))?;
        if n > 0 {
            return Err(not_deletable(what, id, format!("{n} {used_by} refer to it")));
        }
    }
    Ok(())
}

/// Deletes the row at the expected version; `table` is one of ours, never input.
async fn remove(
    conn: &mut AnyConnection,
    table: &'static str,
    what: &'static str,
    id: Uuid,
    expected_version: i64,
) -> Result<(), MasterDealStoreError> {
    let sql = format!("DELETE FROM {table} WHERE id = $1 AND version = $2");
    let done = sqlx::query(AssertSqlSafe(sql))
        .bind(id.to_string())
        .bind(expected_version)
        .execute(&mut *conn)
        .await
        .map_err(MasterDealStoreError::query("delete"))?;
    if done.rows_affected() == 0 {
        return Err(why_not_updated(conn, table, what, id, expected_version).await?);
    }
    Ok(())
}
