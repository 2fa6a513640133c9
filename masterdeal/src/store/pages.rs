//! Pages of a deal's plans, proposals, contracts and campaigns, as the REST lists serve them:
//! an optional status filter and keyset paging by id (UUIDv7, so creation order). A page's
//! ids come from one indexed query; each record is then read whole (a plan with its lines, a
//! campaign with its stats), at most `limit` of them.

use junction_engine::store::Store;
use sqlx::{AnyConnection, AssertSqlSafe};
use uuid::Uuid;

use super::{
    CampaignRow, ContractRow, MasterDealStoreError, PlanRow, ProposalRow, campaigns, contracts, plans, proposals,
};

/// Which of a deal's records a page holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildPage {
    /// Only records in this status (the caller checks it is one of the aggregate's).
    pub status: Option<String>,
    /// Records after this id, as the previous page's last.
    pub after: Option<Uuid>,
    pub limit: u32,
}

pub async fn page_plans(store: &Store, deal_id: Uuid, page: &ChildPage) -> Result<Vec<PlanRow>, MasterDealStoreError> {
    let mut conn = acquire(store).await?;
    let mut out = Vec::new();
    for id in page_ids(&mut conn, "media_plan", deal_id, page).await? {
        out.extend(plans::plan_in(&mut conn, id).await?);
    }
    Ok(out)
}

pub async fn page_proposals(
    store: &Store,
    deal_id: Uuid,
    page: &ChildPage,
) -> Result<Vec<ProposalRow>, MasterDealStoreError> {
    let mut conn = acquire(store).await?;
    let mut out = Vec::new();
    for id in page_ids(&mut conn, "proposal", deal_id, page).await? {
        out.extend(proposals::proposal_in(&mut conn, id).await?);
    }
    Ok(out)
}

pub async fn page_contracts(
    store: &Store,
    deal_id: Uuid,
    page: &ChildPage,
) -> Result<Vec<ContractRow>, MasterDealStoreError> {
    let mut conn = acquire(store).await?;
    let mut out = Vec::new();
    for id in page_ids(&mut conn, "contract", deal_id, page).await? {
        out.extend(contracts::contract_in(&mut conn, id).await?);
    }
    Ok(out)
}

pub async fn page_campaigns(
    store: &Store,
    deal_id: Uuid,
    page: &ChildPage,
) -> Result<Vec<CampaignRow>, MasterDealStoreError> {
    let mut conn = acquire(store).await?;
    let mut out = Vec::new();
    for id in page_ids(&mut conn, "campaign", deal_id, page).await? {
        out.extend(campaigns::campaign_in(&mut conn, id).await?);
    }
    Ok(out)
}

async fn acquire(store: &Store) -> Result<sqlx::pool::PoolConnection<sqlx::Any>, MasterDealStoreError> {
    store.pool().acquire().await.map_err(MasterDealStoreError::query("list a deal's records"))
}

/// The ids of the page; `table` is one of ours, never input. A record deleted between this
/// query and its read is left out of the page.
async fn page_ids(
    conn: &mut AnyConnection,
    table: &'static str,
    deal_id: Uuid,
    page: &ChildPage,
) -> Result<Vec<Uuid>, MasterDealStoreError> {
    let mut sql = format!("SELECT id FROM {table} WHERE deal_id = $1");
    let mut binds = vec![deal_id.to_string()];
    if let Some(status) = &page.status {
        binds.push(status.clone());
        sql.push_str(&format!(" AND status = ${}", binds.len()));
    }
    if let Some(after) = page.after {
        binds.push(after.to_string());
        sql.push_str(&format!(" AND id > ${}", binds.len()));
    }
    sql.push_str(&format!(" ORDER BY id LIMIT {}", page.limit));
    let query = binds.into_iter().fold(sqlx::query_scalar::<_, String>(AssertSqlSafe(sql)), |q, b| q.bind(b));
    let ids = query.fetch_all(conn).await.map_err(MasterDealStoreError::query("list a deal's records"))?;
    ids.iter().map(|id| id.parse().map_err(|e| MasterDealStoreError::corrupt(table, id, e))).collect()
}
