//! The REST API in OpenAPI terms, from the same operation table that dispatches it; the
//! gateway adds the mount's prefix, security and layer problems (401, 429) to each.

use serde_json::{Map, Value, json};

use super::rest::{OPERATIONS, Op};
use crate::domain::{
    ContractStatus, Currency, DealStatus, GenerationKind, GenerationStatus, Lifecycle, PlanStatus, ProposalStatus,
};

const PROBLEM: &str = "#/components/schemas/Problem";
/// `CampaignStatus` has no lifecycle of its own (a platform sets it), so its statuses are listed.
const CAMPAIGN_STATUSES: [&str; 6] = ["draft", "awaiting_creatives", "active", "paused", "completed", "cancelled"];

pub(crate) fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for o in OPERATIONS.iter() {
        let mut op = Map::new();
        op.insert("operationId".into(), json!(format!("masterdeal_{}", operation_id(o.op))));
        op.insert("summary".into(), json!(o.summary));
        op.insert("tags".into(), json!(["masterdeal"]));
        let mut parameters: Vec<Value> = Vec::new();
        if o.path.contains("{id}") {
            parameters.push(json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } }));
        }
        if let Some(statuses) = listed_statuses(o.op) {
            parameters.push(json!({ "name": "status", "in": "query", "description": "Only records in this status", "schema": status(&statuses) }));
            if o.op == Op::ListDeals {
                parameters.push(json!({ "name": "owner", "in": "query", "description": "Only deals of this owner", "schema": { "type": "string" } }));
            }
            parameters.push(json!({ "name": "cursor", "in": "query", "description": "The `next_cursor` of the previous page", "schema": cursor() }));
            parameters.push(json!({ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } }));
        }
        let needs_version = needs_if_match(o.op);
        if needs_version != Requires::Never {
            let description = match needs_version {
                Requires::Always => {
                    "The ETag of the version you read (or send `expected_version` in the body instead, where there is one); a stale one is answered 409"
                }
                _ => {
                    "When the record exists already: the ETag of the version you read (or `expected_version` in the body); without either an existing record is answered 428, a stale one 409"
                }
            };
            parameters.push(json!({
                "name": "If-Match", "in": "header", "required": needs_version == Requires::Always,
                "description": description, "schema": etag(),
            }));
        }
        if !parameters.is_empty() {
            op.insert("parameters".into(), Value::Array(parameters));
        }
        if let Some(input) = o.input {
            op.insert(
                "requestBody".into(),
                json!({ "required": true, "content": { "application/json": { "schema": reference(input) } } }),
            );
        }
        op.insert("responses".into(), responses(o.op, o.output, o.method == http::Method::GET, needs_version));
        let item = paths.entry(o.path.to_owned()).or_insert_with(|| json!({}));
        item[o.method.as_str().to_ascii_lowercase()] = Value::Object(op);
    }
    json!({ "paths": paths, "schemas": schemas() })
}

#[derive(PartialEq)]
enum Requires {
    Never,
    Always,
    OnUpdate,
}

fn needs_if_match(op: Op) -> Requires {
    match op {
        Op::UpdateDeal
        | Op::TransitionDeal
        | Op::TransitionPlan
        | Op::TransitionProposal
        | Op::TransitionContract
        | Op::DeleteDeal
        | Op::DeletePlan
        | Op::DeleteProposal
        | Op::DeleteContract
        | Op::DeleteCampaign => Requires::Always,
        Op::UpsertDeal | Op::UpsertContract | Op::UpsertCampaign => Requires::OnUpdate,
        _ => Requires::Never,
    }
}

/// The statuses a list filters by, for the operations that are lists.
fn listed_statuses(op: Op) -> Option<Vec<&'static str>> {
    fn all<S: Lifecycle>() -> Vec<&'static str> {
        S::ALL.iter().map(|s| s.as_str()).collect()
    }
    match op {
        Op::ListDeals => Some(all::<DealStatus>()),
        Op::ListPlans => Some(all::<PlanStatus>()),
        Op::ListProposals => Some(all::<ProposalStatus>()),
        Op::ListContracts => Some(all::<ContractStatus>()),
        Op::ListCampaigns => Some(CAMPAIGN_STATUSES.to_vec()),
        _ => None,
    }
}

fn operation_id(op: Op) -> String {
    // `ListDeals` → `list_deals`.
    let mut out = String::new();
    for (i, c) in format!("{op:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn problem(description: &str) -> Value {
    json!({ "description": description, "content": { "application/problem+json": { "schema": { "$ref": PROBLEM } } } })
}

fn responses(op: Op, output: &str, read: bool, version: Requires) -> Value {
    let mut out = Map::new();
    let ok = json!({
        "description": "The result; a single record carries its version as ETag",
        "content": { "application/json": { "schema": reference(output) } },
    });
    if matches!(op, Op::GenerateMediaPlan | Op::GenerateProposal) {
        out.insert(
            "202".into(),
            json!({
                "description": "Accepted: a route drafts it; follow `Location` (the generation) until it is `done` or `failed`",
                "headers": { "Location": { "description": "The generation", "schema": { "type": "string" } } },
                "content": { "application/json": { "schema": reference(output) } },
            }),
        );
    } else {
        out.insert("200".into(), ok.clone());
    }
    let creates =
        matches!(op, Op::UpsertDeal | Op::AddPlan | Op::AttachProposal | Op::UpsertContract | Op::UpsertCampaign);
    if creates {
        out.insert(
            "201".into(),
            json!({
                "description": "Created; `Location` is its address",
                "content": { "application/json": { "schema": reference(output) } },
            }),
        );
    }
    if read && matches!(op, Op::GetDeal | Op::GetPlan | Op::GetProposal | Op::GetContract | Op::GetCampaign) {
        out.insert("304".into(), json!({ "description": "Not modified: If-None-Match holds the current ETag" }));
    }
    out.insert("400".into(), problem("Malformed JSON, a bad id, cursor or limit"));
    if op == Op::UpsertCampaign {
        out.insert("404".into(), problem("No media plan line `media_plan_line_id`"));
    } else if op != Op::ListDeals && op != Op::UpsertDeal && op != Op::GraphQl {
        out.insert("404".into(), problem("No such record"));
    }
    if !read {
        out.insert("409".into(), problem("A stale version (`stale-version`), a forbidden status change (`forbidden-transition`, with `allowed`), a delete of a record in use (`not-deletable`), or a concurrent writer that got there first (`conflict`)"));
        out.insert("422".into(), problem("Invalid input (`invalid-input`) or a broken domain rule (`rule-violation`)"));
    }
    if version != Requires::Never {
        out.insert("428".into(), problem("No If-Match (nor `expected_version`) was sent"));
    }
    out.insert("503".into(), problem("The database is unavailable; retry after `Retry-After` seconds"));
    Value::Object(out)
}

fn money() -> Value {
    json!({ "type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$", "description": "A decimal amount, exact (never a float)" })
}

/// Money as the API takes it: a decimal string, or a JSON number while a float keeps its
/// digits (at most 15 significant ones; more is refused, send a string).
fn money_in() -> Value {
    json!({
        "description": "A decimal amount: a string (every digit kept), or a JSON number of at most 15 significant digits \
                        that a decimal holds (below 7.9e28, at most 28 digits after the point); other numbers are 422, send a string",
        "anyOf": [
            { "type": "string", "pattern": "^-?[0-9]{1,16}(\\.[0-9]{1,12})?$" },
            { "type": "number" },
        ],
    })
}

fn date() -> Value {
    json!({ "type": "string", "format": "date" })
}

/// A date range's ends, `from <= to`; JSON Schema cannot compare two fields, so it is said.
fn range_end(which: &str) -> Value {
    json!({ "type": "string", "format": "date", "description": format!("The range's {which} day; from ≤ to") })
}

fn currency() -> Value {
    json!({ "type": "string", "description": "An active ISO 4217 code with minor units", "enum": Currency::codes().collect::<Vec<_>>() })
}

/// A count the store keeps in a signed 64-bit column.
fn count() -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": i64::MAX })
}

fn version_in() -> Value {
    json!({ "type": ["integer", "null"], "minimum": 0, "maximum": i64::MAX, "description": "The version you read, instead of If-Match" })
}

/// `schema`, or null for an optional field that may be sent as null.
fn nullable(schema: Value) -> Value {
    json!({ "anyOf": [schema, { "type": "null" }] })
}

/// An ETag of this API as If-Match takes it: `"3"`, weak `W/"3"`, or the bare version.
fn etag() -> Value {
    json!({ "type": "string", "pattern": "^(W/)?\"*[0-9]{1,18}\"*$" })
}

/// A cursor as the API hands it out: a record id, base64url without padding.
fn cursor() -> Value {
    json!({ "type": "string", "pattern": "^[A-Za-z0-9_-]{21}[AQgw]$" })
}

/// `{"to": …}`: one of the statuses of `S`.
fn transition_input<S: Lifecycle>() -> Value {
    let statuses: Vec<&str> = S::ALL.iter().map(|s| s.as_str()).collect();
    json!({
        "type": "object", "required": ["to"], "additionalProperties": false,
        "properties": { "to": status(&statuses), "expected_version": version_in() },
    })
}

fn list_of(item: &str) -> Value {
    json!({
        "type": "object", "required": ["items", "next_cursor"],
        "properties": {
            "items": { "type": "array", "items": reference(item) },
            "next_cursor": { "type": ["string", "null"], "description": "Pass as `cursor` for the next page; null on the last" },
        },
    })
}

fn status(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

/// The records' schemas are the event schemas in `schemas/masterdeal/`: a REST read and an
/// event of the same record have one shape, described once.
const RECORDS: [(&str, &str); 5] = [
    ("Deal", include_str!("../../../schemas/masterdeal/deal.json")),
    ("MediaPlan", include_str!("../../../schemas/masterdeal/media_plan.json")),
    ("Proposal", include_str!("../../../schemas/masterdeal/proposal.json")),
    ("Contract", include_str!("../../../schemas/masterdeal/contract.json")),
    ("Campaign", include_str!("../../../schemas/masterdeal/campaign.json")),
];

fn schemas() -> Value {
    let mut all = own_schemas();
    for (name, text) in RECORDS {
        let mut schema: Value = serde_json::from_str(text).expect("the event schemas in schemas/masterdeal are JSON");
        // The document says which dialect it is; a `$schema` inside a component is noise.
        schema.as_object_mut().map(|s| s.remove("$schema"));
        all[name] = schema;
    }
    all
}

fn own_schemas() -> Value {
    let deal_statuses: Vec<&str> = DealStatus::ALL.iter().map(|s| s.as_str()).collect();
    let ids = json!({ "type": "object", "additionalProperties": { "type": "string" } });
    json!({
        "DealPage": list_of("Deal"),
        "DealInput": {
            "description": "Fields beyond these are accepted and ignored (a CRM deal's `channels`, `source`).",
            "type": "object", "required": ["external_id", "name", "advertiser", "currency"],
            "anyOf": [{ "required": ["budget"] }, { "required": ["amount"] }],
            "properties": {
                "external_id": { "type": "string", "pattern": "^[^:]+:[\\s\\S]+$", "description": "`<system>:<id>` (`crm:D-100245`): the key of the upsert" },
                "name": { "type": "string" },
                "advertiser": {
                    "type": "object", "required": ["name", "inn"],
                    "properties": {
                        "name": { "type": "string" },
                        "inn": { "type": "string", "format": "inn", "pattern": "^([0-9]{10}|[0-9]{12})$", "description": "10 or 12 digits whose check digits are valid" },
                        "kpp": { "type": ["string", "null"], "pattern": "^[0-9]{4}[0-9A-Z]{2}[0-9]{3}$" },
                    },
                },
                "owner": { "type": ["string", "null"] },
                "budget": nullable(money_in()), "amount": nullable(money_in()),
                "currency": currency(),
                "status": { "description": "Only at creation (draft when absent); an update keeps the status", "type": "string", "enum": deal_statuses },
                "period": {
                    "type": ["object", "null"], "required": ["from", "to"],
                    "properties": { "from": range_end("first"), "to": range_end("last") },
                },
                "expected_version": version_in(),
            },
        },
        "Generation": {
            "type": "object", "required": ["id", "kind", "subject_id", "status", "result_id", "problem", "created_at", "updated_at"],
            "properties": {
                "id": { "type": "string", "format": "uuid" },
                "kind": { "type": "string", "enum": GenerationKind::ALL.map(GenerationKind::as_str) },
                "subject_id": { "type": "string", "format": "uuid", "description": "The deal (a media plan) or the approved media plan (a proposal) it drafts for" },
                "status": status(&GenerationStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
                "result_id": { "type": ["string", "null"], "format": "uuid", "description": "Once `done`: the stored media plan's or proposal's id" },
                "problem": { "type": ["object", "null"], "description": "Once `failed`: why (RFC 7807), with the `dead_letter_id` to replay it from" },
                "created_at": { "type": "string", "format": "date-time" },
                "updated_at": { "type": "string", "format": "date-time" },
            },
        },
        "DealTransition": transition_input::<DealStatus>(),
        "MediaPlanTransition": transition_input::<PlanStatus>(),
        "ProposalTransition": transition_input::<ProposalStatus>(),
        "ContractTransition": transition_input::<ContractStatus>(),
        "DealSummary": {
            "type": "object", "required": ["deal_id", "media_plan_id", "currency", "channels", "budget", "spend"],
            "properties": {
                "deal_id": { "type": "string", "format": "uuid" }, "media_plan_id": { "type": "string", "format": "uuid" },
                "currency": { "type": "string" }, "budget": money(), "spend": money(),
                "channels": { "type": "array", "items": {
                    "type": "object", "required": ["channel", "budget", "spend"],
                    "properties": { "channel": { "type": "string" }, "budget": money(), "spend": money() },
                } },
            },
        },
        "MediaPlanList": list_of("MediaPlan"),
        "MediaPlanInput": {
            "type": "object", "required": ["lines"], "additionalProperties": false,
            "properties": {
                "source": status(&["manual", "llm"]), "prompt_template_version": { "type": ["string", "null"] },
                "model": { "type": ["string", "null"] }, "currency": nullable(currency()),
                "lines": { "type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["channel", "platform", "format", "flight_from", "flight_to", "budget"],
                    "additionalProperties": false,
                    "properties": {
                        "channel": { "type": "string" }, "platform": { "type": "string" }, "format": { "type": "string" },
                        "flight_from": range_end("first"), "flight_to": range_end("last"), "budget": money_in(),
                        "impressions": nullable(count()), "clicks": nullable(count()), "reach": nullable(count()),
                        "cpm": nullable(money_in()), "ctr": nullable(money_in()),
                    },
                } },
            },
            // An LLM's draft names its prompt template, so it can be reproduced.
            "if": { "required": ["source"], "properties": { "source": { "const": "llm" } } },
            "then": { "required": ["prompt_template_version"], "properties": { "prompt_template_version": { "type": "string" } } },
        },
        "ProposalList": list_of("Proposal"),
        "ProposalInput": {
            "type": "object", "required": ["body_markdown", "generated_by"], "additionalProperties": false,
            "properties": {
                "body_markdown": { "type": "string" },
                "body_html": { "type": ["string", "null"], "description": "Stored sanitised (no scripts, handlers or unsafe links); rendered from the Markdown when absent or null" },
                "generated_by": { "type": "string", "description": "`manual:<who>` or `llm:<model>`" },
                "prompt_template_version": { "type": ["string", "null"] },
            },
        },
        "ContractList": list_of("Contract"),
        "ContractInput": {
            "type": "object", "required": ["number", "date", "amount", "currency"], "additionalProperties": false,
            "properties": {
                "number": { "type": "string", "description": "The key of the upsert" }, "date": date(), "amount": money_in(),
                "currency": currency(), "amount_override_reason": { "type": ["string", "null"] },
                "billing_ids": ids, "payment_status": status(&["unpaid", "partially_paid", "paid", "overdue"]),
                "expected_version": version_in(),
            },
        },
        "CampaignList": list_of("Campaign"),
        "CampaignInput": {
            "type": "object", "required": ["media_plan_line_id", "platform", "name", "flight_from", "flight_to", "budget"],
            "additionalProperties": false,
            "properties": {
                "media_plan_line_id": { "type": "string", "format": "uuid" }, "platform": { "type": "string" },
                "platform_campaign_id": { "type": ["string", "null"], "description": "With platform, the key of the upsert" },
                "name": { "type": "string" }, "status": status(&CAMPAIGN_STATUSES),
                "flight_from": range_end("first"), "flight_to": range_end("last"), "budget": money_in(),
                "currency": nullable(currency()), "expected_version": version_in(),
            },
        },
        "StatsInput": {
            "type": "object", "required": ["days"], "additionalProperties": false,
            "properties": {
                "currency": nullable(currency()),
                "days": { "type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["day", "spend"], "additionalProperties": false,
                    "properties": {
                        "day": date(), "impressions": count(), "clicks": count(),
                        "spend": money_in(), "conversions": count(),
                    },
                } },
            },
        },
        "GraphQlRequest": {
            "description": "Without `query`, the answer is 200 with `errors`, as GraphQL over HTTP answers any request it cannot run.",
            "type": "object",
            "properties": {
                "query": { "type": "string" }, "operationName": { "type": ["string", "null"] },
                "variables": { "type": ["object", "null"] },
            },
        },
        "GraphQlResponse": {
            "type": "object",
            "properties": { "data": {}, "errors": { "type": "array", "items": { "type": "object" } } },
        },
    })
}
