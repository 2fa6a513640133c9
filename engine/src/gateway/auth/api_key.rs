//! `api_key`: a key in a header, or in the query for callers that cannot send headers (amoCRM's
//! webhooks are unsigned and carry no custom header: the key goes in the webhook's URL,
//! `?token=…`, and never further than this check). Only the keys' SHA-256 hashes are in
//! config, so a leaked config does not leak the keys; the caller is known by the key's id.

use std::collections::HashMap;

use http::HeaderMap;
use serde::Deserialize;

use super::{Denied, Principal, SchemeError, header_name, parse_sha256, sha256};

/// `api_key: { header: x-api-key, keys: [{ id: crm, sha256: … }] }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySpec {
    /// The header the key travels in (default `x-api-key`).
    #[serde(default = "default_header")]
    pub header: String,
    /// A query parameter the key travels in instead of a header (`query: token`).
    #[serde(default)]
    pub query: Option<String>,
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
    query: Option<String>,
    /// By hash: a lookup by the presented key's hash needs no comparison of secrets.
    ids: HashMap<[u8; 32], String>,
}

impl ApiKeys {
    pub fn new(spec: &ApiKeySpec) -> Result<Self, SchemeError> {
        let header = header_name(&spec.header)?;
        if spec.keys.is_empty() {
            return Err(SchemeError::NoKeys);
        }
        let mut ids = HashMap::new();
        for key in &spec.keys {
            let hash = parse_sha256(&key.sha256, format!("key `{}`", key.id))?;
            if ids.insert(hash, key.id.clone()).is_some() {
                return Err(SchemeError::SameKey { id: key.id.clone() });
            }
        }
        if let Some(q) = &spec.query
            && (q.is_empty() || q.contains(['&', '=', '#']))
        {
            return Err(SchemeError::QueryName { name: q.clone() });
        }
        Ok(Self { header, query: spec.query.clone(), ids })
    }

    pub fn check(&self, headers: &HeaderMap, uri: &http::Uri) -> Result<Principal, Denied> {
        let presented: Vec<u8> = match &self.query {
            Some(name) => uri
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (crate::gateway::handler::percent_decode(k) == *name)
                        .then(|| crate::gateway::handler::percent_decode(v).into_bytes())
                })
                .ok_or_else(|| Denied::Unauthorized(format!("the `{name}` query parameter is required")))?,
            None => headers
                .get(&self.header)
                .ok_or_else(|| Denied::Unauthorized(format!("the `{}` header is required", self.header)))?
                .as_bytes()
                .to_vec(),
        };
        match self.ids.get(&sha256(&presented)) {
            Some(id) => Ok(Principal { id: id.clone(), kind: "api_key" }),
            None => Err(Denied::Unauthorized(format!("the key in `{}` is not valid", self.name()))),
        }
    }

    /// The header (or query parameter) the key travels in.
    pub fn name(&self) -> &str {
        self.query.as_deref().unwrap_or(self.header.as_str())
    }

    /// `header` or `query`, as OpenAPI's `in`.
    pub fn location(&self) -> &'static str {
        if self.query.is_some() { "query" } else { "header" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ApiKeys {
        let spec = ApiKeySpec {
            header: "X-Api-Key".into(),
            query: None,
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
        let p = keys().check(&headers(&[("x-api-key", "s3cret")]), &http::Uri::from_static("/")).expect("accepted");
        assert_eq!(p, Principal { id: "crm".into(), kind: "api_key" });
    }

    #[test]
    fn a_wrong_or_missing_key_is_refused_without_echoing_it() {
        let Err(Denied::Unauthorized(m)) =
            keys().check(&headers(&[("x-api-key", "guess")]), &http::Uri::from_static("/"))
        else {
            panic!("a wrong key must be refused")
        };
        assert!(!m.contains("guess"), "{m}");
        assert!(matches!(keys().check(&HeaderMap::new(), &http::Uri::from_static("/")), Err(Denied::Unauthorized(_))));
    }

    #[test]
    fn a_key_in_the_query_is_checked_there() {
        let spec = ApiKeySpec {
            header: "x-api-key".into(),
            query: Some("token".into()),
            keys: vec![KeySpec { id: "amocrm".into(), sha256: hex::encode(sha256(b"s3 cret")) }],
        };
        let keys = ApiKeys::new(&spec).expect("valid spec");
        let uri = |q: &'static str| http::Uri::from_static(q);
        let p = keys.check(&HeaderMap::new(), &uri("/hook?a=1&token=s3%20cret")).expect("accepted");
        assert_eq!(p.id, "amocrm");
        assert!(keys.check(&HeaderMap::new(), &uri("/hook?token=guess")).is_err());
        assert!(keys.check(&headers(&[("x-api-key", "s3 cret")]), &uri("/hook")).is_err(), "only the query counts");
        assert_eq!((keys.location(), keys.name()), ("query", "token"));
    }

    #[test]
    fn config_must_hold_hashes() {
        let spec = ApiKeySpec {
            header: "x-api-key".into(),
            query: None,
            keys: vec![KeySpec { id: "a".into(), sha256: "plain".into() }],
        };
        assert!(ApiKeys::new(&spec).err().expect("refused").to_string().contains("64 hex digits"));
    }
}
