//! `kind: amocrm`: the amoCRM API v4 (https://www.amocrm.ru/developers/content/crm_platform/api-reference).
//!
//! ```yaml
//! crm:
//!   kind: amocrm
//!   base_url: https://example.amocrm.ru
//!   client_id: ${AMO_CLIENT_ID}
//!   client_secret: ${AMO_CLIENT_SECRET}
//!   redirect_uri: https://junction.example.com/oauth/amocrm
//!   refresh_token: ${AMO_REFRESH_TOKEN}     # rotated by amoCRM; the current one lives in the store
//!   limits: { per_second: 6, concurrency: 4 }   # amoCRM allows 7/s and bans repeat offenders
//! ```
//!
//! Operations (`request: { connector: crm, op: … }`, arguments in the message body):
//! `get_lead` (`{id}`; step option `with: contacts`), `list_leads` (`{page, limit, filter,
//! query}` → one page `{items, next, page}`; 204 is an empty page), `update_lead` (`{id, …fields}`
//! → PATCH), `add_note` (`{lead_id, text}` → a common note), `add_task` (`{lead_id, text,
//! complete_till, task_type_id?, responsible_user_id?}`).
//!
//! Source: `from: { connector: crm, leads: { every: 1m, filter: {…}, with: contacts } }` walks
//! the leads changed since the stored checkpoint (`order[updated_at]=asc`,
//! `filter[updated_at][from]`), page by page, each lead a message keyed by its id.

mod ops;
mod poll;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use junction_engine::config::duration::ConfigDuration;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::{BuildCx, Connector, ConnectorError, Consumer, Endpoint, Kind, Role, StartCx};
use junction_engine::store::Store;
use serde::Deserialize;

use crate::web::auth::{AuthConfig, Encoding, OAuth2Config};
use crate::web::{Api, Auth};

pub struct AmoCrmKind;

/// A connector's options in `junction.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmoCrmConfig {
    /// The account's URL, `https://<subdomain>.amocrm.ru` (or `.kommo.com`).
    base_url: String,
    /// The integration's id and secret (OAuth2), with `refresh_token` and `redirect_uri`.
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    redirect_uri: Option<String>,
    /// The first refresh token (from the authorisation code exchange); amoCRM rotates it on
    /// each refresh and the current one is kept in the store.
    #[serde(default)]
    refresh_token: Option<String>,
    /// Instead of OAuth2: a long-lived token made in the account's integration settings.
    #[serde(default)]
    long_lived_token: Option<String>,
    /// Per-call timeout (default 10s). amoCRM expects webhooks answered within 2 s; calls from
    /// a route are not bound by that.
    #[serde(default)]
    timeout: Option<ConfigDuration>,
}

impl Kind for AmoCrmKind {
    const NAME: &'static str = "amocrm";
    type Config = AmoCrmConfig;

    fn build(
        &self,
        name: &str,
        config: AmoCrmConfig,
        options: &Node,
        _cx: &BuildCx<'_>,
    ) -> Result<Arc<dyn Connector>, NodeError> {
        let timeout = config.timeout.map_or(Duration::from_secs(10), |t| t.0);
        let mut api = Api::from_options(name, &config.base_url, timeout, options)?;
        let auth = match (&config.long_lived_token, &config.client_id, &config.client_secret, &config.refresh_token) {
            (Some(token), None, None, None) => AuthConfig::Bearer(token.clone()),
            (None, Some(id), Some(secret), Some(refresh)) => AuthConfig::Oauth2(OAuth2Config {
                token_url: "/oauth2/access_token".into(),
                client_id: id.clone(),
                client_secret: secret.clone(),
                refresh_token: Some(refresh.clone()),
                scope: None,
                redirect_uri: config.redirect_uri.clone(),
                encoding: Encoding::Json,
                grant_type: None,
                params: Default::default(),
                authorization: None,
                request_id_header: None,
            }),
            _ => {
                return Err(NodeError {
                    message: "give either `long_lived_token`, or `client_id`, `client_secret` and `refresh_token` \
                              (with `redirect_uri`)"
                        .into(),
                    pos: Some(options.pos),
                });
            }
        };
        api.auth = Auth::new(name, &auth, &api.base, &api.client)
            .map_err(|e| NodeError { message: e.to_string(), pos: Some(options.pos) })?;
        Ok(Arc::new(AmoCrm { api: Arc::new(api), store: Arc::new(OnceLock::new()) }))
    }
}

struct AmoCrm {
    api: Arc<Api>,
    store: Arc<OnceLock<Store>>,
}

#[async_trait]
impl Connector for AmoCrm {
    fn kind(&self) -> &'static str {
        "amocrm"
    }

    fn endpoint(&self, _role: Role, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Endpoint>, NodeError> {
        ops::endpoint(&self.api, options)
    }

    fn consumer(&self, route: &str, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Consumer>, NodeError> {
        poll::consumer(&self.api, &self.store, route, options)
    }

    async fn start(&self, cx: &StartCx) -> Result<(), ConnectorError> {
        self.api.auth.start(&cx.store, &cx.cache);
        let _ = self.store.set(cx.store.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
