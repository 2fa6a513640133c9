//! Where the RS256/ES256 public keys come from: a JWKS file read once at load, or a JWKS URL
//! fetched on first use, kept for a while, and fetched again when a token names a key we lack.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::JwtError;
use crate::gateway::auth::SchemeError;

/// Fetches of a JWKS URL are at least this far apart, so tokens with made-up `kid`s cannot
/// make us hammer the identity provider.
const MIN_REFETCH: Duration = Duration::from_secs(10);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The usable keys of one JWKS document.
#[derive(Default)]
pub(super) struct KeySet {
    keys: Vec<Key>,
}

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

impl KeySet {
    fn parse(json: &[u8]) -> Result<Self, serde_json::Error> {
        let set: JwkSet = serde_json::from_slice(json)?;
        Ok(Self { keys: set.keys.iter().filter_map(usable).collect() })
    }

    fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Only keys of the token's algorithm, so an RSA key's bytes can never meet an HMAC check.
    pub(super) fn candidates<'a>(
        &'a self,
        alg: Algorithm,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a DecodingKey> {
        self.keys
            .iter()
            .filter(move |k| k.alg == alg && kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
            .map(|k| &k.key)
    }
}

/// The key as RS256 or ES256, or `None` for keys we never verify with (encryption keys,
/// other curves, `oct` keys: HS256 uses only the configured secret).
fn usable(jwk: &Jwk) -> Option<Key> {
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return None;
    }
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        _ => return None,
    };
    if jwk.common.key_algorithm.is_some_and(|declared| declared != KeyAlgorithm::from(alg)) {
        return None;
    }
    match DecodingKey::from_jwk(jwk) {
        Ok(key) => Some(Key { kid: jwk.common.key_id.clone(), alg, key }),
        Err(e) => {
            tracing::warn!(kid = ?jwk.common.key_id, error = %e, "skipping a JWKS key that cannot be decoded");
            None
        }
    }
}

/// The `jwks:` of a spec.
pub(super) enum Jwks {
    File(Arc<KeySet>),
    Url(Remote),
}

impl Jwks {
    /// Reads and checks a file now; a URL is only checked for syntax (no network at load).
    pub(super) fn new(source: &str, project_dir: &Path, refresh: Duration) -> Result<Self, SchemeError> {
        if source.starts_with("http://") || source.starts_with("https://") {
            return Remote::new(source, refresh).map(Self::Url);
        }
        let path = project_dir.join(source);
        let json = match std::fs::read(&path) {
            Ok(json) => json,
            Err(source) => return Err(SchemeError::JwksUnreadable { path, source }),
        };
        match KeySet::parse(&json) {
            Ok(keys) => Ok(Self::File(Arc::new(keys))),
            Err(source) => Err(SchemeError::NotJwks { path, source }),
        }
    }

    /// Whether a key for `alg` may be there: a URL's keys are unknown until fetched.
    pub(super) fn may_have(&self, alg: Algorithm) -> bool {
        match self {
            Self::File(keys) => keys.candidates(alg, None).next().is_some(),
            Self::Url(_) => true,
        }
    }

    /// The keys to check a token with `kid` against.
    pub(super) async fn keys(&self, kid: Option<&str>) -> Result<Arc<KeySet>, JwtError> {
        match self {
            Self::File(keys) => Ok(keys.clone()),
            Self::Url(remote) => remote.keys(kid).await,
        }
    }
}

/// A JWKS URL and what was last fetched from it.
pub(super) struct Remote {
    url: String,
    client: reqwest::Client,
    refresh: Duration,
    /// Read without locking on every request.
    cached: ArcSwapOption<Cached>,
    /// Held while fetching, so concurrent requests wait for one fetch instead of each making one.
    pub(super) fetch: tokio::sync::Mutex<FetchState>,
}

struct Cached {
    keys: Arc<KeySet>,
    at: Instant,
}

#[derive(Default)]
pub(super) struct FetchState {
    pub(super) last_attempt: Option<Instant>,
    /// Why the last attempt failed; cleared by a successful fetch.
    last_error: Option<FetchError>,
}

/// Why fetching a JWKS URL failed. Tokens are checked against the keys fetched before, if
/// any; without them the caller gets 503 until the identity provider answers.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    /// The URL did not answer, or answered with an error status: check it is the provider's
    /// `jwks_uri` and reachable from here.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// The answer is not a JWKS document: the URL is probably not the provider's `jwks_uri`.
    #[error("is not a JWKS document ({0})")]
    NotJwks(#[from] serde_json::Error),
}

impl Remote {
    fn new(url: &str, refresh: Duration) -> Result<Self, SchemeError> {
        reqwest::Url::parse(url).map_err(SchemeError::JwksUrl)?;
        let client = reqwest::Client::builder().timeout(FETCH_TIMEOUT).build().map_err(SchemeError::JwksClient)?;
        let (url, cached, fetch) = (url.to_owned(), ArcSwapOption::empty(), tokio::sync::Mutex::default());
        Ok(Self { url, client, refresh, cached, fetch })
    }

    async fn keys(&self, kid: Option<&str>) -> Result<Arc<KeySet>, JwtError> {
        if let Some(keys) = self.fresh(kid) {
            return Ok(keys);
        }
        let mut state = self.fetch.lock().await;
        // Another request may have fetched while this one waited for the lock.
        if let Some(keys) = self.fresh(kid) {
            return Ok(keys);
        }
        if state.last_attempt.is_none_or(|at| at.elapsed() >= MIN_REFETCH) {
            state.last_attempt = Some(Instant::now());
            match self.fetch_now().await {
                Ok(keys) => {
                    let keys = Arc::new(keys);
                    self.cached.store(Some(Arc::new(Cached { keys: keys.clone(), at: Instant::now() })));
                    state.last_error = None;
                    return Ok(keys);
                }
                Err(e) => {
                    tracing::warn!(url = %self.url, error = %e, "fetching the JWKS failed");
                    state.last_error = Some(e);
                }
            }
        }
        let cached = self.cached.load_full().map(|c| c.keys.clone());
        match (cached, &state.last_error) {
            // Stale keys beat none while the identity provider is down.
            (Some(keys), _) if kid.is_none_or(|kid| keys.has_kid(kid)) => Ok(keys),
            (_, Some(e)) => {
                Err(JwtError::KeysUnavailable(format!("the JWKS at {} could not be fetched: {e}", self.url)))
            }
            // Fetched recently and the kid is not there: the caller reports the unknown key.
            (keys, None) => Ok(keys.unwrap_or_default()),
        }
    }

    /// The cached keys if they are younger than `refresh` and know `kid`.
    fn fresh(&self, kid: Option<&str>) -> Option<Arc<KeySet>> {
        let cached = self.cached.load();
        let cached = cached.as_ref().filter(|c| c.at.elapsed() < self.refresh)?;
        kid.is_none_or(|kid| cached.keys.has_kid(kid)).then(|| cached.keys.clone())
    }

    async fn fetch_now(&self) -> Result<KeySet, FetchError> {
        let response = self.client.get(&self.url).send().await.and_then(reqwest::Response::error_for_status)?;
        Ok(KeySet::parse(&response.bytes().await?)?)
    }
}
