//! The `master_deal` repository: upsert by CRM id, reads with keyset paging, and status
//! changes guarded by the row's version. Every write appends its outbox event in the same
//! transaction, so an event exists exactly when its change does.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use junction_engine::store::Store;
use rust_decimal::Decimal;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AssertSqlSafe};
use uuid::Uuid;

pub use super::deal_row::DealRow;
use super::deal_row::{DEAL_COLUMNS, decode};
use super::versioned::{check, is_unique_violation, set_status, why_not_updated};
use super::{MasterDealStoreError, begin, money, now_millis, outbox, plans, to_domain};
use crate::domain::{DealStatus, Lifecycle, plan_within_budget, transition};

const AGGREGATE: &str = "master_deal";
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// A deal as the CRM sends it: everything but the id, version and times, which the store
/// keeps.
#[derive(Debug, Clone)]
pub struct NewDeal {
    pub crm_id: String,
    pub external_ids: BTreeMap<String, String>,
    pub advertiser_name: String,
    pub advertiser_inn: String,
    pub advertiser_kpp: Option<String>,
    pub owner: String,
    pub title: String,
    pub budget: Decimal,
    pub currency: String,
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    /// At creation, `draft` when `None`. On an update the status stays: given, it must be the
    /// current one (a status moves only by [`transition_deal`], which checks the lifecycle).
    /// A sync from the system of record ([`upsert_by_crm_id`]) writes it as it is sent.
    pub status: Option<DealStatus>,
}

/// Which deals [`list`] returns, in id order (creation order).
#[derive(Debug, Clone, Default)]
pub struct DealFilter {
    pub status: Option<DealStatus>,
    pub owner: Option<String>,
    /// Only deals after this id: pass the last id of a page to get the next page.
    pub after_id: Option<Uuid>,
    /// At most this many: 100 when unset, never more than 1000.
    pub limit: Option<u32>,
}

/// Creates the deal with this CRM id (version 1, event `masterdeal.deal.created`) or
/// overwrites it (version + 1, `masterdeal.deal.updated`). `true` when it was created.
pub async fn upsert_by_crm_id(store: &Store, deal: NewDeal) -> Result<(DealRow, bool), MasterDealStoreError> {
    const OP: &str = "upsert_by_crm_id";
    let mut tx = begin(store, OP).await?;
    let now = now_millis();
    // Update first, insert when there was nothing to update. On Postgres a concurrent
    // insert of the same CRM id makes ours do nothing; the second update then finds it.
    for _ in 0..2 {
        let update = format!(
            "UPDATE master_deal SET external_ids = $2, advertiser_name = $3, advertiser_inn = $4, \
             advertiser_kpp = $5, owner = $6, title = $7, budget = {}, currency = $9, \
             period_from = $10, period_to = $11, status = COALESCE($12, status), version = version + 1, \
             updated_at = $13 WHERE crm_id = $1 RETURNING {DEAL_COLUMNS}",
            money(store, 8)
        );
        if let Some(row) = bind_deal(sqlx::query(AssertSqlSafe(update)), &deal, now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(MasterDealStoreError::query(OP))?
        {
            let row = decode(&row)?;
            outbox::append(&mut tx, AGGREGATE, row.id, "masterdeal.deal.updated", &row).await?;
            tx.commit().await.map_err(MasterDealStoreError::query(OP))?;
            return Ok((row, false));
        }
        let insert = format!(
            "INSERT INTO master_deal (crm_id, external_ids, advertiser_name, advertiser_inn, \
             advertiser_kpp, owner, title, budget, currency, period_from, period_to, status, \
             updated_at, created_at, id, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, {}, $9, $10, $11, COALESCE($12, 'draft'), $13, $13, $14, 1) \
             ON CONFLICT (crm_id) DO NOTHING RETURNING {DEAL_COLUMNS}",
            money(store, 8)
        );
        if let Some(row) = bind_deal(sqlx::query(AssertSqlSafe(insert)), &deal, now)
            .bind(Uuid::now_v7().to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(MasterDealStoreError::query(OP))?
        {
            let row = decode(&row)?;
            outbox::append(&mut tx, AGGREGATE, row.id, "masterdeal.deal.created", &row).await?;
            tx.commit().await.map_err(MasterDealStoreError::query(OP))?;
            return Ok((row, true));
        }
    }
    Err(MasterDealStoreError::Raced { what: "master deal with CRM id", key: deal.crm_id })
}

/// Creates the deal; if one with its CRM id exists (made since the caller looked), a
/// `Conflict` from version 0 (none) to that deal's version: the caller updates it instead.
pub async fn create_deal(store: &Store, deal: NewDeal) -> Result<DealRow, MasterDealStoreError> {
    const OP: &str = "create_deal";
    let mut tx = begin(store, OP).await?;
    let now = now_millis();
    let insert = format!(
        "INSERT INTO master_deal (crm_id, external_ids, advertiser_name, advertiser_inn, \
         advertiser_kpp, owner, title, budget, currency, period_from, period_to, status, \
         updated_at, created_at, id, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, {}, $9, $10, $11, COALESCE($12, 'draft'), $13, $13, $14, 1) \
         ON CONFLICT (crm_id) DO NOTHING RETURNING {DEAL_COLUMNS}",
        money(store, 8)
    );
    let inserted = bind_deal(sqlx::query(AssertSqlSafe(insert)), &deal, now)
        .bind(Uuid::now_v7().to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(MasterDealStoreError::query(OP))?;
    let Some(row) = inserted else {
        drop(tx);
        let existing = get_by_crm_id(store, &deal.crm_id).await?;
        let (id, actual) = existing.map_or((deal.crm_id.clone(), 0), |d| (d.id.to_string(), d.version));
        return Err(MasterDealStoreError::Conflict { what: "master deal", id, expected: 0, actual });
    };
    let row = decode(&row)?;
    outbox::append(&mut tx, AGGREGATE, row.id, "masterdeal.deal.created", &row).await?;
    tx.commit().await.map_err(MasterDealStoreError::query(OP))?;
    Ok(row)
}

/// Overwrites every field of the deal if it is still at `expected_version` (version + 1,
/// `masterdeal.deal.updated`); [`MasterDealStoreError::Conflict`] when it changed since.
pub async fn update_deal(
    store: &Store,
    id: Uuid,
    expected_version: i64,
    deal: NewDeal,
) -> Result<DealRow, MasterDealStoreError> {
    const OP: &str = "update_deal";
    let mut tx = begin(store, OP).await?;
    // The version first: a stale caller should reload, whatever it sent.
    let current = get_in(&mut tx, id).await?.ok_or_else(|| MasterDealStoreError::not_found("master deal", id))?;
    check("master deal", id, expected_version, current.version)?;
    if deal.status.is_some_and(|s| s != current.status) {
        return Err(MasterDealStoreError::Invalid(format!(
            "the status of master deal `{id}` is `{}`; change it with a transition, not an update",
            current.status.as_str()
        )));
    }
    let update = format!(
        "UPDATE master_deal SET crm_id = $1, external_ids = $2, advertiser_name = $3, advertiser_inn = $4, \
         advertiser_kpp = $5, owner = $6, title = $7, budget = {}, currency = $9, period_from = $10, \
         period_to = $11, status = COALESCE($12, status), version = version + 1, updated_at = $13 \
         WHERE id = $14 AND version = $15 RETURNING {DEAL_COLUMNS}",
        money(store, 8)
    );
    let updated = bind_deal(sqlx::query(AssertSqlSafe(update)), &deal, now_millis())
        .bind(id.to_string())
        .bind(expected_version)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| match e {
            e if is_unique_violation(&e) => MasterDealStoreError::Invalid(format!(
                "CRM id `{}` belongs to another master deal: keep this deal's CRM id",
                deal.crm_id
            )),
            e => MasterDealStoreError::query(OP)(e),
        })?;
    let Some(row) = updated else {
        return Err(why_not_updated(&mut tx, "master_deal", "master deal", id, expected_version).await?);
    };
    let row = decode(&row)?;
    // The approved plan must still fit the deal's budget and currency.
    if let Some(plan) = plans::approved_in(&mut tx, id).await? {
        plan_within_budget(&to_domain::deal(&row)?, &to_domain::plan(&plan)?)?;
    }
    outbox::append(&mut tx, AGGREGATE, row.id, "masterdeal.deal.updated", &row).await?;
    tx.commit().await.map_err(MasterDealStoreError::query(OP))?;
    Ok(row)
}

/// Binds `$1`…`$13`: the deal's fields in table order, then the time of the write.
fn bind_deal<'q>(query: Query<'q, Any, AnyArguments>, deal: &NewDeal, now: i64) -> Query<'q, Any, AnyArguments> {
    let external_ids = serde_json::to_string(&deal.external_ids).expect("a map of strings always serializes to JSON");
    query
        .bind(deal.crm_id.clone())
        .bind(external_ids)
        .bind(deal.advertiser_name.clone())
        .bind(deal.advertiser_inn.clone())
        .bind(deal.advertiser_kpp.clone())
        .bind(deal.owner.clone())
        .bind(deal.title.clone())
        .bind(deal.budget.to_string())
        .bind(deal.currency.clone())
        .bind(deal.period_from.to_string())
        .bind(deal.period_to.to_string())
        .bind(deal.status.map(Lifecycle::as_str))
        .bind(now)
}

pub async fn get(store: &Store, id: Uuid) -> Result<Option<DealRow>, MasterDealStoreError> {
    let mut conn = store.pool().acquire().await.map_err(MasterDealStoreError::query("get"))?;
    get_in(&mut conn, id).await
}

/// The deal with this CRM id.
pub async fn get_by_crm_id(store: &Store, crm_id: &str) -> Result<Option<DealRow>, MasterDealStoreError> {
    let sql = format!("SELECT {DEAL_COLUMNS} FROM master_deal WHERE crm_id = $1");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(crm_id.to_owned())
        .fetch_optional(store.pool())
        .await
        .map_err(MasterDealStoreError::query("get_by_crm_id"))?;
    row.as_ref().map(decode).transpose()
}

/// [`get`] on a connection, so a write transaction reads the deal it checks against.
pub(super) async fn get_in(conn: &mut AnyConnection, id: Uuid) -> Result<Option<DealRow>, MasterDealStoreError> {
    let sql = format!("SELECT {DEAL_COLUMNS} FROM master_deal WHERE id = $1");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(conn)
        .await
        .map_err(MasterDealStoreError::query("get"))?;
    row.as_ref().map(decode).transpose()
}

/// Deals matching `filter`, in id order.
pub async fn list(store: &Store, filter: &DealFilter) -> Result<Vec<DealRow>, MasterDealStoreError> {
    let limit = filter.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    // One statement with optional conditions rather than SQL built per filter: a NULL
    // parameter switches its condition off.
    let sql = format!(
        "SELECT {DEAL_COLUMNS} FROM master_deal \
         WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR owner = $2) \
           AND ($3 IS NULL OR id > $3) \
         ORDER BY id LIMIT $4"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(filter.status.map(Lifecycle::as_str))
        .bind(filter.owner.clone())
        .bind(filter.after_id.map(|id| id.to_string()))
        .bind(i64::from(limit))
        .fetch_all(store.pool())
        .await
        .map_err(MasterDealStoreError::query("list"))?;
    rows.iter().map(decode).collect()
}

/// Moves the deal to `to` if it is still at `expected_version` (`Conflict` when it changed
/// since, so two concurrent changes cannot both win) and the lifecycle allows the move
/// (`Transition` otherwise). Event `masterdeal.deal.status_changed`.
pub async fn transition_deal(
    store: &Store,
    id: Uuid,
    expected_version: i64,
    to: DealStatus,
) -> Result<DealRow, MasterDealStoreError> {
    const OP: &str = "transition_deal";
    let mut tx = begin(store, OP).await?;
    let deal = get_in(&mut tx, id).await?.ok_or_else(|| MasterDealStoreError::not_found("master deal", id))?;
    check("master deal", id, expected_version, deal.version)?;
    transition(deal.status, to)?;
    set_status(&mut tx, ("master_deal", "master deal"), id, expected_version, to, MasterDealStoreError::query(OP))
        .await?;
    let row = get_in(&mut tx, id).await?.ok_or_else(|| MasterDealStoreError::not_found("master deal", id))?;
    outbox::append(&mut tx, AGGREGATE, row.id, "masterdeal.deal.status_changed", &row).await?;
    tx.commit().await.map_err(MasterDealStoreError::query(OP))?;
    Ok(row)
}

/// Creates the deal with this CRM id, or updates the one that exists at `expected_version`
/// (required then: `VersionRequired`); whether it created it. What REST's `POST /deals` and
/// GraphQL's `upsertDeal` do: never an overwrite blind.
pub async fn save_deal(
    store: &Store,
    deal: NewDeal,
    expected_version: Option<i64>,
) -> Result<(DealRow, bool), MasterDealStoreError> {
    match get_by_crm_id(store, &deal.crm_id).await? {
        None => Ok((create_deal(store, deal).await?, true)),
        Some(current) => {
            let expected_version = expected_version.ok_or_else(|| MasterDealStoreError::VersionRequired {
                what: "master deal",
                id: current.id.to_string(),
                actual: current.version,
            })?;
            Ok((update_deal(store, current.id, expected_version, deal).await?, false))
        }
    }
}
