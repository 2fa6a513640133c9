//! `kind: onec_odata`: 1C:Enterprise's standard OData v3 interface (`standard.odata`), the
//! billing / ERP side: invoices created (once), posted, read and changed.
//!
//! ```yaml
//! billing:
//!   kind: onec_odata
//!   base_url: http://1c.example/buh/odata/standard.odata
//!   user: ${ONEC_USER}
//!   password: ${ONEC_PASSWORD}
//! ```
//!
//! 1C has no idempotency keys and no webhooks. An invoice carries a stable key in a field of
//! its own (`Комментарий` = `junction:<contract id>`); `create_invoice` looks it up before it
//! creates, and creates one at a time per key (a claim in the cache, across instances), so a
//! retried create — also one whose first attempt committed and then answered 500 — finds the
//! first invoice instead of making a second. Payments are polled (`query` on the payment
//! documents from a scheduled route).
//!
//! Operations (arguments in the message body): `create_invoice` (`{contract_id, fields}` →
//! the invoice and `created`), `post_invoice` (`{ref}`), `get_invoice` (`{ref}` or
//! `{contract_id}`), `update_invoice` (`{ref, data_version, fields}`: PATCH with `If-Match`;
//! 412 when it changed meanwhile), `query` (`{entity, filter, select, orderby, top, skip}` →
//! one page `{items, next}`).

mod ops;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use junction_engine::cache::Cache;
use junction_engine::config::duration::ConfigDuration;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::{BuildCx, Connector, ConnectorError, Endpoint, Kind, Role, StartCx};
use serde::Deserialize;

use crate::web::{Api, Auth};

pub struct OneCKind;

/// A connector's options in `junction.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneCConfig {
    /// The infobase's OData root, ending in `/odata/standard.odata`.
    base_url: String,
    /// HTTP Basic credentials of a 1C user with the rights the operations need.
    user: String,
    password: String,
    /// The invoice document's entity set (default `Document_СчетНаОплатуПокупателю`).
    #[serde(default)]
    invoice: Option<String>,
    /// The invoice field holding Junction's key (default `Комментарий`).
    #[serde(default)]
    key_field: Option<String>,
    /// Per-call timeout (default 30s: 1C posts documents slowly).
    #[serde(default)]
    timeout: Option<ConfigDuration>,
}

impl Kind for OneCKind {
    const NAME: &'static str = "onec_odata";
    type Config = OneCConfig;

    fn build(
        &self,
        name: &str,
        config: OneCConfig,
        options: &Node,
        _cx: &BuildCx<'_>,
    ) -> Result<Arc<dyn Connector>, NodeError> {
        let at = |key: &str| Some(options.get(key).map_or(options.pos, |n| n.pos));
        let timeout = config.timeout.map_or(Duration::from_secs(30), |t| t.0);
        let mut api = Api::from_options(name, &config.base_url, timeout, options)?;
        if !api.base.path().trim_end_matches('/').ends_with("standard.odata") {
            return Err(NodeError {
                message: "base_url is the infobase's OData root, ending in `/odata/standard.odata`".into(),
                pos: at("base_url"),
            });
        }
        api.auth = Auth::Basic(config.user, config.password);
        Ok(Arc::new(OneC {
            api: Arc::new(api),
            invoice: config.invoice.unwrap_or_else(|| "Document_СчетНаОплатуПокупателю".into()),
            key_field: config.key_field.unwrap_or_else(|| "Комментарий".into()),
            cache: Arc::new(OnceLock::new()),
            create_claim: (timeout * 4).max(Duration::from_secs(120)),
        }))
    }
}

pub(crate) struct OneC {
    api: Arc<Api>,
    invoice: String,
    key_field: String,
    cache: Arc<OnceLock<Cache>>,
    create_claim: Duration,
}

#[async_trait]
impl Connector for OneC {
    fn kind(&self) -> &'static str {
        "onec_odata"
    }

    fn endpoint(&self, _role: Role, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Endpoint>, NodeError> {
        ops::endpoint(self, options)
    }

    async fn start(&self, cx: &StartCx) -> Result<(), ConnectorError> {
        if !cx.cache.is_shared() {
            tracing::warn!(
                connector = %self.api.name,
                "creates are one at a time per key within this instance only: several instances need `cache: redis://…`"
            );
        }
        let _ = self.cache.set(cx.cache.clone());
        Ok(())
    }
}
