//! `GET /openapi.json` through the running binary, checked by a real OpenAPI 3.1 validator:
//! `openapi-spec-validator` from PyPI, which `./scripts/test` installs into `.venv`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Junction, project, root, sqlite_store};
use serde_json::Value;

const SHA256_OF_FOO: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

/// A Python with `openapi_spec_validator`: `$JUNCTION_PYTHON`, else the repository's `.venv`.
fn python() -> PathBuf {
    let candidates: Vec<PathBuf> = std::env::var_os("JUNCTION_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([root().join(".venv/bin/python")])
        .collect();
    for python in &candidates {
        let ok = Command::new(python).args(["-c", "import openapi_spec_validator"]).output();
        if ok.is_ok_and(|o| o.status.success()) {
            return python.clone();
        }
    }
    panic!(
        "no Python with openapi-spec-validator (tried {candidates:?}): run ./scripts/test, which installs it into .venv, \
         or set JUNCTION_PYTHON to a Python that has it"
    );
}

/// Validates `doc` with openapi-spec-validator; panics with its report when it is not valid.
fn validate(doc: &Value) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(doc).expect("JSON serializes")).expect("write the document");
    let out =
        Command::new(python()).args(["-m", "openapi_spec_validator"]).arg(&file).output().expect("the validator runs");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.contains("OK"), "openapi-spec-validator: {report}\n{doc:#}");
}

async fn fetch(j: &Junction) -> (u16, String, Value) {
    let resp = reqwest::get(j.url("/openapi.json")).await.expect("request");
    let status = resp.status().as_u16();
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (status, content_type, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_repository_project_documents_its_routes() {
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(&root(), &[("JUNCTION_STORE", &store)]);
    let (status, content_type, doc) = fetch(&j).await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"), "{doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    let preview = &doc["paths"]["/api/deals/preview"]["post"];
    assert_eq!(preview["operationId"], "crm-deal-preview");
    assert_eq!(preview["security"], serde_json::json!([]));
    let webhook = &doc["paths"]["/webhooks/crm/deals"]["post"];
    assert!(webhook["responses"]["202"].is_object(), "{webhook}");
    assert_eq!(
        webhook["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/crm-deal"
    );
    assert_eq!(doc["components"]["securitySchemes"]["crm_webhook"]["name"], "x-signature");
    // The masterdeal connector's API, mounted at /api/v1, is in the same document.
    let deals = &doc["paths"]["/api/v1/deals"]["post"];
    assert_eq!(deals["security"], serde_json::json!([{ "partners": [] }]), "{deals}");
    assert!(doc["paths"]["/api/v1/graphql"]["post"].is_object());
    validate(&doc);
}

#[tokio::test]
async fn every_auth_scheme_validates() {
    let root_config = format!(
        r#"routes: [routes/]
auth:
  partners:
    api_key: {{ keys: [{{ id: acme, sha256: "{SHA256_OF_FOO}" }}] }}
  ops:
    basic: {{ users: [{{ name: ops, sha256: "{SHA256_OF_FOO}" }}] }}
  crm:
    hmac: {{ secret: "webhook-secret-0123456789" }}
  sso:
    jwt: {{ secret: "jwt-secret-0123456789abcdef", issuer: https://id.example }}
"#
    );
    let route = |id: &str, from: &str| format!("route: {id}\nfrom: {{ http: {{ {from} }} }}\nsteps:\n  - log: body\n");
    let files = [
        ("junction.yaml".to_owned(), root_config),
        ("routes/keyed.yaml".into(), route("keyed", "method: PUT, path: '/deals/{id}', auth: partners, schema: deal.json")),
        ("routes/basic.yaml".into(), route("basic", "method: DELETE, path: '/cache/{*key}', auth: ops")),
        ("routes/signed.yaml".into(), route("signed", "method: POST, path: /hooks, auth: crm, async: true")),
        ("routes/sso.yaml".into(), route("sso", "method: GET, path: /me, auth: sso")),
        ("routes/open.yaml".into(), route("open", "method: POST, path: /open, auth: none, rate_limit: { per_second: 5 }")),
        (
            "schemas/deal.json".into(),
            r##"{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                "properties": {"lines": {"type": "array", "items": {"$ref": "parts/line.json"}}, "note": {"$ref": "#/$defs/note"}},
                "$defs": {"note": {"type": "string", "maxLength": 200}}}"##
                .into(),
        ),
        (
            "schemas/parts/line.json".into(),
            r##"{"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                "properties": {"amount": {"type": "number"}, "pair": {"items": [{"type": "string"}], "additionalItems": false},
                               "up": {"$ref": "../deal.json#/$defs/note"}}}"##
                .into(),
        ),
    ];
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
    let dir = project(&refs);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let (status, _, doc) = fetch(&j).await;
    assert_eq!(status, 200, "{doc}");
    let schemes = doc["components"]["securitySchemes"].as_object().expect("security schemes");
    let kinds: Vec<(&str, &str)> =
        schemes.iter().map(|(name, s)| (name.as_str(), s["type"].as_str().unwrap_or(""))).collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    assert!(doc["paths"]["/cache/{key}"]["delete"].is_object(), "{doc}");
    assert_eq!(
        doc["components"]["schemas"]["parts.line"]["properties"]["up"]["$ref"],
        "#/components/schemas/deal/$defs/note"
    );
    validate(&doc);
    // Built once per route table: the second answer is the same document.
    assert_eq!(fetch(&j).await.2, doc);
    let post = reqwest::Client::new().post(j.url("/openapi.json")).send().await.expect("request");
    assert_eq!(post.status().as_u16(), 404);
}

#[tokio::test]
async fn a_route_on_the_path_serves_it_itself() {
    let dir = project(&[
        ("junction.yaml", "routes: [routes/]\n"),
        (
            "routes/own.yaml",
            "route: own\nfrom: { http: { method: GET, path: /openapi.json, auth: none } }\nsteps:\n  - set: { body: { served_by: '\"own\"' } }\n",
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let (status, _, body) = fetch(&j).await;
    assert_eq!((status, &body["served_by"]), (200, &Value::String("own".into())), "{body}\n{}", j.logs());
}
