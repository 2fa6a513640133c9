//! The REST API in OpenAPI terms, from the same operation table that dispatches it; the
//! gateway adds the mount's prefix, security and layer problems (401, 429) to each.

use serde_json::{Map, Value, json};

use super::rest::{OPERATIONS, Op};

const PROBLEM: &str = "#/components/schemas/Problem";

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
        if o.op == Op::ListDeals {
            for (name, description) in [
                ("status", "Only deals in this status"),
                ("owner", "Only deals of this owner"),
                ("cursor", "The `next_cursor` of the previous page"),
            ] {
                parameters.push(
                    json!({ "name": name, "in": "query", "description": description, "schema": { "type": "string" } }),
                );
            }
            parameters.push(json!({ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } }));
        }
        if matches!(o.op, Op::ListPlans | Op::ListProposals | Op::ListContracts | Op::ListCampaigns) {
            parameters.push(json!({ "name": "status", "in": "query", "description": "Only records in this status", "schema": { "type": "string" } }));
            parameters.push(json!({ "name": "cursor", "in": "query", "description": "The `next_cursor` of the previous page", "schema": { "type": "string" } }));
            parameters.push(json!({ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } }));
        }
        let needs_version = needs_if_match(o.op);
        if needs_version != Requires::Never {
            parameters.push(json!({
                "name": "If-Match", "in": "header", "required": false,
                "description": "The ETag of the version you read; a stale one is answered 409",
                "schema": { "type": "string" },
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
    out.insert("200".into(), ok.clone());
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
    if op != Op::ListDeals && op != Op::UpsertDeal && op != Op::UpsertCampaign && op != Op::GraphQl {
        out.insert("404".into(), problem("No such record"));
    }
    if !read {
        out.insert("409".into(), problem("A stale version (`stale-version`), a forbidden status change (`forbidden-transition`, with `allowed`), a delete of a record in use (`not-deletable`), or a concurrent writer that got there first (`conflict`)"));
        out.insert("422".into(), problem("Invalid input (`invalid-input`) or a broken domain rule (`rule-violation`)"));
    }
    if version == Requires::Always || op == Op::UpsertDeal {
        out.insert("428".into(), problem("No If-Match (nor `expected_version`) was sent"));
    }
    out.insert("503".into(), problem("The database is unavailable; retry after `Retry-After` seconds"));
    Value::Object(out)
}

fn money() -> Value {
    json!({ "type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$", "description": "A decimal amount, exact (never a float)" })
}

fn money_in() -> Value {
    json!({ "type": ["string", "number"], "description": "A decimal amount; send a string to keep every digit" })
}

fn date() -> Value {
    json!({ "type": "string", "format": "date" })
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
    let deal_status =
        ["draft", "planning", "proposal_sent", "negotiation", "signed", "in_flight", "completed", "cancelled"];
    let ids = json!({ "type": "object", "additionalProperties": { "type": "string" } });
    json!({
        "DealPage": {
            "type": "object", "required": ["items", "next_cursor"],
            "properties": {
                "items": { "type": "array", "items": reference("Deal") },
                "next_cursor": { "type": ["string", "null"], "description": "Pass as `cursor` for the next page; null on the last" },
            },
        },
        "DealInput": {
            "type": "object", "required": ["external_id", "name", "advertiser", "currency"],
            "properties": {
                "external_id": { "type": "string", "description": "`crm:<CRM id>`: the key of the upsert" },
                "name": { "type": "string" },
                "advertiser": {
                    "type": "object", "required": ["name", "inn"],
                    "properties": { "name": { "type": "string" }, "inn": { "type": "string" }, "kpp": { "type": ["string", "null"] } },
                },
                "owner": { "type": ["string", "null"] }, "budget": money_in(), "amount": money_in(),
                "currency": { "type": "string" }, "status": status(&deal_status),
                "period": { "type": "object", "required": ["from", "to"], "properties": { "from": date(), "to": date() } },
                "expected_version": { "type": "integer" },
            },
        },
        "TransitionInput": {
            "type": "object", "required": ["to"],
            "properties": { "to": { "type": "string" }, "expected_version": { "type": "integer", "description": "Instead of If-Match" } },
        },
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
            "type": "object", "required": ["lines"],
            "properties": {
                "source": status(&["manual", "llm"]), "prompt_template_version": { "type": ["string", "null"] },
                "model": { "type": ["string", "null"] }, "currency": { "type": "string" },
                "lines": { "type": "array", "items": {
                    "type": "object", "required": ["channel", "platform", "format", "flight_from", "flight_to", "budget"],
                    "properties": {
                        "channel": { "type": "string" }, "platform": { "type": "string" }, "format": { "type": "string" },
                        "flight_from": date(), "flight_to": date(), "budget": money_in(),
                        "impressions": { "type": "integer" }, "clicks": { "type": "integer" }, "reach": { "type": "integer" },
                        "cpm": money_in(), "ctr": money_in(),
                    },
                } },
            },
        },
        "ProposalList": list_of("Proposal"),
        "ProposalInput": {
            "type": "object", "required": ["body_markdown", "body_html", "generated_by"],
            "properties": {
                "body_markdown": { "type": "string" }, "body_html": { "type": "string" },
                "generated_by": { "type": "string", "description": "`manual:<who>` or `llm:<model>`" },
                "prompt_template_version": { "type": ["string", "null"] },
            },
        },
        "ContractList": list_of("Contract"),
        "ContractInput": {
            "type": "object", "required": ["number", "date", "amount"],
            "properties": {
                "number": { "type": "string", "description": "The key of the upsert" }, "date": date(), "amount": money_in(),
                "currency": { "type": "string" }, "amount_override_reason": { "type": ["string", "null"] },
                "billing_ids": ids.clone(), "payment_status": status(&["unpaid", "partially_paid", "paid", "overdue"]),
                "expected_version": { "type": "integer" },
            },
        },
        "CampaignList": list_of("Campaign"),
        "CampaignInput": {
            "type": "object", "required": ["media_plan_line_id", "platform", "name", "flight_from", "flight_to", "budget"],
            "properties": {
                "media_plan_line_id": { "type": "string", "format": "uuid" }, "platform": { "type": "string" },
                "platform_campaign_id": { "type": ["string", "null"], "description": "With platform, the key of the upsert" },
                "name": { "type": "string" }, "status": status(&["draft", "active", "paused", "completed", "cancelled"]),
                "flight_from": date(), "flight_to": date(), "budget": money_in(), "expected_version": { "type": "integer" },
            },
        },
        "StatsInput": {
            "type": "object", "required": ["days"],
            "properties": { "days": { "type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["day", "spend"],
                "properties": {
                    "day": date(), "impressions": { "type": "integer" }, "clicks": { "type": "integer" },
                    "spend": money_in(), "conversions": { "type": "integer" },
                },
            } } },
        },
        "GraphQlRequest": {
            "type": "object", "required": ["query"],
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
