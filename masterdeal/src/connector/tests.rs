//! Op parsing, and each op through the endpoint against both store backends.

use std::sync::Arc;

use junction_engine::config::node::{Node, Pos};
use junction_engine::connector::{BuildCx, ConnectorKind, Endpoint, Resources, Role};
use junction_engine::script::{ScriptEngine, ScriptLimits};
use junction_engine::store::Store;
use junction_engine::{Body, Message};
use serde_json::{Value, json};

use super::{MasterDealKind, Op};
use crate::store::test_db::on_both_backends;

on_both_backends!(
    upsert_creates_then_updates,
    upsert_rejects_bad_currency_and_inn,
    get_returns_the_row_or_not_found,
    list_pages_with_next,
    transition_checks_the_lifecycle_and_the_version,
);

fn node(yaml: &str) -> Node {
    serde_saphyr::from_str(yaml).expect("test YAML parses")
}

/// The endpoint for `op` on a connector over `store` (`None`: as under `junction check`).
pub(super) fn endpoint(store: Option<Store>, op: &str) -> Result<Arc<dyn Endpoint>, String> {
    let scripts = Arc::new(ScriptEngine::new(&ScriptLimits::default()));
    let resources = Resources { store, ..Resources::default() };
    let redact = junction_engine::redact::Redact::default();
    let cx = BuildCx {
        scripts: &scripts,
        resources: &resources,
        redact: &redact,
        dir: std::path::Path::new("."),
        endpoints: None,
    };
    let connector = MasterDealKind.build("masterdeal", &node("{}"), &cx).map_err(|e| e.to_string())?;
    connector.endpoint(Role::Request, &node(&format!("op: {op}")), &cx).map_err(|e| e.to_string())
}

pub(super) async fn call(store: &Store, op: &str, body: Value) -> Result<Value, String> {
    let ep = endpoint(Some(store.clone()), op).expect("a known op");
    let reply = ep.request(&Message::json(body)).await.map_err(|e| e.message().to_owned())?;
    match reply.body {
        Body::Json(v) => Ok(v),
        Body::Bytes(_) => panic!("masterdeal replies with JSON"),
    }
}

pub(super) fn master_deal(id: &str) -> Value {
    json!({
        "external_id": format!("crm:{id}"),
        "name": "Spring campaign",
        "advertiser": { "name": "Romashka LLC", "inn": "7707083893", "kpp": "770701001" },
        "owner": "anna",
        "amount": 1_250_000.5,
        "currency": "RUB",
        "budget": 1_250_000.5,
        "status": "draft",
        "channels": ["search", "video"],
        "source": "crm",
    })
}

#[test]
fn unknown_op_is_refused_at_its_position_listing_the_known_ones() {
    let err = Op::parse(&node("op: delete_deal")).expect_err("an unknown op is refused");
    for known in Op::ALL {
        assert!(err.message.contains(known.as_str()), "{}", err.message);
    }
    assert!(err.message.contains("`delete_deal`"), "{}", err.message);
    assert_eq!(err.pos, Some(Pos { line: 1, col: 5 }));
}

#[test]
fn known_ops_build_without_a_store() {
    for op in ["upsert_deal_by_external_id", "get_deal", "list_deals", "transition"] {
        endpoint(None, op).unwrap_or_else(|e| panic!("{op}: {e}"));
    }
}

async fn upsert_creates_then_updates(store: Store) {
    let first = call(&store, "upsert_deal_by_external_id", master_deal("D-1")).await.expect("create");
    assert_eq!((first["created"].clone(), first["crm_id"].clone()), (json!(true), json!("D-1")));
    assert_eq!(first["external_ids"], json!({ "crm": "D-1" }));
    assert_eq!(first["budget"], json!("1250000.5"));
    let second = call(&store, "upsert_deal_by_external_id", master_deal("D-1")).await.expect("update");
    assert_eq!((second["created"].clone(), second["version"].clone()), (json!(false), json!(2)));
    assert_eq!(second["id"], first["id"]);
}

async fn upsert_rejects_bad_currency_and_inn(store: Store) {
    let mut deal = master_deal("D-2");
    deal["currency"] = json!("XYZ");
    let err = call(&store, "upsert_deal_by_external_id", deal).await.expect_err("bad currency");
    assert!(err.contains("XYZ"), "{err}");
    let mut deal = master_deal("D-2");
    deal["advertiser"]["inn"] = json!("7701234567");
    let err = call(&store, "upsert_deal_by_external_id", deal).await.expect_err("bad INN");
    assert!(err.contains("check digit"), "{err}");
}

async fn get_returns_the_row_or_not_found(store: Store) {
    let created = call(&store, "upsert_deal_by_external_id", master_deal("D-3")).await.expect("create");
    let got = call(&store, "get_deal", json!({ "id": created["id"] })).await.expect("get");
    assert_eq!(got["crm_id"], "D-3");
    let missing = uuid::Uuid::now_v7().to_string();
    let err = call(&store, "get_deal", json!({ "id": missing })).await.expect_err("missing");
    assert!(err.contains("does not exist"), "{err}");
}

async fn list_pages_with_next(store: Store) {
    for id in ["L-1", "L-2", "L-3"] {
        call(&store, "upsert_deal_by_external_id", master_deal(id)).await.expect("create");
    }
    let page = call(&store, "list_deals", json!({ "owner": "anna", "limit": 2 })).await.expect("page 1");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    assert!(page["next"].is_string(), "{page}");
    let rest = call(&store, "list_deals", json!({ "after": page["next"], "limit": 2 })).await.expect("page 2");
    assert_eq!(rest["items"][0]["crm_id"], "L-3");
    assert_eq!(rest["next"], Value::Null);
}

async fn transition_checks_the_lifecycle_and_the_version(store: Store) {
    let deal = call(&store, "upsert_deal_by_external_id", master_deal("T-1")).await.expect("create");
    let id = deal["id"].clone();
    let err = call(&store, "transition", json!({ "id": id, "to": "signed", "expected_version": 1 }))
        .await
        .expect_err("draft cannot be signed");
    assert!(err.contains("planning, cancelled"), "{err}");
    let moved = call(&store, "transition", json!({ "id": id, "to": "planning", "expected_version": 1 }))
        .await
        .expect("draft -> planning");
    assert_eq!((moved["status"].clone(), moved["version"].clone()), (json!("planning"), json!(2)));
    let err = call(&store, "transition", json!({ "id": id, "to": "proposal_sent", "expected_version": 1 }))
        .await
        .expect_err("version 1 is stale");
    assert!(err.contains("is at version 2, not the expected 1"), "{err}");
}
