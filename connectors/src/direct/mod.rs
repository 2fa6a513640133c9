//! `kind: yandex_direct`: Yandex Direct API v5 (https://yandex.ru/dev/direct/doc/ref-v5/).
//!
//! ```yaml
//! ads:
//!   kind: yandex_direct
//!   base_url: https://api.direct.yandex.com      # api-sandbox.direct.yandex.com to try
//!   token: ${DIRECT_TOKEN}                        # OAuth token of the (agency) account
//!   client_login: ${DIRECT_CLIENT_LOGIN}          # an agency's client; per step too
//!   points_wait: 1h                               # after error 152, how long a client's calls wait
//! ```
//!
//! - Every call is `POST /json/v5/<service>` with `{method, params}`; errors come inside HTTP
//!   200 (`{"error": {error_code, error_string, error_detail}}`), and per item in
//!   `AddResults[].Errors`: both are read, never taken as success.
//! - Points: each answer's `Units: spent/left/daily` header is logged; error 152 (not enough
//!   points) stops that client's calls for `points_wait` (default an hour: Direct restores
//!   points hourly), failing them at once as retryable with that wait, rather than spending
//!   requests on it.
//! - Operations: `get_campaigns` (`{ids?}`), `add_campaign` (`{key, campaign}`: Direct has no
//!   idempotency keys, so the campaign's name carries `[jn:<key>]` and the connector looks it
//!   up before it adds), `update_campaign` (`{id, fields}`), `suspend_campaign` /
//!   `resume_campaign` (`{id}`), `report` (`{date_from, date_to}` → rows).
//! - Reports are built offline: 201/202 with `retryIn` are polled (the same `ReportName`,
//!   unique per parameter set) until 200 and a TSV, read into rows with money from micros.
//! - Source: `from: { connector: ads, statistics: { every: 1h, since: 2026-11-01,
//!   trailing_days: 3 } }` — daily statistics per campaign, each `(campaign, day)` a message
//!   keyed by both (upsert it), re-reading the trailing days each walk (Direct revises recent
//!   days), from a checkpoint so a restart resumes.

mod ops;
mod report;
mod stats;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use junction_engine::config::duration::ConfigDuration;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::{BuildCx, Connector, ConnectorError, Consumer, Endpoint, Kind, Role, StartCx};
use junction_engine::store::Store;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::web::{Api, Auth, Call};

pub struct DirectKind;

/// A connector's options in `junction.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectConfig {
    /// `https://api.direct.yandex.com` (or the sandbox).
    base_url: String,
    /// The OAuth token of the account (an agency's, for its clients).
    token: String,
    /// The client whose campaigns the calls are about (agencies; `Client-Login`). A step may
    /// name another with `client_login`.
    #[serde(default)]
    client_login: Option<String>,
    /// Per-call timeout (default 30s).
    #[serde(default)]
    timeout: Option<ConfigDuration>,
    /// How long a client's calls wait once Direct said its points ran out (error 152); default
    /// an hour, as Direct restores points hourly.
    #[serde(default)]
    points_wait: Option<ConfigDuration>,
}

impl Kind for DirectKind {
    const NAME: &'static str = "yandex_direct";
    type Config = DirectConfig;

    fn build(
        &self,
        name: &str,
        config: DirectConfig,
        options: &Node,
        _cx: &BuildCx<'_>,
    ) -> Result<Arc<dyn Connector>, NodeError> {
        let timeout = config.timeout.map_or(Duration::from_secs(30), |t| t.0);
        let mut api = Api::from_options(name, &config.base_url, timeout, options)?;
        api.auth = Auth::Bearer(config.token);
        let direct = Direct {
            api,
            client_login: config.client_login,
            exhausted: Mutex::default(),
            points_wait: config.points_wait.map_or(POINTS_WAIT, |d| d.0),
            store: Arc::new(OnceLock::new()),
        };
        Ok(Arc::new(DirectConnector(Arc::new(direct))))
    }
}

/// The API and what the connector remembers about it.
pub(crate) struct Direct {
    api: Api,
    client_login: Option<String>,
    /// Clients whose points ran out, until when.
    exhausted: Mutex<HashMap<String, Instant>>,
    /// How long that is (`points_wait`).
    points_wait: Duration,
    store: Arc<OnceLock<Store>>,
}

struct DirectConnector(Arc<Direct>);

#[async_trait]
impl Connector for DirectConnector {
    fn kind(&self) -> &'static str {
        "yandex_direct"
    }

    fn endpoint(&self, _role: Role, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Endpoint>, NodeError> {
        ops::endpoint(&self.0, options)
    }

    fn consumer(&self, route: &str, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Consumer>, NodeError> {
        stats::consumer(&self.0, route, options)
    }

    async fn start(&self, cx: &StartCx) -> Result<(), ConnectorError> {
        let _ = self.0.store.set(cx.store.clone());
        Ok(())
    }
}

/// Error 152: not enough points. Direct restores them over the hour: by default, calls wait that long.
const POINTS_WAIT: Duration = Duration::from_secs(3600);

impl Direct {
    fn login<'a>(&'a self, step: Option<&'a str>) -> Option<&'a str> {
        step.or(self.client_login.as_deref())
    }

    /// `{method, params}` to a service; the `result`, or the error Direct answered with.
    pub(crate) async fn call(
        &self,
        service: &str,
        method: &str,
        params: Value,
        login: Option<&str>,
        trace: Option<&str>,
    ) -> Result<Value, ConnectorError> {
        let client = login.unwrap_or("").to_owned();
        if let Some(until) = self.exhausted.lock().unwrap_or_else(PoisonError::into_inner).get(&client).copied() {
            let now = Instant::now();
            if until > now {
                return Err(ConnectorError::retryable(format!(
                    "Yandex Direct: the points of client `{client}` ran out; calls resume in {}s",
                    (until - now).as_secs()
                ))
                .with_retry_after(Some(until - now)));
            }
        }
        let body = json!({ "method": method, "params": params });
        let path = format!("/json/v5/{service}");
        let headers = self.headers(login);
        let call = Call {
            body: Some(&body),
            headers: &headers,
            idempotent: method == "get",
            trace_id: trace,
            ..Call::new(reqwest::Method::POST, &path)
        };
        let reply = self.api.call(&call).await?;
        if let Some(units) = reply.headers.get("units").and_then(|v| v.to_str().ok()) {
            tracing::debug!(connector = %self.api.name, client = %client, units, "Yandex Direct points (spent/left/daily)");
        }
        if let Some(error) = reply.body.get("error") {
            return Err(self.api_error(&client, error));
        }
        reply.body.get("result").cloned().ok_or_else(|| {
            ConnectorError::retryable(format!("Yandex Direct answered {} without `result`", reply.status))
        })
    }

    pub(crate) fn headers(&self, login: Option<&str>) -> Vec<(&'static str, String)> {
        let mut headers = vec![("accept-language", "ru".to_owned())];
        if let Some(l) = login {
            headers.push(("client-login", l.to_owned()));
        }
        headers
    }

    /// An `error` object inside a 200 as a connector error, by its code.
    pub(crate) fn api_error(&self, client: &str, error: &Value) -> ConnectorError {
        let code = error.get("error_code").and_then(Value::as_i64).unwrap_or(0);
        let text = error.get("error_string").and_then(Value::as_str).unwrap_or("");
        let detail = error.get("error_detail").and_then(Value::as_str).unwrap_or("");
        let message = format!("Yandex Direct error {code}: {text} {detail}").trim_end().to_owned();
        match code {
            152 => {
                let until = Instant::now() + self.points_wait;
                self.exhausted.lock().unwrap_or_else(PoisonError::into_inner).insert(client.to_owned(), until);
                let wait_s = self.points_wait.as_secs();
                tracing::warn!(connector = %self.api.name, client, wait_s, "Yandex Direct points ran out; this client's calls wait");
                ConnectorError::retryable(message).with_retry_after(Some(self.points_wait))
            }
            // Server busy, internal error, too many requests at once or in a row: later.
            52 | 56 | 506 | 1000 | 1001 | 1002 => ConnectorError::retryable(message),
            _ => ConnectorError::rejected(message),
        }
    }
}
