//! `hmac`: webhook signatures. The sender signs `"{timestamp}.{raw body}"` with a shared
//! secret (HMAC-SHA256, as Stripe and GitHub-style webhooks do); a request outside the time
//! window, or a signature already seen inside it, is a replay and is refused.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use http::HeaderMap;
use serde::Deserialize;
use sha2::Sha256;

use super::{Denied, Principal, SchemeError, header_name};
use crate::config::duration::ConfigDuration;

/// `hmac: { secret: ${CRM_WEBHOOK_SECRET}, header: x-signature, timestamp_header: x-timestamp, window: 5m }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacSpec {
    /// The shared secret (from the environment: `${VAR}`).
    pub secret: String,
    /// The signature header: `sha256=<hex>` or bare hex (default `x-signature`).
    #[serde(default = "default_header")]
    pub header: String,
    /// The header with the signing time in Unix seconds (default `x-timestamp`).
    #[serde(default = "default_timestamp_header")]
    pub timestamp_header: String,
    /// How far the timestamp may be from now, either way (default 5m).
    #[serde(default)]
    pub window: Option<ConfigDuration>,
    /// The caller's name in logs and audit (default `hmac`).
    #[serde(default)]
    pub id: Option<String>,
}

fn default_header() -> String {
    "x-signature".into()
}

fn default_timestamp_header() -> String {
    "x-timestamp".into()
}

/// Signatures seen inside the window are remembered up to this many; past it, expired ones
/// are swept, and if all are fresh the oldest half goes (a flood of valid signatures is
/// already a caller holding the secret).
const MAX_SEEN: usize = 100_000;

pub struct HmacVerifier {
    secret: Vec<u8>,
    header: http::HeaderName,
    timestamp_header: http::HeaderName,
    window: Duration,
    id: String,
    seen: Mutex<HashMap<[u8; 32], Instant>>,
}

impl HmacVerifier {
    pub fn new(spec: &HmacSpec) -> Result<Self, SchemeError> {
        if spec.secret.len() < 16 {
            return Err(SchemeError::ShortSecret);
        }
        Ok(Self {
            secret: spec.secret.as_bytes().to_vec(),
            header: header_name(&spec.header)?,
            timestamp_header: header_name(&spec.timestamp_header)?,
            window: spec.window.map_or(Duration::from_secs(300), |w| w.0),
            id: spec.id.clone().unwrap_or_else(|| "hmac".into()),
            seen: Mutex::new(HashMap::new()),
        })
    }

    pub fn header(&self) -> &str {
        self.header.as_str()
    }

    /// The header with the signing time (for the OpenAPI document).
    pub fn timestamp_header(&self) -> &str {
        self.timestamp_header.as_str()
    }

    pub fn check(&self, headers: &HeaderMap, body: &[u8]) -> Result<Principal, Denied> {
        let text = |name: &http::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| Denied::Unauthorized(format!("the `{name}` header is required")))
        };
        let timestamp = text(&self.timestamp_header)?;
        let signed_at: u64 = timestamp.trim().parse().map_err(|_| {
            Denied::Unauthorized(format!("`{}` must be the signing time in Unix seconds", self.timestamp_header))
        })?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if now.abs_diff(signed_at) > self.window.as_secs() {
            return Err(Denied::Unauthorized(format!(
                "the signature's timestamp is outside the {}s window (a replay, or a clock far off)",
                self.window.as_secs()
            )));
        }
        let given = text(&self.header)?;
        let given = given.trim();
        let given = given.strip_prefix("sha256=").unwrap_or(given);
        let mut signature = [0u8; 32];
        hex::decode_to_slice(given, &mut signature)
            .map_err(|_| Denied::Unauthorized(format!("`{}` must be `sha256=<64 hex digits>`", self.header)))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes a key of any length");
        mac.update(timestamp.trim().as_bytes());
        mac.update(b".");
        mac.update(body);
        // `verify_slice` compares in constant time.
        mac.verify_slice(&signature)
            .map_err(|_| Denied::Unauthorized("the signature does not match the body".into()))?;
        self.first_sighting(signature)?;
        Ok(Principal { id: self.id.clone(), kind: "hmac" })
    }

    fn first_sighting(&self, signature: [u8; 32]) -> Result<(), Denied> {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.get(&signature).is_some_and(|at| now.duration_since(*at) <= self.window * 2) {
            return Err(Denied::Unauthorized("this signed request was already received (a replay)".into()));
        }
        if seen.len() >= MAX_SEEN {
            let window = self.window * 2;
            seen.retain(|_, at| now.duration_since(*at) <= window);
            if seen.len() >= MAX_SEEN {
                let mut ages: Vec<Instant> = seen.values().copied().collect();
                ages.sort_unstable();
                let cutoff = ages[ages.len() / 2];
                seen.retain(|_, at| *at > cutoff);
            }
        }
        seen.insert(signature, now);
        Ok(())
    }
}

/// The signature a sender puts in the header for `body` signed at `timestamp`.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef-secret";

    fn verifier() -> HmacVerifier {
        let spec = HmacSpec {
            secret: SECRET.into(),
            header: "X-Signature".into(),
            timestamp_header: "X-Timestamp".into(),
            window: None,
            id: Some("crm".into()),
        };
        HmacVerifier::new(&spec).expect("valid spec")
    }

    fn signed(ts: u64, body: &[u8], secret: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-timestamp", ts.to_string().parse().expect("value"));
        h.insert("x-signature", sign(secret.as_bytes(), &ts.to_string(), body).parse().expect("value"));
        h
    }

    fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
    }

    #[test]
    fn a_fresh_signature_over_the_body_passes_once() {
        let v = verifier();
        let h = signed(now(), b"{\"id\":1}", SECRET);
        assert_eq!(v.check(&h, b"{\"id\":1}").expect("accepted").id, "crm");
        let Err(Denied::Unauthorized(m)) = v.check(&h, b"{\"id\":1}") else { panic!("a replay must be refused") };
        assert!(m.contains("replay"), "{m}");
    }

    #[test]
    fn a_changed_body_wrong_secret_or_old_timestamp_is_refused() {
        let v = verifier();
        assert!(v.check(&signed(now(), b"a", SECRET), b"b").is_err());
        assert!(v.check(&signed(now(), b"a", "another-secret-0123456"), b"a").is_err());
        let Err(Denied::Unauthorized(m)) = v.check(&signed(now() - 3600, b"a", SECRET), b"a") else {
            panic!("an old timestamp must be refused")
        };
        assert!(m.contains("window"), "{m}");
        assert!(v.check(&HeaderMap::new(), b"a").is_err());
    }

    #[test]
    fn short_secrets_are_refused_at_load() {
        let spec = HmacSpec {
            secret: "short".into(),
            header: default_header(),
            timestamp_header: default_timestamp_header(),
            window: None,
            id: None,
        };
        assert!(matches!(HmacVerifier::new(&spec), Err(SchemeError::ShortSecret)));
    }
}
