//! `api_key`: a key in a header. Only the keys' SHA-256 hashes are in config, so a leaked
//! config does not leak the keys; the caller is known by the key's id.

use std::collections::HashMap;

use http::HeaderMap;
use serde::Deserialize;

use super::{Denied, Principal, parse_sha256, sha256};

/// `api_key: { header: x-api-key, keys: [{ id: crm, sha256: … }] }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySpec {
    /// The header the key travels in (default `x-api-key`).
    #[serde(default = "default_header")]
    pub header: String,
    /// The issued keys: an id (who the caller is, in logs and audit) and the key's SHA-256 in hex.
    pub keys: Vec<KeySpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    pub id: String,
    pub sha256: String,
}

fn default_header() -> String {
    "x-api-key".into()
}

pub struct ApiKeys {
    header: http::HeaderName,
    /// By hash: a lookup by the presented key's hash needs no comparison of secrets.
    ids: HashMap<[u8; 32], String>,
}

impl ApiKeys {
    pub fn new(spec: &ApiKeySpec) -> Result<Self, String> {
        let header = http::HeaderName::from_bytes(spec.header.to_ascii_lowercase().as_bytes())
            .map_err(|_| format!("`{}` is not a valid header name", spec.header))?;
        if spec.keys.is_empty() {
            return Err("an api_key scheme needs at least one key".into());
        }
        let mut ids = HashMap::new();
        for key in &spec.keys {
            let hash = parse_sha256(&key.sha256, &format!("key `{}`", key.id))?;
            if ids.insert(hash, key.id.clone()).is_some() {
                return Err(format!("key `{}` has the same hash as another key", key.id));
            }
        }
        Ok(Self { header, ids })
    }

    pub fn check(&self, headers: &HeaderMap) -> Result<Principal, Denied> {
        let presented = headers
            .get(&self.header)
            .ok_or_else(|| Denied::Unauthorized(format!("the `{}` header is required", self.header)))?;
        match self.ids.get(&sha256(presented.as_bytes())) {
            Some(id) => Ok(Principal { id: id.clone(), kind: "api_key" }),
            None => Err(Denied::Unauthorized(format!("the key in `{}` is not valid", self.header))),
        }
    }

    pub fn header(&self) -> &str {
        self.header.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ApiKeys {
        let spec = ApiKeySpec {
            header: "X-Api-Key".into(),
            keys: vec![KeySpec { id: "crm".into(), sha256: hex::encode(sha256(b"s3cret")) }],
        };
        ApiKeys::new(&spec).expect("valid spec")
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(http::HeaderName::from_bytes(k.as_bytes()).expect("name"), v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn a_known_key_names_its_caller() {
        let p = keys().check(&headers(&[("x-api-key", "s3cret")])).expect("accepted");
        assert_eq!(p, Principal { id: "crm".into(), kind: "api_key" });
    }

    #[test]
    fn a_wrong_or_missing_key_is_refused_without_echoing_it() {
        let Err(Denied::Unauthorized(m)) = keys().check(&headers(&[("x-api-key", "guess")])) else {
            panic!("a wrong key must be refused")
        };
        assert!(!m.contains("guess"), "{m}");
        assert!(matches!(keys().check(&HeaderMap::new()), Err(Denied::Unauthorized(_))));
    }

    #[test]
    fn config_must_hold_hashes() {
        let spec =
            ApiKeySpec { header: "x-api-key".into(), keys: vec![KeySpec { id: "a".into(), sha256: "plain".into() }] };
        assert!(ApiKeys::new(&spec).err().expect("refused").contains("64 hex digits"));
    }
}
