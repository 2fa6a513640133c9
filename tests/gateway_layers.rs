//! The gateway's layers through the running binary: each auth scheme, deny by default, rate
//! limits (in-process, and in Redis across two instances), CORS, and the audit trail.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::{Junction, junction, project, sqlite_store};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const API_KEY: &str = "partner-key-0123456789";
const HMAC_SECRET: &str = "webhook-secret-0123456789";
const JWT_SECRET: &str = "jwt-secret-0123456789abcdef";

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn files(cache_limit_route: &str, limited_id: &str) -> Vec<(String, String)> {
    let root = format!(
        r#"routes: [routes/]
auth:
  partners:
    api_key:
      keys: [{{ id: acme, sha256: "{key}" }}]
  ops:
    basic:
      users: [{{ name: ops, sha256: "{pw}" }}]
  crm:
    hmac: {{ secret: "{HMAC_SECRET}", id: crm }}
  sso:
    jwt: {{ secret: "{JWT_SECRET}", issuer: https://id.example, audience: junction }}
"#,
        key = sha256_hex(API_KEY),
        pw = sha256_hex("ops-password"),
    );
    let route = |id: &str, from: &str| {
        let path = id.split('-').next().unwrap_or(id);
        format!("route: {id}\nfrom: {{ http: {{ method: POST, path: /{path}, {from} }} }}\nsteps:\n  - log: body\n")
    };
    vec![
        ("junction.yaml".into(), root),
        ("routes/keyed.yaml".into(), route("keyed", "auth: partners")),
        ("routes/basic.yaml".into(), route("basic", "auth: ops")),
        ("routes/signed.yaml".into(), route("signed", "auth: crm")),
        ("routes/sso.yaml".into(), route("sso", "auth: sso")),
        ("routes/limited.yaml".into(), route(limited_id, cache_limit_route)),
        (
            "routes/open.yaml".into(),
            route("open", "auth: none, cors: { origins: [\"https://app.example\"], headers: [x-trace] }"),
        ),
    ]
}

fn start(extra_env: &[(&str, &str)], limit: &str) -> (tempfile::TempDir, tempfile::TempDir, String, Junction) {
    start_with(extra_env, limit, "limited")
}

/// `limited_id`: the id of the rate-limited route (served at `/limited`).
fn start_with(
    extra_env: &[(&str, &str)],
    limit: &str,
    limited_id: &str,
) -> (tempfile::TempDir, tempfile::TempDir, String, Junction) {
    let owned = files(limit, limited_id);
    let refs: Vec<(&str, &str)> = owned.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let dir = project(&refs);
    let (store_dir, store) = sqlite_store();
    let mut env = vec![("JUNCTION_STORE", store.as_str())];
    env.extend_from_slice(extra_env);
    let j = Junction::start(dir.path(), &env);
    (dir, store_dir, store, j)
}

async fn status_of(req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = req.send().await.expect("request");
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

fn now() -> String {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs().to_string()
}

fn jwt(claims: &Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), claims, &key).expect("token")
}

#[tokio::test]
async fn every_scheme_refuses_strangers_and_names_its_callers_in_the_audit() {
    let (_dir, _store_dir, store, j) = start(&[], "auth: partners, rate_limit: { per_second: 1, burst: 2 }");
    let c = reqwest::Client::new();
    let body = r#"{"n":1}"#;

    // api_key
    let (s, h, p) = status_of(c.post(j.url("/keyed")).body(body)).await;
    assert_eq!((s, p["type"].as_str()), (401, Some("https://junction.dev/problems/unauthorized")), "{p}");
    assert_eq!(h["www-authenticate"], "ApiKey");
    assert_eq!(status_of(c.post(j.url("/keyed")).header("x-api-key", "wrong").body(body)).await.0, 401);
    assert_eq!(status_of(c.post(j.url("/keyed")).header("x-api-key", API_KEY).body(body)).await.0, 200);

    // basic
    let basic = |user: &str, pw: &str| {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}")))
    };
    assert_eq!(
        status_of(c.post(j.url("/basic")).header("authorization", basic("ops", "nope")).body(body)).await.0,
        401
    );
    assert_eq!(
        status_of(c.post(j.url("/basic")).header("authorization", basic("ops", "ops-password")).body(body)).await.0,
        200
    );

    // hmac over the raw body, once
    let ts = now();
    let sig = junction_engine::gateway::auth::sign_webhook(HMAC_SECRET.as_bytes(), &ts, body.as_bytes());
    let signed = || c.post(j.url("/signed")).header("x-timestamp", &ts).header("x-signature", &sig);
    assert_eq!(status_of(signed().body(r#"{"n":2}"#)).await.0, 401, "a changed body must not pass");
    assert_eq!(status_of(signed().body(body)).await.0, 200);
    let (s, _, p) = status_of(signed().body(body)).await;
    assert_eq!(s, 401, "a replay must not pass");
    assert!(p["detail"].as_str().unwrap_or_default().contains("replay"), "{p}");

    // jwt
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() + 600;
    let good = jwt(&json!({ "sub": "alice", "iss": "https://id.example", "aud": "junction", "exp": exp }));
    let wrong_aud = jwt(&json!({ "sub": "alice", "iss": "https://id.example", "aud": "other", "exp": exp }));
    let expired = jwt(&json!({ "sub": "alice", "iss": "https://id.example", "aud": "junction", "exp": 1_000_000 }));
    for bad in [&wrong_aud, &expired] {
        let (s, h, _) = status_of(c.post(j.url("/sso")).bearer_auth(bad).body(body)).await;
        assert_eq!(s, 401);
        assert_eq!(h["www-authenticate"], "Bearer");
    }
    assert_eq!(status_of(c.post(j.url("/sso")).bearer_auth(&good).body(body)).await.0, 200);

    // Credentials never reach the message or the log.
    j.wait_for_log("\"route\":\"sso\"", Duration::from_secs(5));
    let logs = j.logs();
    for secret in [API_KEY, "ops-password", good.as_str(), sig.as_str()] {
        assert!(!logs.contains(secret), "a credential reached the log");
    }

    // Who did what, with outcomes; never the secrets.
    let audit = wait_for_audit(&store, 11).await;
    let has = |actor: &str, kind: &str, action: &str, outcome: &str| {
        audit.iter().any(|r| r.0 == actor && r.1 == kind && r.2 == action && r.3 == outcome)
    };
    assert!(has("anonymous", "api_key", "POST /keyed", "denied"), "{audit:?}");
    assert!(has("acme", "api_key", "POST /keyed", "ok"), "{audit:?}");
    assert!(has("ops", "basic", "POST /basic", "ok"), "{audit:?}");
    assert!(has("crm", "hmac", "POST /signed", "ok"), "{audit:?}");
    assert!(has("alice", "jwt", "POST /sso", "ok"), "{audit:?}");
    assert!(!audit.iter().any(|r| r.2.contains("/open")), "open endpoints are not audited by default");
    let dump = format!("{audit:?}");
    assert!(!dump.contains(API_KEY) && !dump.contains("ops-password"));
}

/// (actor, actor_kind, action, outcome) of the audit table, once it holds at least `n` rows.
async fn wait_for_audit(store: &str, n: usize) -> Vec<(String, String, String, String)> {
    use sqlx::Row;
    let pool = sqlx::SqlitePool::connect(store).await.expect("the store opens");
    for _ in 0..100 {
        let rows = sqlx::query("SELECT actor, actor_kind, action, outcome FROM audit ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("audit table");
        let rows: Vec<_> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
        if rows.len() >= n {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the audit table never held {n} rows");
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_per_client() {
    let (_dir, _store_dir, _store, j) = start(&[], "auth: partners, rate_limit: { per_second: 1, burst: 2 }");
    let c = reqwest::Client::new();
    let call = || c.post(j.url("/limited")).header("x-api-key", API_KEY).body("{}");
    assert_eq!(status_of(call()).await.0, 200);
    assert_eq!(status_of(call()).await.0, 200);
    let (s, h, p) = status_of(call()).await;
    assert_eq!(s, 429, "{p}");
    assert_eq!(p["type"], "https://junction.dev/problems/rate-limited");
    assert_eq!(h["retry-after"], "1");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(status_of(call()).await.0, 200, "a token comes back after a second");
}

#[tokio::test]
async fn a_redis_rate_limit_holds_across_two_instances() {
    // A route id of its own per run: the bucket in Redis is keyed by it.
    let id = format!("limited-{}", uuid::Uuid::now_v7().simple());
    let limit = "auth: none, rate_limit: { per_second: 0.2, burst: 3, per: endpoint }";
    let redis = [("JUNCTION_CACHE", "redis://127.0.0.1:6379")];
    let (_d1, _s1, _, a) = start_with(&redis, limit, &id);
    let (_d2, _s2, _, b) = start_with(&redis, limit, &id);
    let c = reqwest::Client::new();
    let mut allowed = 0;
    for i in 0..8 {
        let j = if i % 2 == 0 { &a } else { &b };
        if status_of(c.post(j.url("/limited")).body("{}")).await.0 == 200 {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 3, "two instances sharing a burst of 3 let {allowed} requests through");
}

#[tokio::test]
async fn cors_preflight_allows_listed_origins_only() {
    let (_dir, _store_dir, _store, j) = start(&[], "auth: none");
    let c = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        c.request(reqwest::Method::OPTIONS, j.url("/open"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
    };
    let resp = preflight("https://app.example").send().await.expect("preflight");
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["access-control-allow-origin"], "https://app.example");
    assert_eq!(resp.headers()["access-control-allow-methods"], "POST");
    assert!(resp.headers()["access-control-allow-headers"].to_str().unwrap_or_default().contains("x-trace"));
    assert_eq!(preflight("https://evil.example").send().await.expect("preflight").status(), 403);
    let resp = c.post(j.url("/open")).header("origin", "https://app.example").body("{}").send().await.expect("post");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], "https://app.example");
}

#[test]
fn an_http_route_without_auth_fails_check() {
    let dir = project(&[
        (
            "junction.yaml",
            "routes: [routes/]\nauth:\n  partners:\n    api_key: { keys: [{ id: a, sha256: \"00\" }] }\n",
        ),
        ("routes/a.yaml", "route: a\nfrom:\n  http: { method: POST, path: /a }\n"),
        ("routes/b.yaml", "route: b\nfrom:\n  http: { method: POST, path: /b, auth: partner }\n"),
    ]);
    let (code, _, err) = junction(&["check", &dir.path().display().to_string()], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("routes/a.yaml:3:3: an http endpoint needs `auth:`"), "{err}");
    assert!(err.contains("routes/b.yaml:3:41: unknown auth scheme `partner` (did you mean `partners`?)"), "{err}");
    assert!(
        err.contains("junction.yaml:4:5: auth scheme `partners`: key `a`: `sha256` must be 64 hex digits"),
        "{err}"
    );
}

#[tokio::test]
async fn the_gateway_serves_https_when_given_a_certificate() {
    let dir = project(&[
        ("junction.yaml", "routes: [routes/]\ngateway:\n  tls: { cert: certs/gateway.pem, key: certs/gateway.key }\n"),
        (
            "routes/hi.yaml",
            "route: hi\nfrom: { http: { method: GET, path: /hi, auth: none } }\nsteps:\n  - transform: { script: \"#{ hi: true }\" }\n",
        ),
    ]);
    std::fs::create_dir_all(dir.path().join("certs")).expect("mkdir");
    // A test CA and a gateway certificate it signs (webpki refuses a CA as the end entity).
    let script = "set -e
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost -keyout gateway.key -out gateway.csr
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > ext.cnf
        openssl x509 -req -in gateway.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out gateway.pem";
    let made = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir.path().join("certs"))
        .output()
        .expect("openssl runs (it makes the test certificates)");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let cert = std::fs::read(dir.path().join("certs/ca.pem")).expect("the test CA");
    let c = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).expect("pem"))
        .build()
        .expect("client");
    let body: Value = c.get(format!("https://{}/hi", j.addr)).send().await.expect("https").json().await.expect("json");
    assert_eq!(body, json!({ "hi": true }));
    assert!(reqwest::get(format!("http://{}/hi", j.addr)).await.is_err(), "plain HTTP must not be served");
    // A key that is not a key is a config error at its line, not a failure at the first handshake.
    std::fs::write(dir.path().join("certs/gateway.key"), "not a key").expect("write");
    let (code, _, err) = junction(&["check", &dir.path().display().to_string()], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("junction.yaml:3:") && err.contains("private key"), "{err}");
}
