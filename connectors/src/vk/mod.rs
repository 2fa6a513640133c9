//! `kind: vk_ads`: the VK Ads API (https://ads.vk.com/doc/api/info/Overview), the ad platform.
//!
//! ```yaml
//! vk:
//!   kind: vk_ads
//!   base_url: https://ads.vk.com
//!   client_id: ${VK_CLIENT_ID}
//!   client_secret: ${VK_CLIENT_SECRET}
//!   agency_client: ${VK_AGENCY_CLIENT}      # an agency's client (its username); optional
//! ```
//!
//! - Tokens: `POST /api/v2/oauth2/token.json`, client credentials (or
//!   `agency_client_credentials` for an agency's client); VK allows 5 live tokens per client
//!   and answers 403 past them, so the token lives in the store and is shared by every
//!   instance and restart, and renewed with its refresh token (the same instance, a new key)
//!   rather than requested anew.
//! - Operations on ad plans (campaigns): `get_campaigns` (`{ids?, status?}`, every page of
//!   `GET /api/v2/ad_plans.json`, 50 a page), `add_campaign` (`{key, campaign}`: VK has no
//!   idempotency keys, so the plan's name carries `[jn:<key>]` and is looked up before the
//!   create), `update_campaign` (`{id, fields}`), `pause_campaign` / `resume_campaign` (`{id}`:
//!   status `blocked` / `active`), `statistics` (`{date_from, date_to, ids?}` → rows).
//! - Statistics: `GET /api/v2/statistics/ad_plans/day.json`, at most 200 plans and 92 days a
//!   request, rows `{campaign_id, day, impressions, clicks, cost, goals}` with `cost` the
//!   decimal string VK gives (`spent`). As a source: `from: { connector: vk, statistics: {
//!   every: 1h, since: 2026-11-01, trailing_days: 3 } }` ([`crate::web::daily`]).
//! - 429: `Retry-After` when sent, else the `X-RateLimit-*-Remaining` header that reached 0
//!   (a second, the hour, the day); 5xx and timeouts retried; 400 (`validation_failed` with its
//!   fields), 403 and 404 refused.

mod ops;
mod stats;
#[cfg(test)]
mod tests;

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

pub struct VkAdsKind;

/// A connector's options in `junction.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VkAdsConfig {
    /// `https://ads.vk.com` (the default).
    #[serde(default)]
    base_url: Option<String>,
    client_id: String,
    client_secret: String,
    /// An agency's client (its username): tokens for that client, by the agency's credentials.
    #[serde(default)]
    agency_client: Option<String>,
    /// Per-call timeout (default 30s).
    #[serde(default)]
    timeout: Option<ConfigDuration>,
}

impl Kind for VkAdsKind {
    const NAME: &'static str = "vk_ads";
    type Config = VkAdsConfig;

    fn build(
        &self,
        name: &str,
        config: VkAdsConfig,
        options: &Node,
        _cx: &BuildCx<'_>,
    ) -> Result<Arc<dyn Connector>, NodeError> {
        let timeout = config.timeout.map_or(Duration::from_secs(30), |t| t.0);
        let base = config.base_url.as_deref().unwrap_or("https://ads.vk.com");
        let mut api = Api::from_options(name, base, timeout, options)?;
        let (grant_type, params) = match config.agency_client {
            Some(client) => (
                Some("agency_client_credentials".to_owned()),
                [("agency_client_name".to_owned(), client)].into_iter().collect(),
            ),
            None => (None, Default::default()),
        };
        let auth = AuthConfig::Oauth2(OAuth2Config {
            token_url: "/api/v2/oauth2/token.json".into(),
            client_id: config.client_id,
            client_secret: config.client_secret,
            refresh_token: None,
            scope: None,
            redirect_uri: None,
            encoding: Encoding::Form,
            grant_type,
            params,
            authorization: None,
            request_id_header: None,
        });
        api.auth = Auth::new(name, &auth, &api.base, &api.client)
            .map_err(|e| NodeError { message: e.to_string(), pos: Some(options.pos) })?;
        Ok(Arc::new(VkAdsConnector(Arc::new(VkAds { api, store: Arc::new(OnceLock::new()) }))))
    }
}

/// The API and the store the statistics' checkpoints live in.
pub(crate) struct VkAds {
    api: Api,
    store: Arc<OnceLock<Store>>,
}

struct VkAdsConnector(Arc<VkAds>);

#[async_trait]
impl Connector for VkAdsConnector {
    fn kind(&self) -> &'static str {
        "vk_ads"
    }

    fn endpoint(&self, _role: Role, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Endpoint>, NodeError> {
        ops::endpoint(&self.0, options)
    }

    fn consumer(&self, route: &str, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Consumer>, NodeError> {
        stats::consumer(&self.0, route, options)
    }

    async fn start(&self, cx: &StartCx) -> Result<(), ConnectorError> {
        self.0.api.auth.start(&cx.store, &cx.cache);
        let _ = self.0.store.set(cx.store.clone());
        Ok(())
    }
}
