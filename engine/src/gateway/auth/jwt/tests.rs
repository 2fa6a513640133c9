//! Real tokens, signed with real keys, against [`JwtVerifier`]; JWKS URLs are served by a
//! tiny HTTP server that counts its requests.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{EncodingKey, Header, get_current_timestamp};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::keys::Jwks;
use super::*;

/// Generated once with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`.
const RSA_PEM: &str = r"-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQD7+XMhIjRxMPyP
Rrdsx3uiXrxDIXx3KkG7OUO8+FVedp4Y1BKL3aMD6hUF0d1/geOeRakbhZhFU36y
XXY+WRSGn20hgyVul7CANhhj7TXi2qXGiwfjhPMdgsac0ZGAgbtg/UEPhPg+UWHh
VIHeUC/8QY1uyXUnBc1wPX/s3tgFQtWBcFPCviceNBarNj7GjJ+GTzTHuBIUdbgb
Di8nTMbQiYQlDk+hwpxx9X++kG0suYRbH7vvdVP66lLH/JQ4j5fxj9VJ7RYI8eVr
t+vtkw4PLVW/LLZC3u+ieWPz+GUloGS1SnzRchiZKjzz2ke1WRIDgLfqeXjbNyhx
QsUVuyq5AgMBAAECggEAFG3dnT6aNOEtYOpxXbLwvbHjnqe84SZ+bNEQQmZ5+W4x
lD7BgDCIkn0sliu1QyzDSSZJty8GMPy7hXeZaiWrydxsKy7oXoaS61o3cQae+1UR
4r6L9bDmSyq6sqU1IE+kYxE1cK4tuFO91ViWLPGgalngPy67Pl40kViTIh/RMN/Y
o4XVJLDVXpTeKkLY3SDz197nip+GNdsbIfTCvASuI2rrToWKmn3q87M9OP8SUx9q
mde4BwSn5/grYnM45zsfFQ88EXSp9Tbrl3cJe3AXYr4HTClaqTyOj1RsxRkmsSC9
NbXSk9lFWOWHXrKEjsrUkUO0VuxB/BKiQvzc+l9peQKBgQD+UKGADEpi25JsQy5+
qP3VZIpFI9vi244wgSgVZrfcU/pdLM+2Y9Gf9RNFowHVkgopVz2AlcXF0rSz3+UK
VrMlfvDdn8NYSrz8hGhVloy6/ncWi3cTgLfLtAPsosgjKq6v2rNFIeSOdLgO+w/4
9MF9Yw2AMuKhLAIZuta83guq/QKBgQD9pNlMR6pTnxmYhpNFc9TX629yRsyCmiOJ
ktJWhFBNIPGYdWWwoZ9+cgi//Heejog/UuHUHXP2GPsvujhhOKeaf//fqYy0khrC
ASDzzwkURZGOeL4yNR85hW3TK2t64/dNlZKN6w+7/+6jOqHr01bVo9Vm2rUH/f+i
fw7hG9fhbQKBgQDNWeA+nC4Ii1I9dzX48o4cnFWGJMFt+mljQzdRqKK4F1tnl0KV
/R4McoFATrKxeH4aCabQyJ9s8IoXYKf6ZC2+DjWCT3oWNitKH8R7r9gtOkKBAtaA
+gPvSYmNr5e5xcJOn2L4ZLjASwFAn3uzRDdk/vGs3enfyMBddF/nG8kCJQKBgEhB
5B2U9PLpijMnc2D/xIzWZ2NYw/4YxzLz/rPi8bVnQyw5lYSiJnuxJMj8tV8YH7xa
cjcpRNXA/B32oQUhTK349P3UoV73mGPYSnjqbB24S+UYhKZs9749QrI71lymANe7
WorPgiX+nQ8nLuWtyTkHeU3Z1GS4eVDjfWunsPJpAoGAewI1a7ovvOnt97ach/3d
74eZa+w3iFXgH7cYvf8jqAJnpuBvY6EjO96dqZC+X5EF7UFE92wNJE0xM3EYvK2k
qlNbqxhKAbcfVH6Ks4hujTentBe74YWhp0LD/py4WoRYfIU2c6EnTxPFSCh7/LlG
KqC7v0o+QxFBXUsF/9rmQQE=
-----END PRIVATE KEY-----
";

/// Generated once with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`.
const EC_PEM: &str = r"-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgZa2pc/cOGLW1VxLf
hbsXqWTruni803hjJWiOojhuQ+mhRANCAARJtB8bO7G8+2JCmY9Gkhm8UstPPtjI
KRAl9jgi0DWldeKwhybtv1VZ+CvD3uoZ4sreYmJ63QrCz9l9jl4NXBnl
-----END PRIVATE KEY-----
";

const SECRET: &str = "a shared secret of reasonable length";

fn spec(fields: Value) -> JwtSpec {
    serde_json::from_value(fields).expect("the test specs are valid")
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).expect("RSA_PEM is a valid RSA private key")
}

fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(EC_PEM.as_bytes()).expect("EC_PEM is a valid P-256 private key")
}

/// The public halves of both keys, as an identity provider would publish them.
fn jwks_json() -> String {
    let public = |key: &EncodingKey, alg, kid: &str| {
        let mut jwk = Jwk::from_encoding_key(key, alg).expect("the test keys have public halves");
        jwk.common.key_id = Some(kid.into());
        jwk
    };
    let set = JwkSet {
        keys: vec![public(&rsa_key(), Algorithm::RS256, "rsa-1"), public(&ec_key(), Algorithm::ES256, "ec-1")],
    };
    serde_json::to_string(&set).expect("a JWKS serializes")
}

fn jwks_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp dir can be made");
    std::fs::write(dir.path().join("jwks.json"), jwks_json()).expect("the temp dir is writable");
    dir
}

/// Claims that pass every check of [`spec`]s with issuer `idp` and audience `junction`.
fn claims(overrides: Value) -> Value {
    let mut claims = json!({ "sub": "alice", "iss": "idp", "aud": "junction", "exp": get_current_timestamp() + 600 });
    for (k, v) in overrides.as_object().expect("overrides are an object") {
        claims[k] = v.clone();
    }
    claims
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let header = Header { kid: kid.map(Into::into), ..Header::new(alg) };
    jsonwebtoken::encode(&header, claims, key).expect("the test keys sign")
}

fn hs256(claims: &Value) -> String {
    sign(Algorithm::HS256, None, &EncodingKey::from_secret(SECRET.as_bytes()), claims)
}

fn hs_verifier() -> JwtVerifier {
    let spec = spec(json!({ "secret": SECRET, "issuer": "idp", "audience": "junction" }));
    JwtVerifier::new(&spec, Path::new(".")).expect("the spec is valid")
}

/// The token's rejection message, checking it is a 401 that does not quote the token.
async fn rejection(verifier: &JwtVerifier, token: &str) -> String {
    match verifier.verify(token).await {
        Err(JwtError::Invalid(message)) => {
            assert!(!message.contains(token), "the message quotes the token: {message}");
            message
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn refusal(fields: Value, project_dir: &Path) -> String {
    match JwtVerifier::new(&spec(fields), project_dir) {
        Ok(_) => panic!("the spec was accepted"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn hs256_valid_token_gives_its_claims() {
    let claims = hs_verifier().verify(&hs256(&claims(json!({})))).await.expect("the token is valid");
    assert_eq!(claims["sub"], "alice");
}

#[tokio::test]
async fn hs256_wrong_secret_is_invalid() {
    let token = sign(Algorithm::HS256, None, &EncodingKey::from_secret(b"another secret"), &claims(json!({})));
    assert!(rejection(&hs_verifier(), &token).await.contains("signature"));
}

#[tokio::test]
async fn expired_token_is_invalid() {
    let token = hs256(&claims(json!({ "exp": get_current_timestamp() - 120 })));
    assert!(rejection(&hs_verifier(), &token).await.contains("expired"));
}

#[tokio::test]
async fn token_without_exp_is_invalid() {
    let mut claims = claims(json!({}));
    claims.as_object_mut().expect("claims are an object").remove("exp");
    assert!(rejection(&hs_verifier(), &hs256(&claims)).await.contains("`exp`"));
}

#[tokio::test]
async fn nbf_in_the_future_is_invalid() {
    let token = hs256(&claims(json!({ "nbf": get_current_timestamp() + 300 })));
    assert!(rejection(&hs_verifier(), &token).await.contains("nbf"));
}

#[tokio::test]
async fn wrong_or_missing_issuer_is_invalid() {
    let verifier = hs_verifier();
    assert!(rejection(&verifier, &hs256(&claims(json!({ "iss": "evil" })))).await.contains("iss"));
    assert!(rejection(&verifier, &hs256(&claims(json!({ "iss": null })))).await.contains("iss"));
}

#[tokio::test]
async fn wrong_or_missing_audience_is_invalid() {
    let verifier = hs_verifier();
    assert!(rejection(&verifier, &hs256(&claims(json!({ "aud": "other" })))).await.contains("aud"));
    assert!(rejection(&verifier, &hs256(&claims(json!({ "aud": ["a", "b"] })))).await.contains("aud"));
    assert!(rejection(&verifier, &hs256(&claims(json!({ "aud": null })))).await.contains("aud"));
}

#[tokio::test]
async fn audience_list_containing_ours_is_accepted() {
    let token = hs256(&claims(json!({ "aud": ["billing", "junction"] })));
    hs_verifier().verify(&token).await.expect("our audience is in the list");
}

#[tokio::test]
async fn alg_none_is_invalid() {
    let part = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let token = format!("{}.{}.", part(json!({ "alg": "none", "typ": "JWT" })), part(claims(json!({}))));
    rejection(&hs_verifier(), &token).await;
}

#[tokio::test]
async fn garbage_is_invalid() {
    assert!(rejection(&hs_verifier(), "not-a-jwt").await.contains("malformed"));
}

#[tokio::test]
async fn hs256_token_is_refused_when_only_rs256_is_accepted() {
    let dir = jwks_dir();
    let fields = json!({ "algorithms": ["RS256"], "secret": SECRET, "jwks": "jwks.json" });
    let verifier = JwtVerifier::new(&spec(fields), dir.path()).expect("the spec is valid");
    // Alg confusion: the attacker signs with what is public, the JWKS, as an HMAC secret.
    let forged =
        sign(Algorithm::HS256, Some("rsa-1"), &EncodingKey::from_secret(jwks_json().as_bytes()), &claims(json!({})));
    assert!(rejection(&verifier, &forged).await.contains("not accepted"));
    rejection(&verifier, &hs256(&claims(json!({})))).await;
}

#[tokio::test]
async fn rs256_and_es256_verify_against_a_jwks_file() {
    let dir = jwks_dir();
    let verifier = JwtVerifier::new(&spec(json!({ "jwks": "jwks.json" })), dir.path()).expect("the spec is valid");
    let rs = sign(Algorithm::RS256, Some("rsa-1"), &rsa_key(), &claims(json!({ "sub": "rs" })));
    let es = sign(Algorithm::ES256, Some("ec-1"), &ec_key(), &claims(json!({ "sub": "es" })));
    assert_eq!(verifier.verify(&rs).await.expect("the RS256 token is valid")["sub"], "rs");
    assert_eq!(verifier.verify(&es).await.expect("the ES256 token is valid")["sub"], "es");
    // No HS256 without a secret, whatever the token says.
    rejection(&verifier, &hs256(&claims(json!({})))).await;
}

#[tokio::test]
async fn token_without_kid_is_tried_against_every_key_of_its_alg() {
    let dir = jwks_dir();
    let verifier = JwtVerifier::new(&spec(json!({ "jwks": "jwks.json" })), dir.path()).expect("the spec is valid");
    let token = sign(Algorithm::RS256, None, &rsa_key(), &claims(json!({})));
    verifier.verify(&token).await.expect("the RSA key of the JWKS verifies it");
}

#[tokio::test]
async fn wrong_kid_or_foreign_key_is_invalid() {
    let dir = jwks_dir();
    let verifier = JwtVerifier::new(&spec(json!({ "jwks": "jwks.json" })), dir.path()).expect("the spec is valid");
    let unknown = sign(Algorithm::RS256, Some("rsa-2"), &rsa_key(), &claims(json!({})));
    assert!(rejection(&verifier, &unknown).await.contains("kid"));
    // The EC key's kid on an RS256 token: the key is of another algorithm, so it is not tried.
    let mismatched = sign(Algorithm::RS256, Some("ec-1"), &rsa_key(), &claims(json!({})));
    rejection(&verifier, &mismatched).await;
}

/// Serves `body` to every request on a free local port; the counter counts requests.
async fn serve_jwks(body: String) -> (String, Arc<AtomicUsize>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a local port is free");
    let url = format!("http://{}/jwks.json", listener.local_addr().expect("a bound listener has an address"));
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let server = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(format!("{head}{body}").as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    (url, hits, server)
}

/// Lets the next unknown kid refetch, as if the 10 s since the last fetch had passed.
async fn forget_last_fetch(verifier: &JwtVerifier) {
    let Some(Jwks::Url(remote)) = &verifier.jwks else { panic!("the verifier has a JWKS URL") };
    remote.fetch.lock().await.last_attempt = None;
}

#[tokio::test]
async fn jwks_url_is_fetched_on_first_use_cached_and_refetched_at_most_every_10s() {
    let (url, hits, _server) = serve_jwks(jwks_json()).await;
    let verifier = JwtVerifier::new(&spec(json!({ "jwks": url })), Path::new(".")).expect("the spec is valid");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "no fetch at load");
    let rs = sign(Algorithm::RS256, Some("rsa-1"), &rsa_key(), &claims(json!({})));
    let es = sign(Algorithm::ES256, Some("ec-1"), &ec_key(), &claims(json!({})));
    verifier.verify(&rs).await.expect("the RS256 token is valid");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    verifier.verify(&es).await.expect("the ES256 token is valid");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the second token uses the cache");

    let unknown = sign(Algorithm::RS256, Some("rotated"), &rsa_key(), &claims(json!({})));
    rejection(&verifier, &unknown).await;
    assert_eq!(hits.load(Ordering::SeqCst), 1, "fetched under 10 s ago: no refetch");
    forget_last_fetch(&verifier).await;
    rejection(&verifier, &unknown).await;
    assert_eq!(hits.load(Ordering::SeqCst), 2, "an unknown kid refetches once");
    rejection(&verifier, &unknown).await;
    assert_eq!(hits.load(Ordering::SeqCst), 2, "and not again within 10 s");
}

#[tokio::test]
async fn concurrent_first_uses_fetch_once() {
    let (url, hits, _server) = serve_jwks(jwks_json()).await;
    let verifier = JwtVerifier::new(&spec(json!({ "jwks": url })), Path::new(".")).expect("the spec is valid");
    let token = sign(Algorithm::RS256, Some("rsa-1"), &rsa_key(), &claims(json!({})));
    let (a, b, c, d) = tokio::join!(
        verifier.verify(&token),
        verifier.verify(&token),
        verifier.verify(&token),
        verifier.verify(&token)
    );
    for result in [a, b, c, d] {
        result.expect("the token is valid");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn jwks_url_down_gives_keys_unavailable_for_an_unknown_kid() {
    let (url, _hits, server) = serve_jwks(jwks_json()).await;
    let verifier = JwtVerifier::new(&spec(json!({ "jwks": url })), Path::new(".")).expect("the spec is valid");
    let known = sign(Algorithm::RS256, Some("rsa-1"), &rsa_key(), &claims(json!({})));
    verifier.verify(&known).await.expect("the token is valid");
    server.abort();
    let _ = server.await;

    forget_last_fetch(&verifier).await;
    let unknown = sign(Algorithm::RS256, Some("rotated"), &rsa_key(), &claims(json!({})));
    match verifier.verify(&unknown).await {
        Err(JwtError::KeysUnavailable(message)) => assert!(!message.contains(&unknown)),
        other => panic!("expected KeysUnavailable, got {other:?}"),
    }
    verifier.verify(&known).await.expect("the keys already fetched still verify");
}

#[tokio::test]
async fn jwks_url_down_on_first_use_gives_keys_unavailable() {
    let (url, _hits, server) = serve_jwks(String::new()).await;
    server.abort();
    let _ = server.await;
    let verifier = JwtVerifier::new(&spec(json!({ "jwks": url })), Path::new(".")).expect("the spec is valid");
    let token = sign(Algorithm::RS256, Some("rsa-1"), &rsa_key(), &claims(json!({})));
    assert!(matches!(verifier.verify(&token).await, Err(JwtError::KeysUnavailable(_))));
}

#[test]
fn new_refuses_an_unknown_algorithm() {
    let message = refusal(json!({ "algorithms": ["HS256", "none"], "secret": SECRET }), Path::new("."));
    assert_eq!(message, "unknown algorithm `none` in `algorithms`: use HS256, RS256 or ES256");
}

#[test]
fn new_refuses_hs256_without_a_secret() {
    let message = refusal(json!({ "algorithms": ["HS256"] }), Path::new("."));
    assert_eq!(message, "`algorithms` lists HS256 but there is no `secret`");
}

#[test]
fn new_refuses_rs256_without_a_jwks() {
    let message = refusal(json!({ "algorithms": ["RS256"], "secret": SECRET }), Path::new("."));
    assert_eq!(message, "`algorithms` lists RS256 but there is no `jwks`");
}

#[test]
fn new_refuses_a_spec_without_any_key() {
    assert!(refusal(json!({}), Path::new(".")).contains("needs a `secret`"));
}

#[test]
fn new_refuses_a_missing_jwks_file() {
    let dir = tempfile::tempdir().expect("a temp dir can be made");
    let message = refusal(json!({ "jwks": "missing.json" }), dir.path());
    assert!(message.starts_with("cannot read the JWKS file "), "{message}");
    assert!(message.contains("missing.json"), "{message}");
}

#[test]
fn new_refuses_a_jwks_file_that_is_not_json() {
    let dir = tempfile::tempdir().expect("a temp dir can be made");
    std::fs::write(dir.path().join("jwks.json"), "keys: []").expect("the temp dir is writable");
    let message = refusal(json!({ "jwks": "jwks.json" }), dir.path());
    assert!(message.contains("jwks.json is not a JWKS document"), "{message}");
}

#[test]
fn new_refuses_a_jwks_file_without_a_key_for_a_listed_algorithm() {
    let dir = tempfile::tempdir().expect("a temp dir can be made");
    std::fs::write(dir.path().join("jwks.json"), r#"{"keys": []}"#).expect("the temp dir is writable");
    let message = refusal(json!({ "algorithms": ["ES256"], "jwks": "jwks.json" }), dir.path());
    assert_eq!(message, "`algorithms` lists ES256 but the `jwks` document has no key for it");
}
