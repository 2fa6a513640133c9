//! The OpenAPI 3.1 document of the gateway's http routes, served at `GET /openapi.json` when
//! no route serves that path itself; built once per route table, on its first request.

mod json_schema;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::Full;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::auth::Authenticator;
use super::{Endpoints, GatewayResponse, Mount};
use crate::route::{HttpSource, Route, Source};

/// Where the gateway serves the document.
pub const PATH: &str = "/openapi.json";

const TITLE: &str = "Junction";
const PROBLEM: &str = "#/components/schemas/Problem";

/// Whether a request no route matched asks for the document.
pub(super) fn wanted<B>(req: &Request<B>) -> bool {
    req.method() == Method::GET && req.uri().path() == PATH
}

/// The document of `endpoints` as an answer.
pub(super) fn response(endpoints: &Endpoints) -> GatewayResponse {
    let body = endpoints.openapi.get_or_init(|| {
        Bytes::from(serde_json::to_vec(&document(endpoints, TITLE)).expect("a JSON value always serializes"))
    });
    let mut resp = Response::new(Full::new(body.clone()));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The OpenAPI 3.1 document of every http endpoint: one operation per route.
pub fn document(endpoints: &Endpoints, title: &str) -> Value {
    of_routes(endpoints.iter().map(|e| &*e.route), endpoints.mounts(), title)
}

fn of_routes<'a>(
    routes: impl Iterator<Item = &'a Route>,
    mounts: impl Iterator<Item = &'a Mount>,
    title: &str,
) -> Value {
    let mut schemas = Map::new();
    schemas.insert("Problem".into(), problem_schema());
    let mut security_schemes = Map::new();
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for route in routes {
        let Source::Http(source) = &route.source else { continue };
        let (path, params) = template(&source.path);
        let mut op = operation(route, source, &params);
        if let Some(schema) = &source.schema {
            let reference = json_schema::add(schema, &mut schemas);
            op.insert(
                "requestBody".into(),
                json!({ "required": true, "content": { "application/json": { "schema": { "$ref": reference } } } }),
            );
        }
        op.insert("security".into(), security(source.auth.as_ref(), &source.auth_name, &mut security_schemes));
        paths.entry(path).or_default().insert(source.method.as_str().to_ascii_lowercase(), Value::Object(op));
    }
    for mount in mounts {
        add_mount(mount, &mut paths, &mut schemas, &mut security_schemes);
    }
    let paths: Map<String, Value> = paths.into_iter().map(|(p, item)| (p, Value::Object(item))).collect();
    let components = json!({ "schemas": schemas, "securitySchemes": security_schemes });
    json!({
        "openapi": "3.1.0",
        "info": { "title": title, "version": version(&paths, &components) },
        "paths": paths,
        "components": components,
    })
}

/// Changes whenever the document does, so clients can tell.
fn version(paths: &Map<String, Value>, components: &Value) -> String {
    let mut hash = Sha256::new();
    hash.update(serde_json::to_vec(paths).expect("a JSON value always serializes"));
    hash.update(serde_json::to_vec(components).expect("a JSON value always serializes"));
    hex::encode(&hash.finalize()[..6])
}

/// The path as an OpenAPI template, and its parameters' names (`{*rest}` becomes `{rest}`).
fn template(path: &str) -> (String, Vec<String>) {
    let (mut out, mut names) = (String::with_capacity(path.len()), Vec::new());
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else { break };
        let name = rest[open + 1..close].trim_start_matches('*');
        out.push_str(&rest[..open]);
        out.push_str(&format!("{{{name}}}"));
        names.push(name.to_owned());
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    (out, names)
}

fn operation(route: &Route, source: &HttpSource, params: &[String]) -> Map<String, Value> {
    let mut op = Map::new();
    op.insert("operationId".into(), json!(&*route.id));
    if let Some(description) = &route.description {
        op.insert("summary".into(), json!(description));
    }
    if !params.is_empty() {
        let params: Vec<Value> = params
            .iter()
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        op.insert("parameters".into(), Value::Array(params));
    }
    op.insert("responses".into(), Value::Object(responses(source)));
    op
}

/// The answer on success, and the problems this endpoint's layers can really answer with.
fn responses(source: &HttpSource) -> Map<String, Value> {
    let mut out = Map::new();
    if source.is_async {
        let accepted = json!({
            "type": "object",
            "required": ["id", "status"],
            "properties": { "id": { "type": "string" }, "status": { "const": "accepted" } },
        });
        out.insert("202".into(), json!({ "description": "Stored; the route runs from its queue", "content": { "application/json": { "schema": accepted } } }));
    } else {
        out.insert(
            "200".into(),
            json!({ "description": "The route's output", "content": { "application/json": { "schema": {} } } }),
        );
    }
    let problems = [
        ("400", "The body is not valid JSON, nests too deeply, or could not be read", true),
        ("401", "Credentials are missing or wrong", source.auth.is_some()),
        ("413", "The body is larger than the endpoint accepts", true),
        ("422", "The body does not match its schema; `errors` lists each violation", source.schema.is_some()),
        ("429", "Rate limited; retry after `Retry-After` seconds", source.rate_limit.is_some()),
        ("502", "The route could not process the message", !source.is_async),
        ("503", "Overloaded, timed out, or a dependency is down; retry after `Retry-After` seconds", true),
    ];
    for (status, description, applies) in problems {
        if applies {
            out.insert(status.into(), problem_response(description));
        }
    }
    out
}

fn problem_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/problem+json": { "schema": { "$ref": PROBLEM } } } })
}

/// A connector API's own description under its prefix, each operation given the mount's
/// security and the problems its layers add.
fn add_mount(
    mount: &Mount,
    paths: &mut BTreeMap<String, Map<String, Value>>,
    schemas: &mut Map<String, Value>,
    security_schemes: &mut Map<String, Value>,
) {
    let doc = mount.api.openapi();
    if let Some(own) = doc.get("schemas").and_then(Value::as_object) {
        for (name, schema) in own {
            if schemas.contains_key(name) {
                // A route's schema of the same name stays: the API's operations may then
                // reference the wrong one, so say so.
                tracing::warn!(api = %mount.name, schema = %name, "the OpenAPI document already has a schema of this name; the API's is left out");
                continue;
            }
            schemas.insert(name.clone(), schema.clone());
        }
    }
    let Some(own_paths) = doc.get("paths").and_then(Value::as_object) else { return };
    let requirement = security(mount.auth.as_ref(), &mount.auth_name, security_schemes);
    for (path, item) in own_paths {
        let Some(item) = item.as_object() else { continue };
        let entry = paths.entry(format!("{}{path}", mount.prefix)).or_default();
        for (method, op) in item {
            let mut op = op.clone();
            if let Some(op) = op.as_object_mut() {
                op.insert("security".into(), requirement.clone());
                let responses = op.entry("responses").or_insert_with(|| json!({}));
                if let Some(responses) = responses.as_object_mut() {
                    let layers = [
                        ("401", "Credentials are missing or wrong", mount.auth.is_some()),
                        ("413", "The body is larger than the API accepts", true),
                        ("429", "Rate limited; retry after `Retry-After` seconds", mount.rate_limit.is_some()),
                    ];
                    for (status, description, applies) in layers {
                        if applies {
                            responses.entry(status).or_insert_with(|| problem_response(description));
                        }
                    }
                }
            }
            // A route on the same path and method is what answers it: its operation stays.
            entry.entry(method.clone()).or_insert(op);
        }
    }
}

/// The operation's requirement, registering its scheme; `[]` for open routes.
fn security(auth: Option<&Arc<Authenticator>>, auth_name: &str, schemes: &mut Map<String, Value>) -> Value {
    let Some(auth) = auth else { return json!([]) };
    let name = json_schema::component_name(auth_name);
    schemes.entry(name.clone()).or_insert_with(|| scheme(auth));
    json!([{ name: [] }])
}

fn scheme(auth: &Authenticator) -> Value {
    match auth {
        Authenticator::ApiKey(keys) => json!({ "type": "apiKey", "in": keys.location(), "name": keys.name() }),
        Authenticator::Jwt(_) => json!({ "type": "http", "scheme": "bearer", "bearerFormat": "JWT" }),
        Authenticator::Basic(_) => json!({ "type": "http", "scheme": "basic" }),
        Authenticator::Hmac(verifier) => json!({
            "type": "apiKey",
            "in": "header",
            "name": verifier.header(),
            "description": format!(
                "HMAC-SHA256 over \"<timestamp>.<body>\" (the raw body) with the shared secret, sent as `sha256=<hex>`; \
                 `{}` carries the timestamp in Unix seconds. Replays are refused.",
                verifier.timestamp_header()
            ),
        }),
    }
}

fn problem_schema() -> Value {
    json!({
        "description": "An RFC 7807 problem. `type` ends in a stable kind: malformed-json, unauthorized, body-too-large, schema-violation, rate-limited, overloaded, timeout, route-failed…",
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": { "type": "string", "format": "uri" },
            "title": { "type": "string" },
            "status": { "type": "integer" },
            "detail": { "type": "string" },
            "request_id": { "type": "string" },
            "errors": {
                "description": "schema-violation: where the body breaks its schema.",
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["pointer", "message"],
                    "properties": { "pointer": { "type": "string" }, "message": { "type": "string" } },
                },
            },
        },
    })
}
