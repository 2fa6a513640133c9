//! `jwt`: bearer tokens signed with a shared secret (HS256) or by an identity provider whose
//! public keys come from a JWKS (RS256, ES256). The token's own `alg` only picks among keys
//! configured for that algorithm, so a token cannot choose how it is checked.

mod keys;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::SchemeError;
use keys::Jwks;

/// The algorithms a config may name; others (and `none`) are refused at load.
const SUPPORTED: [(&str, Algorithm); 3] =
    [("HS256", Algorithm::HS256), ("RS256", Algorithm::RS256), ("ES256", Algorithm::ES256)];

/// `auth: { jwt: { … } }` in junction.yaml's `auth:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSpec {
    /// Accepted algorithms, of HS256, RS256 and ES256 (default: every one a key is configured for).
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// Required `iss`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Required `aud` (the token's aud may be a string or a list containing it).
    #[serde(default)]
    pub audience: Option<String>,
    /// Shared secret for HS256.
    #[serde(default)]
    pub secret: Option<String>,
    /// A JWKS document with the RS256/ES256 public keys: a file (relative to the project directory) or an http(s) URL.
    #[serde(default)]
    pub jwks: Option<String>,
    /// Clock skew allowed on exp/nbf, in seconds (default 60).
    #[serde(default)]
    pub leeway_secs: Option<u64>,
    /// How long a JWKS fetched from a URL is kept before it is fetched again (seconds, default 300).
    #[serde(default)]
    pub jwks_refresh_secs: Option<u64>,
}

/// Why a token was not accepted. Messages never quote the token.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// The token is bad (malformed, bad signature, expired, wrong iss/aud, unknown kid…): the caller gets 401.
    #[error("{0}")]
    Invalid(String),
    /// The keys could not be fetched (JWKS URL down): the caller gets 503.
    #[error("{0}")]
    KeysUnavailable(String),
}

/// A checked [`JwtSpec`]: the keys, and one [`Validation`] per accepted algorithm.
pub struct JwtVerifier {
    /// Exactly one algorithm each: jsonwebtoken refuses a key whose family differs from any
    /// listed algorithm, so mixing families in one `Validation` would fail every token.
    validations: Vec<Validation>,
    secret: Option<DecodingKey>,
    jwks: Option<Jwks>,
}

impl JwtVerifier {
    /// Checks the spec (known algorithms, a key for each, a readable and valid JWKS file) at load time.
    /// Errors are sentences for the config author (they become `file:line:col: message`).
    /// A JWKS URL is NOT fetched here (no network at load); it is fetched on first use.
    pub fn new(spec: &JwtSpec, project_dir: &Path) -> Result<Self, SchemeError> {
        let secret = match spec.secret.as_deref() {
            Some("") => return Err(SchemeError::EmptySecret),
            Some(s) => Some(DecodingKey::from_secret(s.as_bytes())),
            None => None,
        };
        let refresh = Duration::from_secs(spec.jwks_refresh_secs.unwrap_or(300));
        let jwks = spec.jwks.as_deref().map(|source| Jwks::new(source, project_dir, refresh)).transpose()?;
        let algorithms = accepted_algorithms(spec, secret.is_some(), jwks.as_ref())?;
        let validations = algorithms.into_iter().map(|alg| validation(spec, alg)).collect();
        Ok(Self { validations, secret, jwks })
    }

    /// Verifies a compact JWT (without the "Bearer " prefix): signature, alg among the accepted
    /// ones (never `none`; an HS256 token must not verify against an RSA key's bytes — alg confusion),
    /// exp (required), nbf, iss, aud. Returns the claims as JSON.
    pub async fn verify(&self, token: &str) -> Result<serde_json::Value, JwtError> {
        // `none` and unknown algorithms fail here: jsonwebtoken's `Algorithm` has no such variant.
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(e.kind()))?;
        let validation = self
            .validations
            .iter()
            .find(|v| v.algorithms == [header.alg])
            .ok_or_else(|| JwtError::Invalid(format!("tokens signed with {:?} are not accepted", header.alg)))?;
        if header.alg == Algorithm::HS256 {
            let secret = self.secret.as_ref().expect("HS256 is only accepted when a secret is configured");
            return decode(token, secret, validation);
        }
        let jwks = self.jwks.as_ref().expect("RS256 and ES256 are only accepted when a JWKS is configured");
        let keys = jwks.keys(header.kid.as_deref()).await?;
        let mut tried = false;
        for key in keys.candidates(header.alg, header.kid.as_deref()) {
            tried = true;
            match jsonwebtoken::decode::<serde_json::Value>(token, key, validation) {
                Ok(data) => return Ok(data.claims),
                // Without a kid every key of the algorithm is tried: another one may have signed it.
                Err(e) if *e.kind() == ErrorKind::InvalidSignature => {}
                Err(e) => return Err(invalid(e.kind())),
            }
        }
        if tried {
            return Err(invalid(&ErrorKind::InvalidSignature));
        }
        Err(JwtError::Invalid("no key in the JWKS matches the token's `kid` and algorithm".into()))
    }
}

/// The configured `algorithms`, or every one a key is configured for.
fn accepted_algorithms(spec: &JwtSpec, has_secret: bool, jwks: Option<&Jwks>) -> Result<Vec<Algorithm>, SchemeError> {
    let has_key = |alg| match alg {
        Algorithm::HS256 => has_secret,
        _ => jwks.is_some_and(|j| j.may_have(alg)),
    };
    if spec.algorithms.is_empty() {
        let found: Vec<Algorithm> = SUPPORTED.iter().map(|(_, alg)| *alg).filter(|alg| has_key(*alg)).collect();
        if found.is_empty() {
            return Err(match jwks {
                Some(_) => SchemeError::NoJwksKey,
                None => SchemeError::NoJwtKey,
            });
        }
        return Ok(found);
    }
    let mut accepted = Vec::new();
    for name in &spec.algorithms {
        let (_, alg) = SUPPORTED
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| SchemeError::UnknownAlgorithm { name: name.clone() })?;
        if !has_key(*alg) {
            return Err(match (alg, jwks) {
                (Algorithm::HS256, _) => SchemeError::NoSecret,
                (_, None) => SchemeError::NoJwks { name: name.clone() },
                (_, Some(_)) => SchemeError::NoKeyFor { name: name.clone() },
            });
        }
        if !accepted.contains(alg) {
            accepted.push(*alg);
        }
    }
    Ok(accepted)
}

fn validation(spec: &JwtSpec, alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = spec.leeway_secs.unwrap_or(60);
    v.validate_nbf = true;
    // jsonwebtoken only compares iss and aud when present: requiring them makes a token
    // without them fail instead of slipping through.
    if let Some(issuer) = &spec.issuer {
        v.set_issuer(&[issuer]);
        v.required_spec_claims.insert("iss".into());
    }
    match &spec.audience {
        Some(audience) => {
            v.set_audience(&[audience]);
            v.required_spec_claims.insert("aud".into());
        }
        // Otherwise jsonwebtoken refuses every token that carries an `aud`.
        None => v.validate_aud = false,
    }
    v
}

fn decode(token: &str, key: &DecodingKey, validation: &Validation) -> Result<serde_json::Value, JwtError> {
    jsonwebtoken::decode::<serde_json::Value>(token, key, validation).map(|t| t.claims).map_err(|e| invalid(e.kind()))
}

/// Our own sentences: jsonwebtoken's messages may quote parts of the token.
fn invalid(kind: &ErrorKind) -> JwtError {
    JwtError::Invalid(match kind {
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (`nbf` is in the future)".into(),
        ErrorKind::InvalidIssuer => "the token's issuer (`iss`) is not the expected one".into(),
        ErrorKind::InvalidAudience => "the token's audience (`aud`) is not the expected one".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("the token's `{claim}` claim is not valid"),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => "the token's algorithm is not accepted".into(),
        _ => "the token is malformed".into(),
    })
}
