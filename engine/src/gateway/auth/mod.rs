//! How callers of http routes prove who they are: the schemes a project names in its
//! `auth:` section, and what a route's `auth:` refers to. Deny by default: an http route
//! says which scheme it uses, or `none` to be open on purpose.

mod api_key;
mod basic;
mod hmac;
pub mod jwt;

pub use hmac::sign as sign_webhook;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use serde::Deserialize;

/// One named scheme of the `auth:` section: `name: { api_key: {…} }` and so on.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemeSpec {
    /// A key in a header, checked against the SHA-256 hashes of the issued keys.
    ApiKey(api_key::ApiKeySpec),
    /// A bearer JWT (HS256, RS256 or ES256) checked for signature, expiry, issuer and audience.
    Jwt(jwt::JwtSpec),
    /// A webhook signature: HMAC-SHA256 over a timestamp and the raw body.
    Hmac(hmac::HmacSpec),
    /// HTTP Basic, against the SHA-256 hashes of the users' passwords.
    Basic(basic::BasicSpec),
}

/// Who made a request, as far as its route's scheme could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key id, JWT subject, user name or signing scheme; `anonymous` for open routes.
    pub id: String,
    /// `api_key`, `jwt`, `hmac`, `basic` or `none`.
    pub kind: &'static str,
}

impl Principal {
    pub fn anonymous() -> Self {
        Self { id: "anonymous".into(), kind: "none" }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No credentials or wrong ones: 401. The message says what was wrong, never the secret.
    Unauthorized(String),
    /// The means to check were unavailable (a JWKS URL down): 503.
    Unavailable(String),
}

/// Why a scheme of the `auth:` section cannot be used: each says what to change in it.
#[derive(Debug, thiserror::Error)]
pub enum SchemeError {
    /// A `header` (or `timestamp_header`) HTTP does not allow: letters, digits and `-` only.
    #[error("`{name}` is not a valid header name")]
    HeaderName { name: String, source: http::header::InvalidHeaderName },
    /// A `sha256` that is not a SHA-256 in hex: put the hash of the secret there, not the secret.
    #[error(
        "{owner}: `sha256` must be 64 hex digits (the SHA-256 of the secret, e.g. from `printf %s SECRET | sha256sum`)"
    )]
    NotSha256 { owner: String, source: hex::FromHexError },
    /// An `api_key` scheme without `keys`: list at least one.
    #[error("an api_key scheme needs at least one key")]
    NoKeys,
    /// Two keys with one hash: the same key issued twice; give each caller a key of its own.
    #[error("key `{id}` has the same hash as another key")]
    SameKey { id: String },
    /// A `query` that cannot name a parameter: not empty, and no `&`, `=` or `#`.
    #[error("`{name}` is not a query parameter name")]
    QueryName { name: String },
    /// A `basic` scheme without `users`: list at least one.
    #[error("a basic scheme needs at least one user")]
    NoUsers,
    /// An `hmac` secret shorter than 16 bytes: agree a longer one with the sender.
    #[error("an hmac secret must be at least 16 bytes long")]
    ShortSecret,
    /// An empty jwt `secret`: the variable it comes from is probably unset.
    #[error("`secret` is empty")]
    EmptySecret,
    /// A `jwt` with no key at all: give a `secret`, a `jwks`, or both.
    #[error("`jwt` needs a `secret` (for HS256) or a `jwks` (for RS256 and ES256)")]
    NoJwtKey,
    /// A `jwks` file that cannot be read: the path is relative to the project directory.
    #[error("cannot read the JWKS file {path}: {source}")]
    JwksUnreadable { path: PathBuf, source: std::io::Error },
    /// A `jwks` file that is not a JWKS document: save the identity provider's `jwks_uri` there.
    #[error("the JWKS file {path} is not a JWKS document ({source})")]
    NotJwks { path: PathBuf, source: serde_json::Error },
    /// A `jwks` that is neither a file nor a URL that parses: fix the URL.
    #[error("`jwks` is not a valid URL: {0}")]
    JwksUrl(#[source] UrlError),
    /// The HTTP client for a `jwks` URL could not be built (the system's TLS roots).
    #[error("cannot set up the HTTP client for `jwks`: {0}")]
    JwksClient(#[source] reqwest::Error),
    /// A `jwks` document without a key Junction verifies with: it needs an RSA or P-256 key.
    #[error("the `jwks` document has no RS256 (RSA) or ES256 (P-256) key")]
    NoJwksKey,
    /// An algorithm in `algorithms` other than HS256, RS256 and ES256.
    #[error("unknown algorithm `{name}` in `algorithms`: use HS256, RS256 or ES256")]
    UnknownAlgorithm { name: String },
    /// HS256 in `algorithms` without a `secret`: add the secret, or drop HS256.
    #[error("`algorithms` lists HS256 but there is no `secret`")]
    NoSecret,
    /// RS256 or ES256 in `algorithms` without a `jwks`: add the JWKS, or drop the algorithm.
    #[error("`algorithms` lists {name} but there is no `jwks`")]
    NoJwks { name: String },
    /// RS256 or ES256 in `algorithms` that the `jwks` file has no key for: drop the algorithm,
    /// or use the identity provider's current JWKS.
    #[error("`algorithms` lists {name} but the `jwks` document has no key for it")]
    NoKeyFor { name: String },
}

/// `url::ParseError`, named through reqwest's `Url` (Junction does not depend on `url` itself).
type UrlError = <reqwest::Url as std::str::FromStr>::Err;

/// A compiled scheme, shared by every route that names it.
pub enum Authenticator {
    ApiKey(api_key::ApiKeys),
    Jwt(jwt::JwtVerifier),
    Hmac(hmac::HmacVerifier),
    Basic(basic::BasicUsers),
}

impl Authenticator {
    /// Checks a scheme's settings; the error is a sentence for the config's author.
    pub fn new(spec: &SchemeSpec, project_dir: &Path) -> Result<Arc<Self>, SchemeError> {
        Ok(Arc::new(match spec {
            SchemeSpec::ApiKey(s) => Self::ApiKey(api_key::ApiKeys::new(s)?),
            SchemeSpec::Jwt(s) => Self::Jwt(jwt::JwtVerifier::new(s, project_dir)?),
            SchemeSpec::Hmac(s) => Self::Hmac(hmac::HmacVerifier::new(s)?),
            SchemeSpec::Basic(s) => Self::Basic(basic::BasicUsers::new(s)?),
        }))
    }

    /// Whether the scheme signs the body, so the body must be read before the check.
    pub fn needs_body(&self) -> bool {
        matches!(self, Self::Hmac(_))
    }

    /// Checks a request: its headers, and its raw body when [`Self::needs_body`].
    pub async fn check(&self, parts: &Parts, body: Option<&Bytes>) -> Result<Principal, Denied> {
        match self {
            Self::ApiKey(keys) => keys.check(&parts.headers, &parts.uri),
            Self::Basic(users) => users.check(&parts.headers),
            Self::Hmac(verifier) => verifier.check(&parts.headers, body.map_or(&[][..], |b| &b[..])),
            Self::Jwt(verifier) => {
                let token = bearer(&parts.headers).ok_or_else(|| {
                    Denied::Unauthorized("an `Authorization: Bearer <token>` header is required".into())
                })?;
                let claims = verifier.verify(token).await.map_err(|e| match e {
                    jwt::JwtError::Invalid(m) => Denied::Unauthorized(m),
                    jwt::JwtError::KeysUnavailable(m) => Denied::Unavailable(m),
                })?;
                let subject = claims.get("sub").and_then(|s| s.as_str()).unwrap_or("unknown");
                Ok(Principal { id: subject.to_owned(), kind: "jwt" })
            }
        }
    }

    /// The scheme's kind as written in config (`api_key`, …), for the OpenAPI document.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ApiKey(_) => "api_key",
            Self::Jwt(_) => "jwt",
            Self::Hmac(_) => "hmac",
            Self::Basic(_) => "basic",
        }
    }

    /// The query parameter the credentials travel in, if they do (an `api_key` with `query`).
    pub fn query_param(&self) -> Option<&str> {
        match self {
            Self::ApiKey(keys) if keys.location() == "query" => Some(keys.name()),
            _ => None,
        }
    }

    /// The header the credentials travel in (for the OpenAPI document).
    pub fn header(&self) -> &str {
        match self {
            Self::ApiKey(keys) => keys.name(),
            Self::Hmac(verifier) => verifier.header(),
            Self::Jwt(_) | Self::Basic(_) => "authorization",
        }
    }
}

fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// A SHA-256 as written in config: 64 hex digits. `owner` says whose hash it is.
fn parse_sha256(hex_digest: &str, owner: String) -> Result<[u8; 32], SchemeError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_digest.trim(), &mut out).map_err(|source| SchemeError::NotSha256 { owner, source })?;
    Ok(out)
}

/// A header name as written in config.
fn header_name(name: &str) -> Result<http::HeaderName, SchemeError> {
    http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
        .map_err(|source| SchemeError::HeaderName { name: name.to_owned(), source })
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}
