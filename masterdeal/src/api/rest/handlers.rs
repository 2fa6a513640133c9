//! Each REST operation: path and query into the input of the `masterdeal` connector's
//! operation of the same name (one implementation behind routes, REST and GraphQL), its
//! result into a reply with an ETag.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{Op, limit};
use crate::api::MasterDealApi;
use crate::api::cursor;
use crate::api::wire::{ApiError, Reply, Req, not_modified};
use crate::connector::ops;
use crate::domain::{CampaignStatus, ContractStatus, DealStatus, GenerationKind, PlanStatus, ProposalStatus};
use crate::store::{self, Expected, MasterDealStoreError};

pub(super) async fn handle(
    api: &MasterDealApi,
    op: Op,
    req: &Req,
) -> Result<http::Response<http_body_util::Full<bytes::Bytes>>, ApiError> {
    let store = api.store().await?;
    let reply = match op {
        Op::ListDeals => {
            if let Some(status) = req.query.get("status") {
                DealStatus::deserialize(Value::String(status.clone()))
                    .map_err(|e| ApiError::bad_request(format!("status: {e}")))?;
            }
            let mut input = Map::new();
            for key in ["status", "owner"] {
                if let Some(v) = req.query.get(key) {
                    input.insert(key.into(), json!(v));
                }
            }
            if let Some(c) = req.query.get("cursor") {
                input.insert("after".into(), json!(cursor::decode(c)?));
            }
            input.insert("limit".into(), json!(limit(req)?));
            let mut page = ops::list(store, &Value::Object(input)).await?;
            let next = page.get("next").and_then(Value::as_str).and_then(|id| id.parse::<Uuid>().ok());
            page.as_object_mut().map(|p| p.remove("next"));
            page["next_cursor"] = next.map_or(Value::Null, |id| json!(cursor::encode(id)));
            Reply::ok(page)
        }
        // A deal that exists already is changed only at the version its caller read, as
        // contracts and campaigns are: never overwritten blind.
        Op::UpsertDeal => upserted(req, ops::save(store, &optional_version(req, body(req)?)?).await?, "deals"),
        Op::GetDeal => {
            let id = req.id("id")?;
            let row = store::get(store, id).await?.ok_or_else(|| not_found("master deal", id))?;
            return Ok(cached_or(req, row.version, json_of(&row)));
        }
        Op::UpdateDeal => {
            let input = with_version(req, with_id(req, "id", body(req)?)?)?;
            Reply::record(ops::update_deal(store, &input).await?)
        }
        Op::TransitionDeal => Reply::record(ops::transition(store, &transition(req)?).await?),
        Op::DealSummary => Reply::ok(ops::deal_summary(store, &json!({ "deal_id": req.id("id")? })).await?),
        Op::ListPlans => {
            let deal = existing_deal(store, req).await?;
            let page = child_page::<PlanStatus>(req)?;
            paged(json_of(&store::page_plans(store, deal, &page).await?), &page)
        }
        Op::AddPlan => {
            let input = with_id(req, "deal_id", body(req)?)?;
            with_location(req, Reply::record(ops::add_media_plan(store, &input).await?), "media-plans")
        }
        Op::GetPlan => {
            let id = req.id("id")?;
            let row = api.plans.get(store, id).await?.ok_or_else(|| not_found("media plan", id))?;
            return Ok(cached_or(req, row.version, json_of(&row)));
        }
        Op::TransitionPlan => {
            let id = req.id("id")?;
            let result = ops::transition_media_plan(store, &transition(req)?).await;
            // Whatever happened, the next read goes to the database.
            api.plans.invalidate(id).await;
            Reply::record(result?)
        }
        Op::ListProposals => {
            let deal = existing_deal(store, req).await?;
            let page = child_page::<ProposalStatus>(req)?;
            paged(json_of(&store::page_proposals(store, deal, &page).await?), &page)
        }
        Op::AttachProposal => {
            let input = with_id(req, "media_plan_id", body(req)?)?;
            with_location(req, Reply::record(ops::attach_proposal(store, &input).await?), "proposals")
        }
        Op::GetProposal => {
            let id = req.id("id")?;
            let row = store::get_proposal(store, id).await?.ok_or_else(|| not_found("proposal", id))?;
            return Ok(cached_or(req, row.version, json_of(&row)));
        }
        Op::TransitionProposal => Reply::record(ops::transition_proposal(store, &transition(req)?).await?),
        Op::ListContracts => {
            let deal = existing_deal(store, req).await?;
            let page = child_page::<ContractStatus>(req)?;
            paged(json_of(&store::page_contracts(store, deal, &page).await?), &page)
        }
        Op::UpsertContract => {
            let input = optional_version(req, with_id(req, "deal_id", body(req)?)?)?;
            upserted(req, ops::upsert_contract(store, &input, Expected::New).await?, "contracts")
        }
        Op::GetContract => {
            let id = req.id("id")?;
            let row = store::get_contract(store, id).await?.ok_or_else(|| not_found("contract", id))?;
            return Ok(cached_or(req, row.version, json_of(&row)));
        }
        Op::TransitionContract => Reply::record(ops::transition_contract(store, &transition(req)?).await?),
        Op::ListCampaigns => {
            let deal = existing_deal(store, req).await?;
            let page = child_page::<CampaignStatus>(req)?;
            paged(json_of(&store::page_campaigns(store, deal, &page).await?), &page)
        }
        Op::UpsertCampaign => {
            let input = optional_version(req, body(req)?)?;
            upserted(req, ops::upsert_campaign(store, &input, Expected::New).await?, "campaigns")
        }
        Op::GetCampaign => {
            let id = req.id("id")?;
            let row = store::get_campaign(store, id).await?.ok_or_else(|| not_found("campaign", id))?;
            return Ok(cached_or(req, row.version, json_of(&row)));
        }
        Op::RecordStats => {
            let input = with_id(req, "campaign_id", body(req)?)?;
            Reply::record(ops::record_campaign_stats(store, &input).await?)
        }
        Op::DeleteDeal => {
            Reply::ok(json_of(&store::delete_deal(store, req.id("id")?, req.expected_version(None)?).await?))
        }
        Op::DeletePlan => {
            let id = req.id("id")?;
            let result = store::delete_plan(store, id, req.expected_version(None)?).await;
            api.plans.invalidate(id).await;
            Reply::ok(json_of(&result?))
        }
        Op::DeleteProposal => {
            Reply::ok(json_of(&store::delete_proposal(store, req.id("id")?, req.expected_version(None)?).await?))
        }
        Op::DeleteContract => {
            Reply::ok(json_of(&store::delete_contract(store, req.id("id")?, req.expected_version(None)?).await?))
        }
        Op::DeleteCampaign => {
            Reply::ok(json_of(&store::delete_campaign(store, req.id("id")?, req.expected_version(None)?).await?))
        }
        Op::GenerateMediaPlan => generation(req, GenerationKind::MediaPlan, store).await?,
        Op::GenerateProposal => generation(req, GenerationKind::Proposal, store).await?,
        Op::GetGeneration => {
            let id = req.id("id")?;
            Reply::ok(json_of(&store::get_generation(store, id).await?.ok_or_else(|| not_found("generation", id))?))
        }
        Op::GraphQl => unreachable!("GraphQL is dispatched before REST"),
    };
    Ok(reply.into_response())
}

/// `?status=&cursor=&limit=` of one of a deal's lists; the status must be one of `S`'s.
fn child_page<S: serde::de::DeserializeOwned>(req: &Req) -> Result<store::ChildPage, ApiError> {
    let status = match req.query.get("status") {
        Some(s) => {
            S::deserialize(Value::String(s.clone())).map_err(|e| ApiError::bad_request(format!("status: {e}")))?;
            Some(s.clone())
        }
        None => None,
    };
    let after = req.query.get("cursor").map(|c| cursor::decode(c)).transpose()?;
    Ok(store::ChildPage { status, after, limit: limit(req)? })
}

/// A page of `items` (a JSON array of records) with the cursor of the next one: null when
/// this page was not full, so it is the last.
fn paged(items: Value, page: &store::ChildPage) -> Reply {
    let full = items.as_array().is_some_and(|a| a.len() == page.limit as usize);
    let last = items.as_array().and_then(|a| a.last()).and_then(|r| r["id"].as_str()).and_then(|id| id.parse().ok());
    let next = last.filter(|_| full).map(cursor::encode);
    Reply::ok(json!({ "items": items, "next_cursor": next }))
}

/// The body as a JSON object (an empty body is an empty object).
fn body(req: &Req) -> Result<Value, ApiError> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match req.json::<Value>()? {
        v @ Value::Object(_) => Ok(v),
        other => Err(ApiError::invalid(format!("the body must be a JSON object, not {}", kind(&other)))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The path's `{id}` set as `field` of the input; a different one in the body is refused.
fn with_id(req: &Req, field: &str, mut input: Value) -> Result<Value, ApiError> {
    let id = req.id("id")?.to_string();
    match input.get(field).and_then(Value::as_str) {
        Some(given) if given != id => {
            return Err(ApiError::invalid(format!("`{field}` {given} in the body differs from the path's {id}")));
        }
        _ => input[field] = json!(id),
    }
    Ok(input)
}

/// The version the write expects (If-Match or the body's), required.
fn with_version(req: &Req, mut input: Value) -> Result<Value, ApiError> {
    let from_body = input.get("expected_version").and_then(Value::as_i64);
    input["expected_version"] = json!(req.expected_version(from_body)?);
    Ok(input)
}

/// For upserts: the version when the caller sent one (an update), none for a create.
fn optional_version(req: &Req, input: Value) -> Result<Value, ApiError> {
    let given = req.headers.contains_key(http::header::IF_MATCH) || input.get("expected_version").is_some();
    if given { with_version(req, input) } else { Ok(input) }
}

/// A transition's input: `{"to": …}` from the body, the id from the path, the version from If-Match.
fn transition(req: &Req) -> Result<Value, ApiError> {
    with_version(req, with_id(req, "id", body(req)?)?)
}

/// 201 with the new record's address.
fn with_location(req: &Req, reply: Reply, collection: &str) -> Reply {
    match reply.body.get("id").and_then(Value::as_str).map(str::to_owned) {
        Some(id) => reply.created(format!("{}/{collection}/{id}", req.mounted_at)),
        None => reply,
    }
}

/// Asks for a generation of the path's deal or plan: 202, and where to follow it.
async fn generation(req: &Req, kind: GenerationKind, store: &junction_engine::store::Store) -> Result<Reply, ApiError> {
    let row = store::request_generation(store, kind, req.id("id")?).await?;
    let location = format!("{}/generations/{}", req.mounted_at, row.id);
    Ok(Reply::accepted(json_of(&row), location))
}

/// An upsert's reply: 201 with its location when it created the record.
fn upserted(req: &Req, row: Value, collection: &str) -> Reply {
    let created = row.get("created").and_then(Value::as_bool).unwrap_or(false);
    let reply = Reply::record(row);
    if created { with_location(req, reply, collection) } else { reply }
}

/// 304 when the caller holds this version already, else the record with its ETag.
fn cached_or(req: &Req, version: i64, body: Value) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    if req.holds(version) { not_modified(version) } else { Reply::record(body).into_response() }
}

/// The path's deal, which must exist (an empty list would hide a wrong id).
async fn existing_deal(store: &junction_engine::store::Store, req: &Req) -> Result<Uuid, ApiError> {
    let id = req.id("id")?;
    store::get(store, id).await?.map(|d| d.id).ok_or_else(|| not_found("master deal", id))
}

fn not_found(what: &'static str, id: Uuid) -> ApiError {
    MasterDealStoreError::NotFound { what, id: id.to_string() }.into()
}

fn json_of(row: &impl serde::Serialize) -> Value {
    serde_json::to_value(row).expect("store rows always serialize to JSON")
}
