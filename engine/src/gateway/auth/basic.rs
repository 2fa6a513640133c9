//! `basic`: HTTP Basic against the SHA-256 hashes of the users' passwords (for tools that
//! speak nothing else; prefer api_key or jwt where the caller can).

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::HeaderMap;
use serde::Deserialize;

use super::{Denied, Principal, SchemeError, parse_sha256, sha256};

/// `basic: { users: [{ name: ops, sha256: … }] }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicSpec {
    pub users: Vec<UserSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    pub name: String,
    /// The SHA-256 of the password, in hex.
    pub sha256: String,
}

pub struct BasicUsers {
    users: HashMap<String, [u8; 32]>,
}

impl BasicUsers {
    pub fn new(spec: &BasicSpec) -> Result<Self, SchemeError> {
        if spec.users.is_empty() {
            return Err(SchemeError::NoUsers);
        }
        let mut users = HashMap::new();
        for user in &spec.users {
            let hash = parse_sha256(&user.sha256, format!("user `{}`", user.name))?;
            users.insert(user.name.clone(), hash);
        }
        Ok(Self { users })
    }

    pub fn check(&self, headers: &HeaderMap) -> Result<Principal, Denied> {
        let refused = || Denied::Unauthorized("valid `Authorization: Basic` credentials are required".into());
        let value = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(refused)?;
        let (scheme, encoded) = value.split_once(' ').ok_or_else(refused)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(refused());
        }
        let decoded = BASE64.decode(encoded.trim()).map_err(|_| refused())?;
        let decoded = String::from_utf8(decoded).map_err(|_| refused())?;
        let (name, password) = decoded.split_once(':').ok_or_else(refused)?;
        // Hashes compared in full whatever the user: no early exit that times a guess.
        let expected = self.users.get(name).copied().unwrap_or([0; 32]);
        let given = sha256(password.as_bytes());
        let same = expected.iter().zip(given.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if same && self.users.contains_key(name) {
            Ok(Principal { id: name.to_owned(), kind: "basic" })
        } else {
            Err(refused())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> BasicUsers {
        let spec =
            BasicSpec { users: vec![UserSpec { name: "ops".into(), sha256: hex::encode(sha256(b"pw:with:colons")) }] };
        BasicUsers::new(&spec).expect("valid spec")
    }

    fn with_auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, value.parse().expect("header value"));
        h
    }

    #[test]
    fn right_password_passes_wrong_one_does_not() {
        let ok = with_auth(&format!("Basic {}", BASE64.encode("ops:pw:with:colons")));
        assert_eq!(users().check(&ok).expect("accepted").id, "ops");
        for bad in ["ops:nope", "nobody:pw:with:colons", "no-colon"] {
            let h = with_auth(&format!("Basic {}", BASE64.encode(bad)));
            assert!(users().check(&h).is_err(), "{bad}");
        }
        assert!(users().check(&with_auth("Bearer x")).is_err());
        assert!(users().check(&with_auth("Basic !!!")).is_err());
        assert!(users().check(&HeaderMap::new()).is_err());
    }
}
