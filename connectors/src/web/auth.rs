//! Credentials a connector sends: an API key (header or query), a bearer token, HTTP Basic,
//! or OAuth2 (client credentials, or a refresh token the server may rotate).
//!
//! OAuth2 tokens live in the engine's store (`checkpoints`, key `oauth2:<connector>`), not
//! only in memory:
//! - a refresh token the server rotated is written there before the new access token is used,
//!   so a restart, or another instance, never presents the revoked one;
//! - an access token is reused by every instance until shortly before it expires, so
//!   providers that allow few live tokens (VK Ads: about 5) see one per connector, not one
//!   per process;
//! - one instance refreshes at a time (a claim in the cache); the others wait and read what
//!   it stored.
//!
//! The refresh token in the options (`${VAR}`) seeds the store once; a different one set
//! there later (an admin re-authorised) replaces what the store holds.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use junction_engine::cache::Cache;
use junction_engine::connector::ConnectorError;
use junction_engine::store::Store;
use reqwest::{RequestBuilder, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

/// `auth:` in a connector's options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum AuthConfig {
    /// `bearer: ${TOKEN}`
    Bearer(String),
    /// `basic: { user, password }`
    Basic { user: String, password: String },
    /// `api_key: { header: X-Api-Key, value: ${KEY} }` or `{ query: key, value: … }`
    ApiKey {
        #[serde(default)]
        header: Option<String>,
        #[serde(default)]
        query: Option<String>,
        value: String,
    },
    /// `oauth2: { token_url, client_id, client_secret, refresh_token?, scope?, … }`
    Oauth2(OAuth2Config),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    /// Absolute, or a path under the connector's `base_url` (`/oauth2/access_token`).
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// With one, the refresh-token grant (rotated tokens kept in the store); without, client
    /// credentials.
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    /// Sent with the refresh grant where the provider asks for it (amoCRM does).
    #[serde(default)]
    pub redirect_uri: Option<String>,
    /// How the token request's parameters go: `form` (RFC 6749) or `json` (amoCRM).
    #[serde(default)]
    pub encoding: Encoding,
    /// The grant asked for without a refresh token: `client_credentials` (the default), or a
    /// provider's own (VK Ads' agencies: `agency_client_credentials`).
    #[serde(default)]
    pub grant_type: Option<String>,
    /// More fields of that grant (`agency_client_name: …`).
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, String>,
    /// The token request's own `Authorization` (GigaChat's `Basic <authorization key>`); with
    /// it, `client_id` and `client_secret` are not sent in the body.
    #[serde(default)]
    pub authorization: Option<String>,
    /// A header carrying a fresh UUID with every token request (GigaChat's `RqUID`).
    #[serde(default)]
    pub request_id_header: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    #[default]
    Form,
    Json,
}

/// Why a connector's `auth:` cannot be used: each says what to change in it.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// An api_key `header` HTTP does not allow: letters, digits and `-` only.
    #[error("`{name}` is not a header name")]
    HeaderName { name: String, source: reqwest::header::InvalidHeaderName },
    /// An api_key with both `header` and `query`, or neither: give exactly one.
    #[error("api_key takes either `header` or `query`")]
    ApiKeyPlace,
    /// A `token_url` that is neither a URL nor a path under `base_url`.
    #[error("token_url `{url}` is not a URL: {source}")]
    TokenUrl { url: String, source: UrlError },
}

/// `url::ParseError`, named through reqwest's `Url` (the connectors do not depend on `url` itself).
type UrlError = <Url as std::str::FromStr>::Err;

/// Credentials ready to use.
#[derive(Clone, Default)]
pub enum Auth {
    #[default]
    None,
    Bearer(String),
    Basic(String, String),
    ApiKeyHeader(reqwest::header::HeaderName, String),
    ApiKeyQuery(String, String),
    OAuth2(Arc<OAuth2>),
}

impl Auth {
    /// The credentials `config` describes; `base` resolves a relative token URL.
    pub fn new(connector: &str, config: &AuthConfig, base: &Url, client: &reqwest::Client) -> Result<Auth, AuthError> {
        Ok(match config {
            AuthConfig::Bearer(t) => Auth::Bearer(t.clone()),
            AuthConfig::Basic { user, password } => Auth::Basic(user.clone(), password.clone()),
            AuthConfig::ApiKey { header: Some(h), query: None, value } => Auth::ApiKeyHeader(
                reqwest::header::HeaderName::from_bytes(h.as_bytes())
                    .map_err(|source| AuthError::HeaderName { name: h.clone(), source })?,
                value.clone(),
            ),
            AuthConfig::ApiKey { header: None, query: Some(q), value } => Auth::ApiKeyQuery(q.clone(), value.clone()),
            AuthConfig::ApiKey { .. } => return Err(AuthError::ApiKeyPlace),
            AuthConfig::Oauth2(o) => {
                let token_url = if o.token_url.starts_with('/') {
                    Url::parse(&format!("{}{}", base.as_str().trim_end_matches('/'), o.token_url))
                } else {
                    Url::parse(&o.token_url)
                }
                .map_err(|source| AuthError::TokenUrl { url: o.token_url.clone(), source })?;
                Auth::OAuth2(Arc::new(OAuth2::new(connector, token_url, o.clone(), client.clone())))
            }
        })
    }

    /// Hands the store and cache to credentials that keep tokens there (OAuth2).
    pub fn start(&self, store: &Store, cache: &Cache) {
        if let Auth::OAuth2(o) = self {
            let _ = o.store.set(store.clone());
            let _ = o.cache.set(cache.clone());
        }
    }

    /// `req` carrying the credentials.
    pub async fn apply(&self, req: RequestBuilder) -> Result<RequestBuilder, ConnectorError> {
        Ok(match self {
            Auth::None => req,
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
            Auth::ApiKeyHeader(name, value) => req.header(name.clone(), value),
            Auth::ApiKeyQuery(name, value) => req.query(&[(name, value)]),
            Auth::OAuth2(o) => req.bearer_auth(o.access_token().await?),
        })
    }

    /// Whether a 401 may be cured by fetching a new token.
    pub fn can_renew(&self) -> bool {
        matches!(self, Auth::OAuth2(_))
    }

    /// Drops the current token (the server refused it) and fetches a new one.
    pub async fn renew(&self) -> Result<(), ConnectorError> {
        if let Auth::OAuth2(o) = self {
            o.renew().await?;
        }
        Ok(())
    }
}

/// A token as it is kept in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Token {
    access_token: String,
    /// Unix milliseconds.
    expires_at: i64,
    #[serde(default)]
    refresh_token: Option<String>,
    /// The SHA-256 of the configured refresh token this chain of tokens started from: a
    /// different one configured later starts a new chain.
    #[serde(default)]
    seeded_from: Option<String>,
}

/// A token is renewed this long before it expires.
const EARLY: Duration = Duration::from_secs(60);

/// How long one instance may hold the right to refresh before another may take it.
const REFRESH_CLAIM: Duration = Duration::from_secs(30);

pub struct OAuth2 {
    connector: String,
    token_url: Url,
    config: OAuth2Config,
    client: reqwest::Client,
    store: OnceLock<Store>,
    cache: OnceLock<Cache>,
    /// This process's copy; the store's is the truth.
    current: Mutex<Option<Token>>,
}

impl OAuth2 {
    fn new(connector: &str, token_url: Url, config: OAuth2Config, client: reqwest::Client) -> Self {
        Self {
            connector: connector.to_owned(),
            token_url,
            config,
            client,
            store: OnceLock::new(),
            cache: OnceLock::new(),
            current: Mutex::new(None),
        }
    }

    fn key(&self) -> String {
        format!("oauth2:{}", self.connector)
    }

    fn seed(&self) -> Option<String> {
        self.config.refresh_token.as_ref().map(|t| hex::encode(Sha256::digest(t.as_bytes())))
    }

    /// A token valid for at least [`EARLY`]: this process's, the store's, or a new one.
    pub async fn access_token(&self) -> Result<String, ConnectorError> {
        let mut current = self.current.lock().await;
        if let Some(t) = current.as_ref().filter(|t| fresh(t)) {
            return Ok(t.access_token.clone());
        }
        let token = self.fresh_token(current.as_ref(), false).await?;
        let access = token.access_token.clone();
        *current = Some(token);
        Ok(access)
    }

    async fn renew(&self) -> Result<(), ConnectorError> {
        let mut current = self.current.lock().await;
        let token = self.fresh_token(current.as_ref(), true).await?;
        *current = Some(token);
        Ok(())
    }

    /// The stored token if it is fresh (and not `mine` when the server refused it), else a new
    /// one from the server: fetched by one instance at a time, the others reading what it
    /// stored. `mine` is this process's copy, newer than the store's when storing it failed.
    async fn fresh_token(&self, mine: Option<&Token>, refused: bool) -> Result<Token, ConnectorError> {
        let refused = if refused { mine.map(|t| t.access_token.clone()) } else { None };
        let usable = |t: &Token| fresh(t) && Some(&t.access_token) != refused.as_ref() && self.same_seed(t);
        let newest = |stored: Option<Token>| -> Option<Token> {
            let mine = mine.filter(|t| self.same_seed(t)).cloned();
            match (stored.filter(|t| self.same_seed(t)), mine) {
                (Some(s), Some(m)) => Some(if m.expires_at > s.expires_at { m } else { s }),
                (s, m) => s.or(m),
            }
        };
        let deadline = tokio::time::Instant::now() + REFRESH_CLAIM;
        loop {
            let stored = self.stored().await?;
            if let Some(t) = stored.as_ref().filter(|t| usable(t)) {
                return Ok(t.clone());
            }
            if self.claim().await? {
                // Another instance may have refreshed between the read above and the claim: what
                // it stored is the chain's head now (its refresh token rotated the one read).
                let result = match self.stored().await {
                    Ok(Some(t)) if usable(&t) => Ok(t),
                    Ok(latest) => self.fetch(newest(latest)).await,
                    Err(e) => Err(e),
                };
                self.release().await;
                return result;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ConnectorError::unavailable(format!(
                    "connector `{}`: another instance has been fetching a token for {REFRESH_CLAIM:?}",
                    self.connector
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether `t` descends from the refresh token configured now (a newly configured one
    /// wins over the stored chain).
    fn same_seed(&self, t: &Token) -> bool {
        self.config.refresh_token.is_none() || t.seeded_from == self.seed()
    }

    async fn stored(&self) -> Result<Option<Token>, ConnectorError> {
        let Some(store) = self.store.get() else { return Ok(None) };
        let text = store.checkpoint_get(&self.key()).await.map_err(|e| {
            ConnectorError::unavailable(format!("connector `{}`: cannot read its token: {e}", self.connector))
        })?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    async fn claim(&self) -> Result<bool, ConnectorError> {
        let Some(cache) = self.cache.get() else { return Ok(true) };
        cache.claim(&format!("junction:{}:refreshing", self.key()), REFRESH_CLAIM).await.map_err(|e| {
            ConnectorError::unavailable(format!("connector `{}`: cannot take the token refresh: {e}", self.connector))
        })
    }

    async fn release(&self) {
        if let Some(cache) = self.cache.get()
            && let Err(e) = cache.release(&format!("junction:{}:refreshing", self.key())).await
        {
            tracing::warn!(connector = %self.connector, error = %e, "cannot release the token refresh claim; it expires by itself");
        }
    }

    /// Asks the server for a token (refreshing `previous`'s chain, or from the configured
    /// refresh token, or by client credentials) and stores it before anyone uses it.
    async fn fetch(&self, previous: Option<Token>) -> Result<Token, ConnectorError> {
        let c = &self.config;
        let mut params: Vec<(&str, String)> = if c.authorization.is_some() {
            Vec::new()
        } else {
            vec![("client_id", c.client_id.clone()), ("client_secret", c.client_secret.clone())]
        };
        let refresh = previous.as_ref().and_then(|t| t.refresh_token.clone()).or_else(|| c.refresh_token.clone());
        match &refresh {
            Some(r) => {
                params.push(("grant_type", "refresh_token".into()));
                params.push(("refresh_token", r.clone()));
                if let Some(uri) = &c.redirect_uri {
                    params.push(("redirect_uri", uri.clone()));
                }
            }
            None => {
                // `none`: a provider that takes no grant type (GigaChat: the scope alone).
                let grant = c.grant_type.clone().unwrap_or_else(|| "client_credentials".into());
                if grant != "none" {
                    params.push(("grant_type", grant));
                }
                params.extend(c.params.iter().map(|(k, v)| (k.as_str(), v.clone())));
            }
        }
        if let Some(scope) = &c.scope {
            params.push(("scope", scope.clone()));
        }
        let mut req = self.client.post(self.token_url.clone()).header(reqwest::header::ACCEPT, "application/json");
        if let Some(authorization) = &c.authorization {
            req = req.header(reqwest::header::AUTHORIZATION, authorization);
        }
        if let Some(header) = &c.request_id_header {
            req = req.header(header.as_str(), uuid::Uuid::new_v4().to_string());
        }
        let req = match c.encoding {
            Encoding::Form => req.form(&params),
            Encoding::Json => req.json(&params.iter().cloned().collect::<std::collections::BTreeMap<_, _>>()),
        };
        let what = format!("token request of connector `{}`", self.connector);
        let resp = req.send().await.map_err(|e| super::transport_error(&what, &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = super::read_limited(resp).await?;
        if !status.is_success() {
            // The body may echo what was sent: only the OAuth2 error code is shown.
            let reply = serde_json::from_slice::<Value>(&bytes).ok();
            let code = reply
                .as_ref()
                .and_then(|v| {
                    v.get("error").or_else(|| v.get("hint")).or_else(|| v.get("code")).and_then(Value::as_str)
                })
                .unwrap_or_default();
            let message = format!("{what} answered {status} {code}");
            let own_chain = refresh.is_some() && c.refresh_token.is_none();
            let refused_grant = status.as_u16() == 401 || matches!(code, "invalid_grant" | "invalid_token");
            if own_chain && refused_grant {
                // The refresh token came from a client-credentials grant and was deleted (VK
                // drops tokens unused for a month): a new one by the same grant.
                tracing::warn!(connector = %self.connector, "{message}: the stored refresh token was refused; asking for a new token");
                return Box::pin(self.fetch(None)).await;
            }
            if status.as_u16() == 403 && String::from_utf8_lossy(&bytes).to_lowercase().contains("limit") {
                return Err(ConnectorError::unavailable(format!(
                    "{message}: the provider's limit of live tokens is reached (VK Ads: 5 per client). This connector \
                     keeps one token in the store for every instance; delete the stale ones (VK Ads: POST \
                     /api/v2/oauth2/token/delete.json)"
                )));
            }
            return Err(if status.is_client_error() && status.as_u16() != 429 {
                ConnectorError::rejected(format!(
                    "{message}: the credentials were refused (a revoked refresh token needs a new one in the connector's options)"
                ))
            } else {
                super::status_error(status, message, &headers)
            });
        }
        let reply: TokenReply = serde_json::from_slice(&bytes)
            .map_err(|e| ConnectorError::retryable(format!("{what} answered a body that is not a token: {e}")))?;
        // `expires_in` seconds, or GigaChat's `expires_at` in unix milliseconds.
        let expires_at = match (reply.expires_in, reply.expires_at) {
            (Some(seconds), _) => now_millis() + seconds * 1000,
            (None, Some(at)) => at,
            (None, None) => now_millis() + 3600 * 1000,
        };
        let expires_in = (expires_at - now_millis()) / 1000;
        let token = Token {
            access_token: reply.access_token,
            expires_at,
            // A server that does not rotate keeps the one that was used.
            refresh_token: reply.refresh_token.or(refresh),
            seeded_from: self.seed(),
        };
        if let Some(store) = self.store.get() {
            let text = serde_json::to_string(&token).unwrap_or_default();
            // The server rotated the refresh token: dropping the new one would leave no working
            // one at all. This process keeps it and goes on; the next refresh stores again.
            if let Err(e) = store.checkpoint_put(&self.key(), &text).await {
                tracing::error!(
                    connector = %self.connector, error = %e,
                    "cannot store a new OAuth2 token; this instance keeps it, others cannot refresh until it is stored"
                );
            }
        }
        tracing::info!(connector = %self.connector, expires_in, rotated = token.refresh_token.is_some(), "fetched an OAuth2 token");
        Ok(token)
    }
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    /// Seconds; a number, or a string of one (VK Ads' refresh answers).
    #[serde(default, deserialize_with = "seconds")]
    expires_in: Option<i64>,
    /// When it expires, as a unix time (GigaChat: milliseconds; seconds taken too); another
    /// shape (an ISO time) is ignored, as if the field were missing.
    #[serde(default, deserialize_with = "unix_time_millis")]
    expires_at: Option<i64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

/// A unix time in milliseconds, or in seconds (below 10^11: before 1973 in milliseconds).
fn unix_time_millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(Value::as_i64)
        .map(|t| if t < 100_000_000_000 { t * 1000 } else { t }))
}

/// `3600` or `"3600"`.
fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

fn fresh(t: &Token) -> bool {
    t.expires_at - EARLY.as_millis() as i64 > now_millis()
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
