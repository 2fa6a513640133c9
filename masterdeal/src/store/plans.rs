//! The `media_plan` repository: a deal's numbered plans with their lines, and their
//! lifecycle, where approval checks the plan against the deal's budget and keeps one
//! approved plan per deal. Every write appends its outbox event in its transaction.

use junction_engine::store::Store;
use sqlx::{AnyConnection, AssertSqlSafe};
use uuid::Uuid;

use super::plan_row::{LINE_COLUMNS, PLAN_COLUMNS, decode_line, decode_plan};
pub use super::plan_row::{PlanLineRow, PlanRow};
use super::versioned::{check, is_unique_violation, set_status};
use super::{MasterDealStoreError, begin, deals, money, now_millis, outbox, to_domain};
use crate::domain::{Kpis, Money, Period, PlanStatus, RuleError, plan_within_budget, transition};

const AGGREGATE: &str = "media_plan";
const WHAT: &str = "media plan";
/// Tries at taking the deal's next plan number before giving up as raced.
const NUMBER_TRIES: usize = 3;

/// A plan as its author hands it in; the store numbers it, totals it and starts it as draft.
#[derive(Debug, Clone)]
pub struct NewPlan {
    pub deal_id: Uuid,
    /// `manual` or `llm`; an `llm` plan names its `prompt_template_version`.
    pub source: String,
    pub prompt_template_version: Option<String>,
    pub model: Option<String>,
    /// At least one; positions follow this order.
    pub lines: Vec<NewPlanLine>,
}

/// One line; its budget must be in the deal's currency.
#[derive(Debug, Clone)]
pub struct NewPlanLine {
    pub channel: String,
    pub platform: String,
    pub format: String,
    pub flight: Period,
    pub budget: Money,
    pub kpis: Kpis,
}

/// Adds the deal's next plan (number = the deal's highest + 1) as a draft, totalled in the
/// deal's currency. Event `masterdeal.media_plan.added`.
pub async fn add_media_plan(store: &Store, plan: NewPlan) -> Result<PlanRow, MasterDealStoreError> {
    const OP: &str = "add_media_plan";
    check_source(&plan)?;
    let mut tx = begin(store, OP).await?;
    let deal = deals::get_in(&mut tx, plan.deal_id)
        .await?
        .ok_or_else(|| MasterDealStoreError::not_found("master deal", plan.deal_id))?;
    let currency = to_domain::currency("master deal", &deal.id.to_string(), &deal.currency)?;
    let total = Money::sum(currency, plan.lines.iter().map(|l| l.budget)).map_err(RuleError::from)?;
    let id = Uuid::now_v7();
    let now = now_millis();
    let insert = format!(
        "INSERT INTO media_plan (id, deal_id, number, status, source, prompt_template_version, model, \
         total, currency, version, created_at, updated_at) \
         SELECT $1, $2, COALESCE(MAX(number), 0) + 1, 'draft', $3, $4, $5, {}, $7, 1, $8, $8 \
         FROM media_plan WHERE deal_id = $2 \
         ON CONFLICT (deal_id, number) DO NOTHING RETURNING id",
        money(store, 6)
    );
    let mut inserted = false;
    // On Postgres a concurrent add may take the same number first; ours then does nothing
    // and the next try, a new statement, sees its number.
    for _ in 0..NUMBER_TRIES {
        inserted = sqlx::query(AssertSqlSafe(insert.clone()))
            .bind(id.to_string())
            .bind(plan.deal_id.to_string())
            .bind(plan.source.clone())
            .bind(plan.prompt_template_version.clone())
            .bind(plan.model.clone())
            .bind(total.amount.to_string())
            .bind(currency.code().to_owned())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(MasterDealStoreError::query(OP))?
            .is_some();
        if inserted {
            break;
        }
    }
    if !inserted {
        return Err(MasterDealStoreError::Raced { what: "next media plan number of deal", key: deal.id.to_string() });
    }
    for (position, line) in (1_i64..).zip(&plan.lines) {
        insert_line(store, &mut tx, id, position, line).await?;
    }
    let row = plan_in(&mut tx, id).await?.ok_or_else(|| MasterDealStoreError::not_found(WHAT, id))?;
    outbox::append(&mut tx, AGGREGATE, id, "masterdeal.media_plan.added", &row).await?;
    tx.commit().await.map_err(MasterDealStoreError::query(OP))?;
    Ok(row)
}

fn check_source(plan: &NewPlan) -> Result<(), MasterDealStoreError> {
    let invalid = |m: &str| Err(MasterDealStoreError::Invalid(m.to_owned()));
    match plan.source.as_str() {
        "manual" => {}
        "llm" if plan.prompt_template_version.is_none() => {
            return invalid("an `llm` media plan needs its prompt_template_version, so it can be reproduced");
        }
        "llm" => {}
        other => return invalid(&format!("media plan source `{other}` is neither `manual` nor `llm`")),
    }
    if plan.lines.is_empty() {
        return invalid("a media plan needs at least one line");
    }
    Ok(())
}

async fn insert_line(
    store: &Store,
    conn: &mut AnyConnection,
    plan_id: Uuid,
    position: i64,
    line: &NewPlanLine,
) -> Result<(), MasterDealStoreError> {
    let count = |name: &str, n: Option<u64>| {
        n.map(i64::try_from)
            .transpose()
            .map_err(|_| MasterDealStoreError::Invalid(format!("line {position}: {name} is too large to store")))
    };
    let sql = format!(
        "INSERT INTO media_plan_line (id, media_plan_id, position, channel, platform, format, \
         flight_from, flight_to, budget, impressions, clicks, reach, cpm, ctr) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {}, $10, $11, $12, {}, {})",
        money(store, 9),
        money(store, 13),
        money(store, 14)
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(Uuid::now_v7().to_string())
        .bind(plan_id.to_string())
        .bind(position)
        .bind(line.channel.clone())
        .bind(line.platform.clone())
        .bind(line.format.clone())
        .bind(line.flight.from().to_string())
        .bind(line.flight.to().to_string())
        .bind(line.budget.amount.to_string())
        .bind(count("impressions", line.kpis.impressions)?)
        .bind(count("clicks", line.kpis.clicks)?)
        .bind(count("reach", line.kpis.reach)?)
        .bind(line.kpis.cpm.map(|d| d.to_string()))
        .bind(line.kpis.ctr.map(|d| d.to_string()))
        .execute(conn)
        .await
        .map_err(MasterDealStoreError::query("add_media_plan line"))?;
    Ok(())
}

pub async fn get_plan(store: &Store, id: Uuid) -> Result<Option<PlanRow>, MasterDealStoreError> {
    let mut conn = store.pool().acquire().await.map_err(MasterDealStoreError::query("get_plan"))?;
    plan_in(&mut conn, id).await
}

/// The deal's plans by number.
pub async fn list_plans(store: &Store, deal_id: Uuid) -> Result<Vec<PlanRow>, MasterDealStoreError> {
    let mut conn = store.pool().acquire().await.map_err(MasterDealStoreError::query("list_plans"))?;
    plans_where(&mut conn, "deal_id = $1 ORDER BY number", deal_id).await
}

/// The deal's approved plan, if it has one.
pub async fn approved_plan(store: &Store, deal_id: Uuid) -> Result<Option<PlanRow>, MasterDealStoreError> {
    let mut conn = store.pool().acquire().await.map_err(MasterDealStoreError::query("approved_plan"))?;
    approved_in(&mut conn, deal_id).await
}

/// The plan that holds this line.
pub async fn plan_of_line(store: &Store, line_id: Uuid) -> Result<Option<PlanRow>, MasterDealStoreError> {
    let mut conn = store.pool().acquire().await.map_err(MasterDealStoreError::query("plan_of_line"))?;
    plan_of_line_in(&mut conn, line_id).await
}

pub(super) async fn plan_in(conn: &mut AnyConnection, id: Uuid) -> Result<Option<PlanRow>, MasterDealStoreError> {
    Ok(plans_where(conn, "id = $1", id).await?.pop())
}

pub(super) async fn approved_in(
    conn: &mut AnyConnection,
    deal_id: Uuid,
) -> Result<Option<PlanRow>, MasterDealStoreError> {
    Ok(plans_where(conn, "deal_id = $1 AND status = 'approved'", deal_id).await?.pop())
}

pub(super) async fn plan_of_line_in(
    conn: &mut AnyConnection,
    line_id: Uuid,
) -> Result<Option<PlanRow>, MasterDealStoreError> {
    Ok(plans_where(conn, "id = (SELECT media_plan_id FROM media_plan_line WHERE id = $1)", line_id).await?.pop())
}

/// Plans matching `condition` (our SQL, one `$1`), each with its lines.
async fn plans_where(
    conn: &mut AnyConnection,
    condition: &'static str,
    key: Uuid,
) -> Result<Vec<PlanRow>, MasterDealStoreError> {
    const OP: &str = "read media plans";
    let sql = format!("SELECT {PLAN_COLUMNS} FROM media_plan WHERE {condition}");
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(key.to_string())
        .fetch_all(&mut *conn)
        .await
        .map_err(MasterDealStoreError::query(OP))?;
    let mut plans = rows.iter().map(decode_plan).collect::<Result<Vec<_>, _>>()?;
    let sql = format!("SELECT {LINE_COLUMNS} FROM media_plan_line WHERE media_plan_id = $1 ORDER BY position");
    for plan in &mut plans {
        let lines = sqlx::query(AssertSqlSafe(sql.clone()))
            .bind(plan.id.to_string())
            .fetch_all(&mut *conn)
            .await
            .map_err(MasterDealStoreError::query(OP))?;
        plan.lines = lines.iter().map(decode_line).collect::<Result<_, _>>()?;
    }
    Ok(plans)
}

/// Moves the plan to `to` if the lifecycle allows it and it is still at `expected_version`.
/// Approval also checks the plan against the deal's budget and that no other plan of the
/// deal is approved. Events `masterdeal.media_plan.proposed|approved|rejected|reworked`.
pub async fn transition_plan(
    store: &Store,
    id: Uuid,
    expected_version: i64,
    to: PlanStatus,
) -> Result<PlanRow, MasterDealStoreError> {
    const OP: &str = "transition_plan";
    let mut tx = begin(store, OP).await?;
    let plan = plan_in(&mut tx, id).await?.ok_or_else(|| MasterDealStoreError::not_found(WHAT, id))?;
    check(WHAT, id, expected_version, plan.version)?;
    transition(plan.status, to)?;
    if to == PlanStatus::Approved {
        check_approval(&mut tx, &plan).await?;
    }
    set_status(&mut tx, ("media_plan", WHAT), id, expected_version, to, |e| match e {
        // The one-approved-plan index: another approval of this deal committed meanwhile;
        // a retry reports which plan it was.
        e if is_unique_violation(&e) => {
            MasterDealStoreError::Raced { what: "approval of the media plans of deal", key: plan.deal_id.to_string() }
        }
        e => MasterDealStoreError::query(OP)(e),
    })
    .await?;
    let row = plan_in(&mut tx, id).await?.ok_or_else(|| MasterDealStoreError::not_found(WHAT, id))?;
    let event = match to {
        PlanStatus::Draft => "masterdeal.media_plan.reworked",
        PlanStatus::Proposed => "masterdeal.media_plan.proposed",
        PlanStatus::Approved => "masterdeal.media_plan.approved",
        PlanStatus::Rejected => "masterdeal.media_plan.rejected",
    };
    outbox::append(&mut tx, AGGREGATE, id, event, &row).await?;
    tx.commit().await.map_err(MasterDealStoreError::query(OP))?;
    Ok(row)
}

async fn check_approval(conn: &mut AnyConnection, plan: &PlanRow) -> Result<(), MasterDealStoreError> {
    if let Some(approved) = approved_in(conn, plan.deal_id).await? {
        let approved_number = to_domain::plan(&approved)?.version;
        return Err(RuleError::AnotherPlanApproved { approved: approved.id, approved_number }.into());
    }
    let deal = deals::get_in(conn, plan.deal_id)
        .await?
        .ok_or_else(|| MasterDealStoreError::not_found("master deal", plan.deal_id))?;
    plan_within_budget(&to_domain::deal(&deal)?, &to_domain::plan(plan)?)?;
    Ok(())
}
