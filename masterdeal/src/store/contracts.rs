//! The `contract` repository: contracts upserted by number, each checked against its deal's
//! approved media plan, and their lifecycle. Every write appends its outbox event in its
//! transaction.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use junction_engine::store::Store;
use sqlx::{AnyConnection, AssertSqlSafe};
use uuid::Uuid;

use super::columns::wire_name;
pub use super::contract_row::ContractRow;
use super::contract_row::{CONTRACT_COLUMNS, decode};
use super::versioned::{Expected, check, set_status, why_not_updated};
use super::{MasterDealStoreError, begin, deals, money, now_millis, outbox, plans, to_domain};
use crate::domain::{
    Contract, ContractStatus, Lifecycle, Money, PaymentStatus, RuleError, contract_matches_plan, transition,
};

const AGGREGATE: &str = "contract";
const WHAT: &str = "contract";

/// A contract as billing or a manager writes it; its status moves only by
/// [`transition_contract`].
#[derive(Debug, Clone)]
pub struct NewContract {
    pub deal_id: Uuid,
    pub number: String,
    pub date: NaiveDate,
    pub amount: Money,
    /// Required when `amount` differs from the approved plan's total.
    pub amount_override_reason: Option<String>,
    pub billing_ids: BTreeMap<String, String>,
    pub payment_status: PaymentStatus,
}

/// Creates the contract with this number (a draft, version 1, `masterdeal.contract.created`)
/// or overwrites it (version + 1, `masterdeal.contract.updated`); `true` when created.
/// `expected` says which version of an existing contract may be changed ([`Expected`]).
/// Either way its amount must match the deal's approved plan or say why not.
pub async fn upsert_contract(
    store: &Store,
    contract: NewContract,
    expected: Expected,
) -> Result<(ContractRow, bool), MasterDealStoreError> {
    const OP: &str = "upsert_contract";
    let mut tx = begin(store, OP).await?;
    deals::get_in(&mut tx, contract.deal_id)
        .await?
        .ok_or_else(|| MasterDealStoreError::not_found("master deal", contract.deal_id))?;
    let existing = by_number_in(&mut tx, &contract.number).await?;
    check_against_plan(&mut tx, &contract, existing.as_ref()).await?;
    let (id, created) = match existing {
        Some(existing) => {
            if existing.deal_id != contract.deal_id {
                return Err(MasterDealStoreError::Invalid(format!(
                    "contract number `{}` belongs to deal {}, not {}: use another number",
                    contract.number, existing.deal_id, contract.deal_id
                )));
            }
            let expected = match expected {
                Expected::Version(v) => v,
                Expected::AnyVersion => existing.version,
                Expected::New => {
                    let (id, actual) = (existing.id.to_string(), existing.version);
                    return Err(MasterDealStoreError::VersionRequired { what: WHAT, id, actual });
                }
            };
            check(WHAT, existing.id, expected, existing.version)?;
            update(store, &mut tx, existing.id, expected, &contract).await?;
            (existing.id, false)
        }
        None if matches!(expected, Expected::Version(_)) => {
            return Err(MasterDealStoreError::not_found("contract number", &contract.number));
        }
        None => (insert(store, &mut tx, &contract).await?, true),
    };
    let row = contract_in(&mut tx, id).await?.ok_or_else(|| MasterDealStoreError::not_found(WHAT, id))?;
    let event = if created { "masterdeal.contract.created" } else { "masterdeal.contract.updated" };
    outbox::append(&mut tx, AGGREGATE, id, event, &row).await?;
    tx.commit().await.map_err(MasterDealStoreError::query(OP))?;
    Ok((row, created))
}

async fn check_against_plan(
    conn: &mut AnyConnection,
    contract: &NewContract,
    existing: Option<&ContractRow>,
) -> Result<(), MasterDealStoreError> {
    let plan = plans::approved_in(conn, contract.deal_id)
        .await?
        .ok_or(RuleError::NoApprovedPlan { deal: contract.deal_id })?;
    let domain = Contract {
        id: existing.map_or_else(Uuid::nil, |e| e.id),
        deal_id: contract.deal_id,
        number: contract.number.clone(),
        date: contract.date,
        amount: contract.amount,
        amount_override_reason: contract.amount_override_reason.clone(),
        status: existing.map_or(ContractStatus::Draft, |e| e.status),
        billing_ids: contract.billing_ids.clone(),
        payment_status: contract.payment_status,
    };
    contract_matches_plan(&domain, &to_domain::plan(&plan)?)?;
    Ok(())
}

async fn insert(store: &Store, conn: &mut AnyConnection, c: &NewContract) -> Result<Uuid, MasterDealStoreError> {
    let id = Uuid::now_v7();
    let sql = format!(
        "INSERT INTO contract (id, deal_id, number, contract_date, amount, currency, \
         amount_override_reason, billing_ids, payment_status, created_at, status, version, updated_at) \
         VALUES ($1, $2, $3, $4, {}, $6, $7, $8, $9, $10, 'draft', 1, $10) \
         ON CONFLICT (number) DO NOTHING RETURNING id",
        money(store, 5)
    );
    let inserted = sqlx::query(AssertSqlSafe(sql))
        .bind(id.to_string())
        .bind(c.deal_id.to_string())
        .bind(c.number.clone())
        .bind(c.date.to_string())
        .bind(c.amount.amount.to_string())
        .bind(c.amount.currency.code().to_owned())
        .bind(c.amount_override_reason.clone())
        .bind(to_domain::ids_json(&c.billing_ids))
        .bind(wire_name(c.payment_status))
        .bind(now_millis())
        .fetch_optional(conn)
        .await
        .map_err(MasterDealStoreError::query("upsert_contract insert"))?;
    // Someone created this number since we looked: a retry updates theirs.
    inserted.map(|_| id).ok_or_else(|| MasterDealStoreError::Raced { what: "contract number", key: c.number.clone() })
}

async fn update(
    store: &Store,
    conn: &mut AnyConnection,
    id: Uuid,
    expected: i64,
    c: &NewContract,
) -> Result<(), MasterDealStoreError> {
    let sql = format!(
        "UPDATE contract SET contract_date = $3, amount = {}, currency = $5, amount_override_reason = $6, \
         billing_ids = $7, payment_status = $8, version = version + 1, updated_at = $9 \
         WHERE id = $1 AND version = $2 RETURNING id",
        money(store, 4)
    );
    let updated = sqlx::query(AssertSqlSafe(sql))
        .bind(id.to_string())
        .bind(expected)
        .bind(c.date.to_string())
        .bind(c.amount.amount.to_string())
        .bind(c.amount.currency.code().to_owned())
        .bind(c.amount_override_reason.clone())
        .bind(to_domain::ids_json(&c.billing_ids))
        .bind(wire_name(c.payment_status))
        .bind(now_millis())
        .fetch_optional(&mut *conn)
        .await
        .map_err(MasterDealStoreError::query("upsert_contract update"))?;
    match updated {
        Some(_) => Ok(()),
        None => Err(why_not_updated(conn, "contract", WHAT, id, expected).await?),
    }
}

pub async fn get_contract(store: &Store, id: Uuid) -> Result<Option<ContractRow>, MasterDealStoreError> {
    let mut conn = store.pool().acquire().await.map_err(MasterDealStoreError::query("get_contract"))?;
    contract_in(&mut conn, id).await
}

/// The deal's contracts in creation order.
pub async fn list_contracts(store: &Store, deal_id: Uuid) -> Result<Vec<ContractRow>, MasterDealStoreError> {
    let sql = format!("SELECT {CONTRACT_COLUMNS} FROM contract WHERE deal_id = $1 ORDER BY id");
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(deal_id.to_string())
        .fetch_all(store.pool())
        .await
        .map_err(MasterDealStoreError::query("list_contracts"))?;
    rows.iter().map(decode).collect()
}

/// Signed contracts not yet paid in full, oldest first: what a poll of billing asks about.
pub async fn unpaid_contracts(store: &Store) -> Result<Vec<ContractRow>, MasterDealStoreError> {
    let sql = format!(
        "SELECT {CONTRACT_COLUMNS} FROM contract WHERE status = 'signed' AND payment_status <> 'paid' ORDER BY id"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .fetch_all(store.pool())
        .await
        .map_err(MasterDealStoreError::query("unpaid_contracts"))?;
    rows.iter().map(decode).collect()
}

pub(super) async fn contract_in(
    conn: &mut AnyConnection,
    id: Uuid,
) -> Result<Option<ContractRow>, MasterDealStoreError> {
    contract_where(conn, "id = $1", id.to_string()).await
}

async fn by_number_in(conn: &mut AnyConnection, number: &str) -> Result<Option<ContractRow>, MasterDealStoreError> {
    contract_where(conn, "number = $1", number.to_owned()).await
}

async fn contract_where(
    conn: &mut AnyConnection,
    condition: &'static str,
    key: String,
) -> Result<Option<ContractRow>, MasterDealStoreError> {
    let sql = format!("SELECT {CONTRACT_COLUMNS} FROM contract WHERE {condition}");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(key)
        .fetch_optional(conn)
        .await
        .map_err(MasterDealStoreError::query("get_contract"))?;
    row.as_ref().map(decode).transpose()
}

/// Moves the contract to `to` if the lifecycle allows it and it is still at
/// `expected_version`. Events `masterdeal.contract.sent|signed|terminated`.
pub async fn transition_contract(
    store: &Store,
    id: Uuid,
    expected_version: i64,
    to: ContractStatus,
) -> Result<ContractRow, MasterDealStoreError> {
    const OP: &str = "transition_contract";
    let mut tx = begin(store, OP).await?;
    let contract = contract_in(&mut tx, id).await?.ok_or_else(|| MasterDealStoreError::not_found(WHAT, id))?;
    check(WHAT, id, expected_version, contract.version)?;
    transition(contract.status, to)?;
    set_status(&mut tx, ("contract", WHAT), id, expected_version, to, MasterDealStoreError::query(OP)).await?;
    let row = contract_in(&mut tx, id).await?.ok_or_else(|| MasterDealStoreError::not_found(WHAT, id))?;
    let event = format!("masterdeal.contract.{}", to.as_str());
    outbox::append(&mut tx, AGGREGATE, id, &event, &row).await?;
    tx.commit().await.map_err(MasterDealStoreError::query(OP))?;
    Ok(row)
}
