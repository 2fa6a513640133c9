//! Media plans and their proposals: `add_media_plan`, `approve_media_plan`,
//! `transition_media_plan`, `attach_proposal`, `transition_proposal`.

use chrono::NaiveDate;
use junction_engine::store::Store;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::{TransitionIn, decimal, decimal_opt, input, rejected, reply};
use crate::domain::{Currency, Kpis, Money, Period, PlanStatus, ProposalStatus};
use crate::store::{self, MasterDealStoreError, NewPlan, NewPlanLine, NewProposal};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanIn {
    deal_id: Uuid,
    /// `manual` (the default) or `llm`.
    #[serde(default = "manual")]
    source: String,
    prompt_template_version: Option<String>,
    model: Option<String>,
    /// The lines' currency; the deal's when absent.
    currency: Option<String>,
    lines: Vec<LineIn>,
}

fn manual() -> String {
    "manual".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineIn {
    channel: String,
    platform: String,
    format: String,
    flight_from: NaiveDate,
    flight_to: NaiveDate,
    budget: Value,
    impressions: Option<u64>,
    clicks: Option<u64>,
    reach: Option<u64>,
    cpm: Option<Value>,
    ctr: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveIn {
    id: Uuid,
    expected_version: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposalIn {
    media_plan_id: Uuid,
    body_markdown: String,
    /// Rendered from the Markdown when absent.
    body_html: Option<String>,
    generated_by: String,
    prompt_template_version: Option<String>,
}

pub(crate) async fn add_media_plan(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let q: PlanIn = input(body)?;
    let currency = match &q.currency {
        Some(code) => Currency::parse(code).map_err(rejected)?,
        None => store::currency_of_deal(store, q.deal_id).await?,
    };
    let lines = q.lines.into_iter().map(|line| new_line(line, currency)).collect::<Result<_, _>>()?;
    let plan = NewPlan {
        deal_id: q.deal_id,
        source: q.source,
        prompt_template_version: q.prompt_template_version,
        model: q.model,
        lines,
    };
    let row = store::add_media_plan(store, plan).await?;
    Ok(reply(&row))
}

fn new_line(line: LineIn, currency: Currency) -> Result<NewPlanLine, MasterDealStoreError> {
    Ok(NewPlanLine {
        flight: Period::new(line.flight_from, line.flight_to).map_err(rejected)?,
        budget: Money::new(decimal("budget", &line.budget)?, currency),
        kpis: Kpis {
            impressions: line.impressions,
            clicks: line.clicks,
            reach: line.reach,
            cpm: decimal_opt("cpm", line.cpm.as_ref())?,
            ctr: decimal_opt("ctr", line.ctr.as_ref())?,
        },
        channel: line.channel,
        platform: line.platform,
        format: line.format,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OfDealIn {
    deal_id: Uuid,
}

/// `{"deal_id"}`: the deal's approved plan with its lines (not found when none is approved).
pub(crate) async fn get_approved_plan(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let OfDealIn { deal_id } = input(body)?;
    let plan = store::approved_plan(store, deal_id)
        .await?
        .ok_or_else(|| MasterDealStoreError::not_found("approved media plan of the deal", deal_id))?;
    Ok(reply(&plan))
}

/// Approves a proposed plan; a draft must be proposed first, by its own transition.
pub(crate) async fn approve_media_plan(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let q: ApproveIn = input(body)?;
    let row = store::transition_plan(store, q.id, q.expected_version, PlanStatus::Approved).await?;
    Ok(reply(&row))
}

pub(crate) async fn attach_proposal(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let q: ProposalIn = input(body)?;
    let proposal = NewProposal {
        media_plan_id: q.media_plan_id,
        body_markdown: q.body_markdown,
        body_html: q.body_html,
        generated_by: q.generated_by,
        prompt_template_version: q.prompt_template_version,
    };
    let row = store::attach_proposal(store, proposal).await?;
    Ok(reply(&row))
}

/// Any move of the plan's lifecycle, `approve_media_plan` included.
pub(crate) async fn transition_media_plan(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let q: TransitionIn<PlanStatus> = input(body)?;
    let row = store::transition_plan(store, q.id, q.expected_version, q.to).await?;
    Ok(reply(&row))
}

pub(crate) async fn transition_proposal(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let q: TransitionIn<ProposalStatus> = input(body)?;
    let row = store::transition_proposal(store, q.id, q.expected_version, q.to).await?;
    Ok(reply(&row))
}
