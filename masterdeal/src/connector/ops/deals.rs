//! The master deal's operations: upsert by external id, update by id, get, list and
//! transition.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use junction_engine::store::Store;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{decimal, input, on_fresh_reads, rejected};
use crate::domain::{Currency, DealStatus, Inn, Kpp, Lifecycle};
use crate::store::{self, DealFilter, DealRow, MasterDealStoreError, NewDeal};

/// Stands in for a missing owner: the column is required, the CRM field is not.
const NO_OWNER: &str = "unassigned";
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// A master deal as `transforms/crm_deal_to_master_deal.rhai` makes it. `channels` and
/// `source` are accepted but not stored yet.
#[derive(Deserialize)]
struct MasterDealIn {
    /// `<system>:<id>`, e.g. `crm:D-100245`; the id is the deal's CRM id.
    external_id: String,
    name: String,
    advertiser: AdvertiserIn,
    owner: Option<String>,
    amount: Option<Value>,
    currency: String,
    /// Preferred over `amount` when both are present.
    budget: Option<Value>,
    /// At creation, `draft` when absent: a deal entered by hand starts there. On an update,
    /// the current one if given (a status moves only by `transition`).
    status: Option<DealStatus>,
    /// The deal's dates; the day it arrives when the CRM sends none.
    period: Option<PeriodIn>,
}

#[derive(Deserialize)]
struct AdvertiserIn {
    name: String,
    inn: String,
    kpp: Option<String>,
}

#[derive(Deserialize)]
struct PeriodIn {
    from: NaiveDate,
    to: NaiveDate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetIn {
    id: Uuid,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListIn {
    status: Option<DealStatus>,
    owner: Option<String>,
    after: Option<Uuid>,
    limit: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransitionIn {
    id: Uuid,
    to: DealStatus,
    expected_version: i64,
}

fn row_json(row: &DealRow) -> Value {
    serde_json::to_value(row).expect("a deal row always serializes to JSON")
}

pub(crate) async fn upsert(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let deal = new_deal(input(body)?)?;
    let (row, created) = store::upsert_by_crm_id(store, deal).await?;
    let mut reply = row_json(&row);
    reply["created"] = Value::Bool(created);
    Ok(reply)
}

fn new_deal(deal: MasterDealIn) -> Result<NewDeal, MasterDealStoreError> {
    let (system, crm_id) = deal
        .external_id
        .split_once(':')
        .filter(|(s, id)| !s.is_empty() && !id.is_empty())
        .ok_or_else(|| rejected(format!("external_id `{}` is not `<system>:<id>`", deal.external_id)))?;
    let currency = Currency::parse(&deal.currency).map_err(rejected)?;
    let inn = Inn::parse(&deal.advertiser.inn).map_err(rejected)?;
    let kpp = deal.advertiser.kpp.as_deref().map(Kpp::parse).transpose().map_err(rejected)?;
    let budget = deal.budget.or(deal.amount).ok_or_else(|| rejected("the deal has neither budget nor amount"))?;
    let budget = decimal("budget", &budget)?;
    let today = chrono::Utc::now().date_naive();
    let (period_from, period_to) = deal.period.map_or((today, today), |p| (p.from, p.to));
    if period_from > period_to {
        return Err(rejected(format!("the period starts on {period_from}, after it ends on {period_to}")));
    }
    Ok(NewDeal {
        crm_id: crm_id.to_owned(),
        external_ids: BTreeMap::from([(system.to_owned(), crm_id.to_owned())]),
        advertiser_name: deal.advertiser.name,
        advertiser_inn: inn.as_str().to_owned(),
        advertiser_kpp: kpp.map(|k| k.as_str().to_owned()),
        owner: deal.owner.unwrap_or_else(|| NO_OWNER.to_owned()),
        title: deal.name,
        budget,
        currency: currency.code().to_owned(),
        period_from,
        period_to,
        status: deal.status,
    })
}

/// Where `update_deal` finds its deal, beside the fields of [`MasterDealIn`].
#[derive(Deserialize)]
struct UpdateIn {
    id: Uuid,
    expected_version: i64,
}

/// Replaces the fields of the deal `id` at `expected_version` with a deal as
/// `upsert_deal_by_external_id` takes it. The status stays (see [`NewDeal::status`]).
pub(crate) async fn update_deal(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let UpdateIn { id, expected_version } = input(body)?;
    let row = store::update_deal(store, id, expected_version, new_deal(input(body)?)?).await?;
    Ok(row_json(&row))
}

/// Creates the deal, or updates the one with its external id at `expected_version` (required
/// then): REST's `POST /deals`.
pub(crate) async fn save(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let expected_version = body.get("expected_version").and_then(Value::as_i64);
    let (row, created) = store::save_deal(store, new_deal(input(body)?)?, expected_version).await?;
    let mut reply = row_json(&row);
    reply["created"] = Value::Bool(created);
    Ok(reply)
}

pub(crate) async fn get(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let GetIn { id } = input(body)?;
    match store::get(store, id).await? {
        Some(row) => Ok(row_json(&row)),
        None => Err(MasterDealStoreError::NotFound { what: "master deal", id: id.to_string() }),
    }
}

pub(crate) async fn list(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let q: ListIn = input(body)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let filter = DealFilter { status: q.status, owner: q.owner, after_id: q.after, limit: Some(limit) };
    let rows = store::list(store, &filter).await?;
    // A full page may have more after it; a short one is the last.
    let next = rows.last().filter(|_| rows.len() == limit as usize).map(|r| r.id.to_string());
    Ok(json!({ "items": rows.iter().map(row_json).collect::<Vec<_>>(), "next": next }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceIn {
    id: Uuid,
    to: DealStatus,
}

/// `{"id", "to"}`: moves the deal forward to `to`, at whatever version it is, through the
/// lifecycle's statuses in between (each move its own event; see [`way_forward`]): a contract
/// signed takes a deal at proposal_sent through negotiation to signed. A deal at `to` already, or past it, stays
/// (a redelivered or late event changes nothing); one that cannot get there (cancelled) is
/// refused naming its allowed moves. For routes that make a deal follow what happened
/// elsewhere: a КП sent, a contract signed, a payment.
pub(crate) async fn advance_deal(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let q: AdvanceIn = input(body)?;
    on_fresh_reads("master deal", q.id, || advance_once(store, q.id, q.to)).await
}

/// One read of the deal, and its moves from what was read.
async fn advance_once(store: &Store, id: Uuid, to: DealStatus) -> Result<Value, MasterDealStoreError> {
    let mut deal = store::get(store, id).await?.ok_or_else(|| MasterDealStoreError::not_found("master deal", id))?;
    let Some(way) = way_forward(deal.status, to) else {
        // No way there: the direct move's refusal says what is allowed.
        return store::transition_deal(store, id, deal.version, to).await.map(|row| row_json(&row));
    };
    for status in way {
        deal = store::transition_deal(store, id, deal.version, status).await?;
    }
    Ok(row_json(&deal))
}

/// The statuses a deal at `from` moves through to reach `to`, only ever forward (in the
/// lifecycle's order), and through `planning` or `cancelled` only to end there: a deal is put
/// into planning on purpose (its media plan is drafted then), never walked through it. Empty
/// when it is at `to` or past it, `None` when it cannot get there.
fn way_forward(from: DealStatus, to: DealStatus) -> Option<Vec<DealStatus>> {
    let rank = |s: DealStatus| DealStatus::ALL.iter().position(|a| *a == s);
    // Past it: further along the way (a cancelled deal is not further along, it left the way).
    let past = from != DealStatus::Cancelled && to != DealStatus::Cancelled && rank(from) > rank(to);
    if from == to || past {
        return Some(Vec::new());
    }
    let mut queue = std::collections::VecDeque::from([(from, Vec::new())]);
    while let Some((at, way)) = queue.pop_front() {
        for &next in at.allowed_from() {
            let only_to_end_there = matches!(next, DealStatus::Planning | DealStatus::Cancelled) && next != to;
            if rank(next) <= rank(at) || only_to_end_there {
                continue;
            }
            let mut way = way.clone();
            way.push(next);
            if next == to {
                return Some(way);
            }
            queue.push_back((next, way));
        }
    }
    None
}

pub(crate) async fn transition(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let q: TransitionIn = input(body)?;
    let row = store::transition_deal(store, q.id, q.expected_version, q.to).await?;
    Ok(row_json(&row))
}

#[cfg(test)]
mod tests {
    use super::way_forward;
    use crate::domain::DealStatus::*;

    #[test]
    fn a_deal_follows_forward_through_the_statuses_between_and_never_back() {
        assert_eq!(way_forward(ProposalSent, Signed), Some(vec![Negotiation, Signed]));
        assert_eq!(way_forward(Signed, InFlight), Some(vec![InFlight]));
        assert_eq!(way_forward(Planning, InFlight), Some(vec![ProposalSent, Negotiation, Signed, InFlight]));
        assert_eq!(way_forward(Draft, Planning), Some(vec![Planning]));
        // Not through planning: a draft deal's КП or contract does not start its drafting.
        assert_eq!(way_forward(Draft, ProposalSent), None);
        // There, or past it: nothing to do (negotiation → planning is a move back, not taken).
        assert_eq!(way_forward(Signed, Signed), Some(vec![]));
        assert_eq!(way_forward(Negotiation, ProposalSent), Some(vec![]));
        assert_eq!(way_forward(Draft, Cancelled), Some(vec![Cancelled]));
        // Cancelled and completed deals go nowhere.
        assert_eq!(way_forward(Cancelled, Signed), None);
        assert_eq!(way_forward(Completed, Cancelled), None);
    }
}
