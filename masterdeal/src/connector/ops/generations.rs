//! Drafting with a model: `request_generation` (a draft asked for by a route), `check_media_plan` (the `llm` step's validation hook),
//! `finish_generation` (what was drafted is stored) and `fail_generation` (a route's
//! `dead_letter`: the generation failed, and why).

use junction_engine::gateway::problem::TYPE_BASE;
use junction_engine::store::Store;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{input, rejected, reply};
use crate::domain::{GenerationKind, GenerationStatus};
use crate::store::{self, MasterDealStoreError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestIn {
    deal_id: Option<Uuid>,
    media_plan_id: Option<Uuid>,
}

/// `{"deal_id"}`: a media plan to draft for the deal; `{"media_plan_id"}`: a КП to draft for
/// the plan (approved). The pending generation and its event, as the API's
/// `POST …/media-plan-generations` and `…/proposal-generations` write them.
pub(crate) async fn request_generation(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let q: RequestIn = input(body)?;
    let (kind, subject) = match (q.deal_id, q.media_plan_id) {
        (Some(deal), None) => (GenerationKind::MediaPlan, deal),
        (None, Some(plan)) => (GenerationKind::Proposal, plan),
        _ => {
            return Err(rejected(
                "request_generation takes `deal_id` (a media plan) or `media_plan_id` (a КП): one of the two",
            ));
        }
    };
    let row = store::request_generation(store, kind, subject).await?;
    Ok(reply(&row))
}

/// What an `llm` step's `validate` hook is sent: the model's answer and the step's input.
#[derive(Deserialize)]
struct CheckIn {
    output: Value,
    input: Value,
}

/// `{"errors": [...]}`: what is wrong with the drafted plan `output` for the deal of `input`
/// (its `deal.id`, or `deal_id`), each error naming where; none when it can be stored.
pub(crate) async fn check_media_plan(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let q: CheckIn = input(body)?;
    let deal = q.input.pointer("/deal/id").or_else(|| q.input.get("deal_id"));
    let deal_id: Uuid = deal
        .and_then(Value::as_str)
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| rejected("check_media_plan: the step's input names its deal as `deal.id` or `deal_id`"))?;
    let errors = store::check_drafted_plan(store, deal_id, &q.output).await?;
    Ok(json!({ "errors": errors }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FinishIn {
    id: Uuid,
    result_id: Uuid,
}

/// `{"id", "result_id"}`: the generation is `done`, and drafted what `result_id` is.
pub(crate) async fn finish_generation(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let q: FinishIn = input(body)?;
    let row = store::end_generation(store, q.id, GenerationStatus::Done, Some(q.result_id), None).await?;
    Ok(reply(&row))
}

/// The dead-letter envelope of a generation's run (`{dead_letter_id, route, step, error,
/// message: {body: {generation_id}}}`): the generation `failed`, its problem saying why and
/// where the message waits to be replayed.
pub(crate) async fn fail_generation(store: &Store, body: &Value) -> Result<Value, MasterDealStoreError> {
    let id: Uuid =
        body.pointer("/message/body/generation_id")
            .and_then(Value::as_str)
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| rejected("fail_generation takes a route's dead letter whose message has `generation_id`"))?;
    let problem = json!({
        "type": format!("{TYPE_BASE}generation-failed"),
        "title": "The generation failed",
        "detail": body.get("error").and_then(Value::as_str).unwrap_or("the route failed"),
        "step": body.get("step"),
        "dead_letter_id": body.get("dead_letter_id"),
    });
    let row = store::end_generation(store, id, GenerationStatus::Failed, None, Some(&problem)).await?;
    Ok(reply(&row))
}
