//! The document of a small project: an open route, an api_key route with a schema and path
//! parameters, an async hmac route, a rate-limited route, and the jwt and basic schemes.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{of_routes, template};
use crate::config::Loader;
use crate::connector::{Registry, Resources};
use crate::route::RouteTable;
use crate::script::{ScriptEngine, ScriptLimits};

const ROOT: &str = r#"routes: [routes/]
auth:
  partners:
    api_key:
      header: x-partner-key
      keys: [{ id: acme, sha256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae" }]
  crm:
    hmac: { secret: "webhook-secret-0123456789", header: x-hub-signature, timestamp_header: x-hub-time }
  sso:
    jwt: { secret: "jwt-secret-0123456789abcdef" }
  ops:
    basic:
      users: [{ name: ops, sha256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae" }]
"#;

/// A route file: `from` is the inside of `http: { … }`.
fn route(id: &str, from: &str) -> String {
    format!("route: {id}\ndescription: the {id} route\nfrom: {{ http: {{ {from} }} }}\nsteps:\n  - log: body\n")
}

fn table() -> RouteTable {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = [
        ("junction.yaml", ROOT.to_owned()),
        ("routes/health.yaml", route("health", "method: GET, path: /health, auth: none")),
        (
            "routes/items.yaml",
            route("deal-items", "method: PUT, path: '/deals/{deal}/items/{item}', auth: partners, schema: deal.json"),
        ),
        ("routes/webhook.yaml", route("crm-webhook", "method: POST, path: /webhooks/crm, auth: crm, async: true")),
        (
            "routes/limited.yaml",
            route("limited", "method: POST, path: /limited, auth: none, rate_limit: { per_second: 5 }"),
        ),
        ("routes/sso.yaml", route("sso", "method: GET, path: /me, auth: sso")),
        ("routes/ops.yaml", route("ops", "method: DELETE, path: /cache, auth: ops")),
        (
            "schemas/deal.json",
            r##"{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "required": ["item"],
                "properties": {"item": {"$ref": "item.json"}, "tags": {"$ref": "#/$defs/tags"}},
                "$defs": {"tags": {"type": "array", "items": {"type": "string"}}}}"##
                .to_owned(),
        ),
        (
            "schemas/item.json",
            r#"{"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
                "properties": {"budget": {"type": "number", "minimum": 0, "exclusiveMinimum": true},
                               "pair": {"items": [{"type": "string"}, {"type": "number"}], "additionalItems": false}}}"#
                .to_owned(),
        ),
    ];
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a file has a folder")).expect("mkdir");
        std::fs::write(path, text).expect("write fixture");
    }
    let loader = Loader {
        registry: Registry::new(),
        resources: Resources::default(),
        env: HashMap::new(),
        scripts: Arc::new(ScriptEngine::new(&ScriptLimits::default())),
        intercept: None,
    };
    loader.load(dir.path()).unwrap_or_else(|e| panic!("the fixture project loads: {e}")).routes
}

fn document() -> Value {
    of_routes(table().iter().map(|r| &**r), std::iter::empty(), "Test")
}

fn statuses(op: &Value) -> Vec<&str> {
    op["responses"].as_object().expect("responses").keys().map(String::as_str).collect()
}

#[test]
fn open_route_has_no_security_and_no_auth_problems() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Test");
    let op = &doc["paths"]["/health"]["get"];
    assert_eq!(op["operationId"], "health");
    assert_eq!(op["summary"], "the health route");
    assert_eq!(op["security"], json!([]));
    assert!(op.get("parameters").is_none() && op.get("requestBody").is_none(), "{op}");
    assert_eq!(statuses(op), ["200", "400", "413", "502", "503"]);
    assert_eq!(op["responses"]["503"]["content"]["application/problem+json"]["schema"]["$ref"], super::PROBLEM);
}

#[test]
fn api_key_route_with_schema_and_path_parameters() {
    let doc = document();
    let op = &doc["paths"]["/deals/{deal}/items/{item}"]["put"];
    let params: Vec<(&str, &str, bool)> = op["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| (p["name"].as_str().unwrap_or(""), p["in"].as_str().unwrap_or(""), p["required"] == true))
        .collect();
    assert_eq!(params, [("deal", "path", true), ("item", "path", true)]);
    assert_eq!(op["requestBody"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/deal");
    assert_eq!(statuses(op), ["200", "400", "401", "413", "422", "502", "503"]);
    assert_eq!(op["security"], json!([{ "partners": [] }]));
    assert_eq!(
        doc["components"]["securitySchemes"]["partners"],
        json!({ "type": "apiKey", "in": "header", "name": "x-partner-key" })
    );
}

#[test]
fn schemas_become_components_with_rewritten_refs() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["deal"]["properties"]["item"]["$ref"], "#/components/schemas/item");
    assert_eq!(schemas["deal"]["properties"]["tags"]["$ref"], "#/components/schemas/deal/$defs/tags");
    assert_eq!(schemas["deal"]["$schema"], "https://json-schema.org/draft/2020-12/schema");
    // The draft-04 file takes its 2020-12 form.
    let item = &schemas["item"];
    assert!(item.get("$schema").is_none(), "{item}");
    assert_eq!(item["properties"]["budget"], json!({ "type": "number", "exclusiveMinimum": 0 }));
    assert_eq!(
        item["properties"]["pair"],
        json!({ "prefixItems": [{ "type": "string" }, { "type": "number" }], "items": false })
    );
    assert_eq!(schemas["Problem"]["properties"]["errors"]["items"]["required"], json!(["pointer", "message"]));
}

#[test]
fn async_hmac_route_answers_202() {
    let doc = document();
    let op = &doc["paths"]["/webhooks/crm"]["post"];
    assert_eq!(statuses(op), ["202", "400", "401", "413", "503"]);
    let accepted = &op["responses"]["202"]["content"]["application/json"]["schema"];
    assert_eq!(accepted["required"], json!(["id", "status"]));
    assert_eq!(op["security"], json!([{ "crm": [] }]));
    let scheme = &doc["components"]["securitySchemes"]["crm"];
    assert_eq!(
        (&scheme["type"], &scheme["in"], &scheme["name"]),
        (&json!("apiKey"), &json!("header"), &json!("x-hub-signature"))
    );
    let description = scheme["description"].as_str().expect("a description");
    assert!(description.starts_with("HMAC-SHA256 over \"<timestamp>.<body>\""), "{description}");
    assert!(description.contains("x-hub-time"), "{description}");
}

#[test]
fn rate_limited_route_may_answer_429() {
    let doc = document();
    let op = &doc["paths"]["/limited"]["post"];
    assert_eq!(statuses(op), ["200", "400", "413", "429", "502", "503"]);
}

#[test]
fn jwt_and_basic_schemes() {
    let doc = document();
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["sso"], json!({ "type": "http", "scheme": "bearer", "bearerFormat": "JWT" }));
    assert_eq!(schemes["ops"], json!({ "type": "http", "scheme": "basic" }));
    assert_eq!(doc["paths"]["/cache"]["delete"]["security"], json!([{ "ops": [] }]));
}

#[test]
fn version_follows_the_routes() {
    let version = document()["info"]["version"].as_str().expect("a version").to_owned();
    assert_eq!(version.len(), 12);
    assert_eq!(document()["info"]["version"], version.as_str(), "the same table, the same version");
    let table = table();
    let fewer = of_routes(table.iter().filter(|r| &*r.id != "ops").map(|r| &**r), std::iter::empty(), "Test");
    assert_ne!(fewer["info"]["version"], version.as_str());
}

#[test]
fn catch_all_segments_become_parameters() {
    assert_eq!(template("/files/{dir}/{*rest}"), ("/files/{dir}/{rest}".to_owned(), vec!["dir".into(), "rest".into()]));
    assert_eq!(template("/plain"), ("/plain".to_owned(), vec![]));
}
