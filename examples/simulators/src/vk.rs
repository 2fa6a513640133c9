//! The VK Ads API, as https://ads.vk.com/doc/api/info/Overview describes it:
//!
//! - `POST /api/v2/oauth2/token.json` (a form): `client_credentials`,
//!   `agency_client_credentials` (with `agency_client_name`) and `refresh_token` grants; at most
//!   5 live tokens per client, a 6th refused with 403 (the body is undocumented; a production
//!   SDK looks for "limit reached" in it, which this one says); a refresh keeps the token's
//!   place and changes its key (https://ads.vk.com/doc/api/info/Authorization);
//!   `POST /api/v2/oauth2/token/delete.json` drops a client's tokens;
//! - 401 with a flat `{code, message}` (`invalid_token`, `expired_token`) and `WWW-Authenticate`;
//! - `GET /api/v2/ad_plans.json` (`fields`, `limit` ≤ 50, `offset`, `_id__in`, `_status__in`) →
//!   `{count, offset, items}`; `POST /api/v2/ad_plans.json` → `{id}`, 400 `validation_failed`
//!   with the fields; `POST /api/v2/ad_plans/{id}.json` → 204, 404 when there is none;
//! - `GET /api/v2/statistics/ad_plans/day.json?id=…&date_from&date_to&metrics=base` →
//!   `{items: [{id, rows: [{date, base: {shows, clicks, goals, spent, …}}], total}], total}`,
//!   `spent` a decimal string; at most 200 ids and 366 days (`ERR_LIMIT_EXCEEDED`);
//! - rate limits: `X-RateLimit-RPS-Limit/-Remaining` on answers, 429 when told to (with
//!   `Remaining: 0`, no `Retry-After`, a `{remaining, limits}` body).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::faults::{self, Fault};

/// Live tokens a client may hold (https://ads.vk.com/doc/api/info/Authorization).
pub const TOKEN_LIMIT: usize = 5;

struct Token {
    access: String,
    refresh: String,
    client: String,
    expires: Instant,
}

#[derive(Default)]
struct Data {
    client_id: String,
    client_secret: String,
    expires_in: u64,
    tokens: Vec<Token>,
    /// Grants answered, by `grant_type`.
    grants: HashMap<String, usize>,
    plans: BTreeMap<i64, Value>,
    creates: usize,
    /// (ad plan, day) → (shows, clicks, spent).
    stats: BTreeMap<(i64, String), (i64, i64, String)>,
    /// Each statistics request, as (ids, date_from, date_to).
    asked: Vec<(String, String, String)>,
    faults: Vec<Fault>,
    /// The next API requests answered 429.
    rate_limited: usize,
    counter: u64,
}

/// A running VK Ads simulator.
#[derive(Clone)]
pub struct VkAds {
    /// The API root: the connector's `base_url`.
    pub url: String,
    data: Arc<Mutex<Data>>,
}

impl VkAds {
    pub async fn start(listen: &str, client_id: &str, client_secret: &str) -> std::io::Result<VkAds> {
        let data = Data {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            expires_in: 86400,
            counter: 6_617_840,
            ..Data::default()
        };
        let sim = VkAds { url: String::new(), data: Arc::new(Mutex::new(data)) };
        let api = Router::new()
            .route("/api/v2/ad_plans.json", get(list).post(create))
            .route("/api/v2/ad_plans/{file}", post(update))
            .route("/api/v2/statistics/ad_plans/day.json", get(statistics))
            .layer(middleware::from_fn_with_state(sim.clone(), guard));
        let app = Router::new()
            .route("/api/v2/oauth2/token.json", post(token))
            .route("/api/v2/oauth2/token/delete.json", post(delete_tokens))
            .merge(api)
            // Control, for the demo: a day's statistics, a plan's status.
            .route("/_sim/stats", post(control_stats))
            .with_state(sim.clone());
        let addr = crate::serve(listen, app, "VK Ads").await?;
        Ok(VkAds { url: format!("http://{addr}"), ..sim })
    }

    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next requests to the API (not the token endpoint) get these, one each, in order.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.data().faults.extend(faults);
    }

    /// Drops the faults no request took; how many there were.
    pub fn clear_faults(&self) -> usize {
        std::mem::take(&mut self.data().faults).len()
    }

    /// The next `n` API requests are over the per-second limit.
    pub fn rate_limit_next(&self, n: usize) {
        self.data().rate_limited += n;
    }

    /// How long new tokens live.
    pub fn set_token_lifetime(&self, seconds: u64) {
        self.data().expires_in = seconds;
    }

    /// Tokens `client` holds now, as other programs might have taken them.
    pub fn take_tokens(&self, client: &str, n: usize) {
        let mut d = self.data();
        for _ in 0..n {
            let token = new_token(&mut d, client);
            d.tokens.push(token);
        }
    }

    /// Live tokens (expired ones included until deleted, as VK counts them).
    pub fn tokens(&self) -> usize {
        self.data().tokens.len()
    }

    /// Grants answered with a token, by `grant_type`.
    pub fn grants(&self, grant_type: &str) -> usize {
        self.data().grants.get(grant_type).copied().unwrap_or(0)
    }

    pub fn plans(&self) -> Vec<Value> {
        self.data().plans.values().cloned().collect()
    }

    /// Successful creates.
    pub fn creates(&self) -> usize {
        self.data().creates
    }

    /// One day of an ad plan's statistics.
    pub fn set_stats(&self, plan: i64, day: &str, shows: i64, clicks: i64, spent: &str) {
        self.data().stats.insert((plan, day.to_owned()), (shows, clicks, spent.to_owned()));
    }

    /// An ad plan made elsewhere (in VK's own interface).
    pub fn add_plan(&self, name: &str, status: &str) -> i64 {
        let mut d = self.data();
        d.counter += 1;
        let id = d.counter as i64;
        d.plans.insert(id, json!({ "id": id, "name": name, "status": status }));
        id
    }

    /// The statistics requests, as (ids, date_from, date_to).
    pub fn statistics_asked(&self) -> Vec<(String, String, String)> {
        self.data().asked.clone()
    }
}

fn new_token(d: &mut Data, client: &str) -> Token {
    d.counter += 1;
    Token {
        access: format!("vk-access-{}", d.counter),
        refresh: format!("vk-refresh-{}", d.counter),
        client: client.to_owned(),
        expires: Instant::now() + Duration::from_secs(d.expires_in),
    }
}

fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({ "error": { "code": code, "message": message } }))).into_response()
}

/// 401 as VK answers it: a flat body and `WWW-Authenticate`.
fn unauthorized(code: &str, message: &str) -> Response {
    let challenge = format!("Bearer realm=\"api\", error=\"{code}\", error_description=\"{message}\"");
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
        axum::Json(json!({ "code": code, "message": message })),
    )
        .into_response()
}

async fn token(State(sim): State<VkAds>, body: Bytes) -> Response {
    let form: HashMap<String, String> = form_urlencoded(&body);
    let mut d = sim.data();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if field("client_id") != d.client_id || field("client_secret") != d.client_secret {
        return unauthorized("invalid_client", "Invalid client id or secret provided");
    }
    let grant = field("grant_type").to_owned();
    let client = match grant.as_str() {
        "client_credentials" => d.client_id.clone(),
        "agency_client_credentials" => match form.get("agency_client_name") {
            Some(name) => name.clone(),
            None => return api_error(StatusCode::BAD_REQUEST, "invalid_request", "agency_client_name is required"),
        },
        "refresh_token" => {
            let refresh = field("refresh_token").to_owned();
            let expires = Instant::now() + Duration::from_secs(d.expires_in);
            d.counter += 1;
            let access = format!("vk-access-{}", d.counter);
            let Some(t) = d.tokens.iter_mut().find(|t| t.refresh == refresh) else {
                return unauthorized("invalid_token", "Refresh token has been deleted");
            };
            // The same token, a new key (https://ads.vk.com/doc/api/info/Authorization); the
            // refresh example there gives `expires_in` as a string.
            t.access = access.clone();
            t.expires = expires;
            let expires_in = d.expires_in.to_string();
            *d.grants.entry(grant).or_default() += 1;
            return axum::Json(json!({
                "access_token": access,
                "token_type": "bearer",
                "scope": "",
                "expires_in": expires_in,
                "refresh_token": refresh,
            }))
            .into_response();
        }
        _ => return api_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "Unsupported grant type"),
    };
    let held = d.tokens.iter().filter(|t| t.client == client).count();
    if held >= TOKEN_LIMIT {
        // Undocumented body; the Digsolab myTarget SDK recognises this 403 by "limit reached".
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({ "error": "access_denied", "error_description": "Active access token limit reached" })),
        )
            .into_response();
    }
    let t = new_token(&mut d, &client);
    let reply = json!({
        "access_token": t.access,
        "token_type": "Bearer",
        "expires_in": d.expires_in,
        "scope": [],
        "refresh_token": t.refresh,
        "tokens_left": TOKEN_LIMIT - held - 1,
    });
    d.tokens.push(t);
    *d.grants.entry(grant).or_default() += 1;
    axum::Json(reply).into_response()
}

async fn delete_tokens(State(sim): State<VkAds>, body: Bytes) -> Response {
    let form = form_urlencoded(&body);
    let mut d = sim.data();
    if form.get("client_id") != Some(&d.client_id) || form.get("client_secret") != Some(&d.client_secret) {
        return unauthorized("invalid_client", "Invalid client id or secret provided");
    }
    let client = form.get("username").cloned().unwrap_or_else(|| d.client_id.clone());
    d.tokens.retain(|t| t.client != client);
    StatusCode::NO_CONTENT.into_response()
}

fn form_urlencoded(body: &[u8]) -> HashMap<String, String> {
    reqwest::Url::parse(&format!("http://x/?{}", String::from_utf8_lossy(body)))
        .map(|u| u.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
        .unwrap_or_default()
}

/// The bearer token, the rate limit, then the next fault.
async fn guard(State(sim): State<VkAds>, req: Request, next: Next) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let fault = {
        let mut d = sim.data();
        match d.tokens.iter().find(|t| Some(&t.access) == bearer.as_ref()) {
            None => return unauthorized("invalid_token", "Unknown access token"),
            Some(t) if t.expires <= Instant::now() => return unauthorized("expired_token", "Access token is expired"),
            Some(_) => {}
        }
        if d.rate_limited > 0 {
            d.rate_limited -= 1;
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("x-ratelimit-rps-limit", "10"), ("x-ratelimit-rps-remaining", "0")],
                axum::Json(json!({ "remaining": { "1": 0 }, "limits": { "1": 10 } })),
            )
                .into_response();
        }
        if d.faults.is_empty() { None } else { Some(d.faults.remove(0)) }
    };
    let mut resp = faults::apply(fault, req, next).await;
    resp.headers_mut().insert("x-ratelimit-rps-limit", header::HeaderValue::from_static("10"));
    resp.headers_mut().insert("x-ratelimit-rps-remaining", header::HeaderValue::from_static("9"));
    resp
}

async fn list(State(sim): State<VkAds>, Query(q): Query<HashMap<String, String>>) -> Response {
    let d = sim.data();
    let limit = q.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(20).min(50);
    let offset = q.get("offset").and_then(|o| o.parse::<usize>().ok()).unwrap_or(0);
    let ids: Option<Vec<i64>> = q.get("_id__in").map(|s| s.split(',').filter_map(|i| i.parse().ok()).collect());
    let statuses: Option<Vec<&str>> = q.get("_status__in").map(|s| s.split(',').collect());
    let matching: Vec<&Value> = d
        .plans
        .values()
        // Deleted plans are listed only when asked for.
        .filter(|p| match &statuses {
            Some(s) => s.contains(&p["status"].as_str().unwrap_or_default()),
            None => p["status"] != "deleted",
        })
        .filter(|p| ids.as_ref().is_none_or(|ids| p["id"].as_i64().is_some_and(|id| ids.contains(&id))))
        .collect();
    let items: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|p| json!({ "id": p["id"], "name": p["name"], "status": p["status"] }))
        .collect();
    axum::Json(json!({ "count": matching.len(), "offset": offset, "items": items })).into_response()
}

async fn create(State(sim): State<VkAds>, body: Bytes) -> Response {
    let Ok(Value::Object(plan)) = serde_json::from_slice::<Value>(&body) else {
        return api_error(StatusCode::BAD_REQUEST, "invalid_json", "Request body is not a JSON object");
    };
    if plan.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
        let body = json!({ "error": { "fields": { "name": { "message": "This field is required.", "code": "required" } }, "message": "Validation failed", "code": "validation_failed" } });
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    if let Some(refused) = bad_status(&plan) {
        return refused;
    }
    let mut d = sim.data();
    d.counter += 1;
    let id = d.counter as i64;
    let mut stored = Value::Object(plan);
    stored["id"] = json!(id);
    if stored.get("status").is_none() {
        stored["status"] = json!("active");
    }
    d.plans.insert(id, stored);
    d.creates += 1;
    axum::Json(json!({ "id": id })).into_response()
}

/// 400 `validation_failed` for a status VK does not have.
fn bad_status(fields: &serde_json::Map<String, Value>) -> Option<Response> {
    let status = fields.get("status").and_then(Value::as_str)?;
    if ["active", "blocked", "deleted"].contains(&status) {
        return None;
    }
    let body = json!({ "error": { "fields": { "status": { "message": "Unallowed value", "code": "bad_value" } }, "message": "Validation failed", "code": "validation_failed" } });
    Some((StatusCode::BAD_REQUEST, axum::Json(body)).into_response())
}

async fn update(State(sim): State<VkAds>, Path(file): Path<String>, body: Bytes) -> Response {
    let Some(id) = file.strip_suffix(".json").and_then(|i| i.parse::<i64>().ok()) else {
        return api_error(StatusCode::NOT_FOUND, "not_found", "Not found");
    };
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return api_error(StatusCode::BAD_REQUEST, "invalid_json", "Request body is not a JSON object");
    };
    if let Some(refused) = bad_status(&fields) {
        return refused;
    }
    let mut d = sim.data();
    let Some(plan) = d.plans.get_mut(&id) else {
        return api_error(StatusCode::NOT_FOUND, "not_found", "Not found");
    };
    for (k, v) in fields {
        plan[k.as_str()] = v;
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn statistics(State(sim): State<VkAds>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut d = sim.data();
    let (Some(ids), Some(from), Some(to)) = (q.get("id"), q.get("date_from"), q.get("date_to")) else {
        return api_error(StatusCode::BAD_REQUEST, "ERR_WRONG_PARAMETER", "id, date_from and date_to are required");
    };
    d.asked.push((ids.clone(), from.clone(), to.clone()));
    let ids: Vec<i64> = ids.split(',').filter_map(|i| i.parse().ok()).collect();
    let (Ok(from), Ok(to)) =
        (chrono::NaiveDate::parse_from_str(from, "%Y-%m-%d"), chrono::NaiveDate::parse_from_str(to, "%Y-%m-%d"))
    else {
        return api_error(StatusCode::BAD_REQUEST, "ERR_WRONG_DATE", "Wrong date format");
    };
    if ids.len() > 200 || (to - from).num_days() > 366 {
        return api_error(StatusCode::BAD_REQUEST, "ERR_LIMIT_EXCEEDED", "Too many objects or days requested");
    }
    if let Some(unknown) = ids.iter().find(|id| !d.plans.contains_key(id)) {
        return api_error(StatusCode::BAD_REQUEST, "ERR_WRONG_ADPLANS", &format!("Unknown ad plan {unknown}"));
    }
    let base = |shows: i64, clicks: i64, spent: &str| json!({ "shows": shows, "clicks": clicks, "goals": 0, "spent": spent, "cpm": "0", "cpc": "0", "cpa": "0", "ctr": 0, "cr": 0 });
    let mut items = Vec::new();
    for id in ids {
        let mut rows = Vec::new();
        let mut day = from;
        while day <= to {
            let (shows, clicks, spent) = d.stats.get(&(id, day.to_string())).cloned().unwrap_or((0, 0, "0".to_owned()));
            rows.push(json!({ "date": day.to_string(), "base": base(shows, clicks, &spent) }));
            day += chrono::Duration::days(1);
        }
        items.push(json!({ "id": id, "rows": rows, "total": { "base": base(0, 0, "0") } }));
    }
    axum::Json(json!({ "items": items, "total": { "base": base(0, 0, "0") } })).into_response()
}

/// `POST /_sim/stats` `{campaign_id, day, impressions, clicks, cost}` (cost a decimal string).
async fn control_stats(State(sim): State<VkAds>, axum::Json(row): axum::Json<Value>) -> Response {
    let int = |k: &str| row.get(k).and_then(Value::as_i64);
    let cost = row.get("cost").map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_owned));
    match (int("campaign_id"), row.get("day").and_then(Value::as_str), cost) {
        (Some(id), Some(day), Some(cost)) => {
            sim.set_stats(id, day, int("impressions").unwrap_or(0), int("clicks").unwrap_or(0), &cost);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => (StatusCode::BAD_REQUEST, "{campaign_id, day, impressions, clicks, cost}").into_response(),
    }
}
