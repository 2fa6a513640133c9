//! amoCRM API v4, as https://www.amocrm.ru/developers/content/crm_platform/api-reference
//! describes it:
//!
//! - `POST /oauth2/access_token` (JSON): the refresh-token grant (and the authorization code
//!   one) answers `{token_type, expires_in, access_token, refresh_token}`, and **rotates** the
//!   refresh token: the one used is revoked (400 with `hint` afterwards);
//! - every `/api/v4/…` call needs `Authorization: Bearer <live access token>`, else 401
//!   problem+json;
//! - `GET /api/v4/leads` (hal+json; `page`, `limit` ≤ 250, `with=contacts`,
//!   `filter[updated_at][from]`, `filter[statuses][0][status_id]`, `order[updated_at]=asc`;
//!   `_links.next` while more pages follow; 204 with no body when nothing matches);
//! - `GET /api/v4/leads/{id}` (204 when there is no such lead), `PATCH /api/v4/leads/{id}`;
//! - `POST /api/v4/leads/{id}/notes`, `POST /api/v4/tasks` (arrays in, `_embedded` out);
//! - webhooks: `application/x-www-form-urlencoded` with nested keys
//!   (`leads[status][0][id]=…`), unsigned, sent by [`Amocrm::send_status_webhook`].
//!
//! Control (for the demo binary): `POST /_sim/leads` (a lead or an array), `POST /_sim/faults`
//! (a [`Fault`] or an array), `POST /_sim/revoke`, `GET /_sim/state`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use serde_json::{Value, json};

use crate::faults::{self, Fault};

/// How long a long-lived token lives (amoCRM lets one choose up to five years).
const LONG_LIVED_SECS: u64 = 5 * 365 * 86_400;

/// The integration's credentials the simulator accepts.
#[derive(Debug, Clone)]
pub struct Options {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    /// The refresh token valid at start (the one a connector is configured with).
    pub refresh_token: String,
    /// Lifetime of the access tokens it hands out (amoCRM: 86400 s).
    pub access_ttl_secs: u64,
    /// A long-lived token (amoCRM's private integrations: an access token valid for years,
    /// never refreshed), valid from the start.
    pub long_lived_token: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            client_id: "sim-client".into(),
            client_secret: "sim-secret".into(),
            redirect_uri: "https://junction.example/oauth".into(),
            refresh_token: "sim-refresh-0".into(),
            access_ttl_secs: 86_400,
            long_lived_token: None,
        }
    }
}

/// One request the API got (after auth), for tests to look at.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub at: Instant,
}

#[derive(Default)]
struct Data {
    options: Option<Options>,
    leads: BTreeMap<u64, Value>,
    contacts: BTreeMap<u64, Value>,
    notes: Vec<Value>,
    tasks: Vec<Value>,
    /// Live access tokens and when each expires (Unix seconds).
    access: BTreeMap<String, u64>,
    /// The one refresh token that works now.
    refresh: String,
    token_requests: usize,
    faults: Vec<Fault>,
    seen: Vec<Seen>,
    next_id: u64,
}

/// A running amoCRM simulator.
#[derive(Clone)]
pub struct Amocrm {
    /// `http://127.0.0.1:<port>`: the connector's `base_url`.
    pub url: String,
    data: Arc<Mutex<Data>>,
}

impl Amocrm {
    /// Serves on `listen` (`127.0.0.1:0` for any free port) until the runtime ends.
    pub async fn start(listen: &str, options: Options) -> std::io::Result<Amocrm> {
        let mut data = Data { refresh: options.refresh_token.clone(), next_id: 1000, ..Data::default() };
        if let Some(token) = &options.long_lived_token {
            data.access.insert(token.clone(), now() + LONG_LIVED_SECS);
        }
        data.options = Some(options);
        let sim = Amocrm { url: String::new(), data: Arc::new(Mutex::new(data)) };
        let app = sim.router();
        let addr = crate::serve(listen, app, "amoCRM").await?;
        Ok(Amocrm { url: format!("http://{addr}"), ..sim })
    }

    fn router(&self) -> Router {
        let api = Router::new()
            .route("/api/v4/leads", get(list_leads))
            .route("/api/v4/leads/{id}", get(get_lead).patch(patch_lead))
            .route("/api/v4/leads/{id}/notes", post(add_notes))
            .route("/api/v4/tasks", post(add_tasks))
            .layer(middleware::from_fn_with_state(self.clone(), guard));
        Router::new()
            .merge(api)
            .route("/oauth2/access_token", post(access_token))
            .route("/_sim/leads", post(seed_leads))
            .route("/_sim/faults", post(add_faults))
            .route("/_sim/revoke", post(revoke))
            .route("/_sim/state", get(state))
            .with_state(self.clone())
    }

    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds (or replaces) a lead; `id`, `updated_at` and the documented fields are filled in
    /// when missing. Returns its id.
    pub fn add_lead(&self, lead: Value) -> u64 {
        let mut d = self.data();
        let id = lead.get("id").and_then(Value::as_u64).unwrap_or_else(|| {
            d.next_id += 1;
            d.next_id
        });
        let lead = complete_lead(id, lead);
        d.leads.insert(id, lead);
        id
    }

    /// Adds a contact and links it to `lead` (what `with=contacts` shows).
    pub fn add_contact(&self, lead: u64, contact: Value) -> u64 {
        let mut d = self.data();
        d.next_id += 1;
        let id = d.next_id;
        let mut contact = contact;
        contact["id"] = json!(id);
        d.contacts.insert(id, contact);
        if let Some(l) = d.leads.get_mut(&lead) {
            let list = l["_embedded"]["contacts"].as_array().cloned().unwrap_or_default();
            let mut list = list;
            list.push(json!({ "id": id, "is_main": list.is_empty() }));
            l["_embedded"]["contacts"] = Value::Array(list);
        }
        id
    }

    /// Changes a lead as a user in the CRM would (its `updated_at` moves on).
    pub fn update_lead(&self, id: u64, fields: Value) {
        let mut d = self.data();
        if let Some(lead) = d.leads.get_mut(&id) {
            merge(lead, &fields);
            touch(lead);
        }
    }

    pub fn lead(&self, id: u64) -> Option<Value> {
        self.data().leads.get(&id).cloned()
    }

    /// The next requests to `/api/v4/…` get these, one each, in order.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.data().faults.extend(faults);
    }

    /// Drops the faults no request took; how many there were.
    pub fn clear_faults(&self) -> usize {
        std::mem::take(&mut self.data().faults).len()
    }

    /// Every access token stops working (as when amoCRM revokes them): the next call gets 401.
    pub fn revoke_access_tokens(&self) {
        self.data().access.clear();
    }

    pub fn notes(&self) -> Vec<Value> {
        self.data().notes.clone()
    }

    pub fn tasks(&self) -> Vec<Value> {
        self.data().tasks.clone()
    }

    /// Token requests answered so far (successful or not).
    pub fn token_requests(&self) -> usize {
        self.data().token_requests
    }

    /// The refresh token that works now.
    pub fn current_refresh_token(&self) -> String {
        self.data().refresh.clone()
    }

    /// The API requests seen so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.data().seen.clone()
    }

    /// Sends the webhook amoCRM sends when a lead changes status to `webhook_url`:
    /// form-encoded, with nested keys. Returns the status the receiver answered.
    pub async fn send_status_webhook(&self, webhook_url: &str, lead: u64, status_id: u64) -> reqwest::Result<u16> {
        let (pipeline, old_status) = {
            let mut d = self.data();
            let lead_value = d.leads.get_mut(&lead);
            let (pipeline, old) = lead_value
                .as_ref()
                .map(|l| (l["pipeline_id"].as_u64().unwrap_or(0), l["status_id"].as_u64().unwrap_or(0)))
                .unwrap_or_default();
            if let Some(l) = lead_value {
                l["status_id"] = json!(status_id);
                touch(l);
            }
            (pipeline, old)
        };
        let form = status_webhook_form(lead, status_id, old_status, pipeline);
        let resp = reqwest::Client::new()
            .post(webhook_url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await?;
        Ok(resp.status().as_u16())
    }
}

/// The agency account's custom fields of a lead that a master deal needs (amoCRM custom fields
/// are per account: these ids are the demo account's, and the root project's
/// `transforms/amocrm_lead_to_master_deal.rhai` names the same).
pub mod fields {
    /// Text: the advertiser's legal name.
    pub const ADVERTISER: u64 = 2_410_001;
    /// Text: the advertiser's INN (10 or 12 digits).
    pub const INN: u64 = 2_410_002;
    /// Date (unix seconds): the campaign period's first and last day.
    pub const PERIOD_FROM: u64 = 2_410_003;
    pub const PERIOD_TO: u64 = 2_410_004;
}

/// A lead of the agency's pipeline as amoCRM returns it: `price` is the budget (roubles), the
/// advertiser and the period in custom fields (see [`fields`]), status 142 (won).
pub fn deal_lead(name: &str, price: u64, advertiser: &str, inn: &str, period: (NaiveDate, NaiveDate)) -> Value {
    let text = |id: u64, field: &str, value: &str| json!({ "field_id": id, "field_name": field, "field_code": null, "field_type": "text", "values": [{ "value": value }] });
    let date = |id: u64, field: &str, day: NaiveDate| {
        let secs = day.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp());
        json!({ "field_id": id, "field_name": field, "field_code": null, "field_type": "date", "values": [{ "value": secs }] })
    };
    json!({
        "name": name,
        "price": price,
        "status_id": 142,
        "custom_fields_values": [
            text(fields::ADVERTISER, "Рекламодатель", advertiser),
            text(fields::INN, "ИНН рекламодателя", inn),
            date(fields::PERIOD_FROM, "Период с", period.0),
            date(fields::PERIOD_TO, "Период по", period.1),
        ],
    })
}

/// The form body of amoCRM's "lead status changed" webhook
/// (https://www.amocrm.ru/developers/content/crm_platform/webhooks-format).
pub fn status_webhook_form(lead: u64, status_id: u64, old_status_id: u64, pipeline_id: u64) -> String {
    let now = now();
    let pairs = [
        ("leads[status][0][id]", lead.to_string()),
        ("leads[status][0][status_id]", status_id.to_string()),
        ("leads[status][0][pipeline_id]", pipeline_id.to_string()),
        ("leads[status][0][old_status_id]", old_status_id.to_string()),
        ("leads[status][0][old_pipeline_id]", pipeline_id.to_string()),
        ("account[id]", "29085955".to_owned()),
        ("account[subdomain]", "example".to_owned()),
        ("account[_links][self]", "https://example.amocrm.ru".to_owned()),
        ("leads[status][0][last_modified]", now.to_string()),
    ];
    let mut url = reqwest::Url::parse("http://x/").expect("a constant URL");
    url.query_pairs_mut().extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
    url.query().unwrap_or_default().to_owned()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A lead as the API returns it, with what the caller left out.
fn complete_lead(id: u64, lead: Value) -> Value {
    let now = now();
    let mut full = json!({
        "id": id,
        "name": format!("Сделка #{id}"),
        "price": 0,
        "responsible_user_id": 504141,
        "group_id": 0,
        "status_id": 142,
        "pipeline_id": 3177727,
        "loss_reason_id": null,
        "created_by": 504141,
        "updated_by": 504141,
        "created_at": now,
        "updated_at": now,
        "closed_at": null,
        "closest_task_at": null,
        "is_deleted": false,
        "custom_fields_values": null,
        "score": null,
        "account_id": 29085955,
        "_links": { "self": { "href": format!("https://example.amocrm.ru/api/v4/leads/{id}") } },
        "_embedded": { "tags": [], "companies": [] },
    });
    merge(&mut full, &lead);
    full
}

fn merge(into: &mut Value, from: &Value) {
    if let (Some(into), Some(from)) = (into.as_object_mut(), from.as_object()) {
        for (k, v) in from {
            into.insert(k.clone(), v.clone());
        }
    }
}

/// Moves `updated_at` on, past its previous value.
fn touch(lead: &mut Value) {
    let before = lead["updated_at"].as_u64().unwrap_or(0);
    lead["updated_at"] = json!(now().max(before + 1));
}

/// Checks the bearer token, records the request, and applies the next fault.
async fn guard(State(sim): State<Amocrm>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let fault = {
        let mut d = sim.data();
        let live = token.as_ref().and_then(|t| d.access.get(t)).is_some_and(|exp| *exp > now());
        if !live {
            return problem(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "The access token is missing, expired or revoked",
            );
        }
        let seen = Seen {
            method: req.method().to_string(),
            path: req.uri().path().to_owned(),
            query: req.uri().query().unwrap_or_default().to_owned(),
            at: Instant::now(),
        };
        d.seen.push(seen);
        if d.faults.is_empty() { None } else { Some(d.faults.remove(0)) }
    };
    faults::apply(fault, req, next).await
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = json!({ "title": title, "type": format!("https://httpstatus.es/{}", status.as_u16()), "status": status.as_u16(), "detail": detail });
    (status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
}

fn hal(body: Value) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/hal+json")], body.to_string()).into_response()
}

async fn access_token(State(sim): State<Amocrm>, body: Bytes) -> Response {
    let params: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let text = |k: &str| params.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut d = sim.data();
    d.token_requests += 1;
    let Some(o) = d.options.clone() else { return problem(StatusCode::INTERNAL_SERVER_ERROR, "Error", "no options") };
    let grant = text("grant_type");
    let client_ok = text("client_id") == o.client_id && text("client_secret") == o.client_secret;
    let grant_ok = match grant.as_str() {
        "refresh_token" => text("refresh_token") == d.refresh && text("redirect_uri") == o.redirect_uri,
        "authorization_code" => !text("code").is_empty() && text("redirect_uri") == o.redirect_uri,
        _ => false,
    };
    if !client_ok || !grant_ok {
        let hint = if grant == "refresh_token" { "Token has been revoked" } else { "Bad request" };
        let body = json!({
            "hint": hint,
            "title": "Некорректный запрос",
            "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson",
            "status": 400,
            "detail": "В запросе отсутствует ряд параметров или параметры невалидны",
        });
        return (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string())
            .into_response();
    }
    let access = format!("sim-access-{}", uuid::Uuid::new_v4().simple());
    let refresh = format!("sim-refresh-{}", uuid::Uuid::new_v4().simple());
    d.access.insert(access.clone(), now() + o.access_ttl_secs);
    // Rotation: the refresh token just used stops working.
    d.refresh = refresh.clone();
    Json(json!({ "token_type": "Bearer", "expires_in": o.access_ttl_secs, "access_token": access, "refresh_token": refresh }))
        .into_response()
}

/// `filter[...]`, `order[...]` and the rest of a query, as pairs.
fn pairs(query: &Option<String>) -> Vec<(String, String)> {
    let Some(q) = query else { return Vec::new() };
    reqwest::Url::parse(&format!("http://x/?{q}"))
        .map(|u| u.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
        .unwrap_or_default()
}

async fn list_leads(State(sim): State<Amocrm>, RawQuery(query): RawQuery) -> Response {
    let q = pairs(&query);
    let get = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let page: usize = get("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
    let limit: usize = get("limit").and_then(|l| l.parse().ok()).unwrap_or(50);
    if limit > 250 {
        return problem(StatusCode::BAD_REQUEST, "Bad Request", "limit is at most 250");
    }
    let from: Option<u64> = get("filter[updated_at][from]").and_then(|v| v.parse().ok());
    let status: Option<u64> = get("filter[statuses][0][status_id]").and_then(|v| v.parse().ok());
    let with_contacts = get("with").is_some_and(|w| w.split(',').any(|x| x == "contacts"));
    let d = sim.data();
    let mut leads: Vec<Value> = d
        .leads
        .values()
        .filter(|l| from.is_none_or(|f| l["updated_at"].as_u64().unwrap_or(0) >= f))
        .filter(|l| status.is_none_or(|s| l["status_id"].as_u64() == Some(s)))
        .cloned()
        .collect();
    if get("order[updated_at]").as_deref() == Some("asc") {
        leads.sort_by_key(|l| (l["updated_at"].as_u64().unwrap_or(0), l["id"].as_u64().unwrap_or(0)));
    }
    let start = (page - 1) * limit;
    if start >= leads.len() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let chunk: Vec<Value> = leads[start..leads.len().min(start + limit)]
        .iter()
        .map(|l| if with_contacts { l.clone() } else { without_contacts(l) })
        .collect();
    let base = "https://example.amocrm.ru/api/v4/leads";
    let mut links = json!({ "self": { "href": format!("{base}?limit={limit}&page={page}") } });
    if start + limit < leads.len() {
        links["next"] = json!({ "href": format!("{base}?limit={limit}&page={}", page + 1) });
    }
    hal(json!({ "_page": page, "_links": links, "_embedded": { "leads": chunk } }))
}

fn without_contacts(lead: &Value) -> Value {
    let mut l = lead.clone();
    if let Some(e) = l.get_mut("_embedded").and_then(Value::as_object_mut) {
        e.remove("contacts");
    }
    l
}

async fn get_lead(State(sim): State<Amocrm>, Path(id): Path<u64>, RawQuery(query): RawQuery) -> Response {
    let with_contacts = pairs(&query).iter().any(|(k, v)| k == "with" && v.split(',').any(|x| x == "contacts"));
    match sim.data().leads.get(&id) {
        Some(l) => hal(if with_contacts { l.clone() } else { without_contacts(l) }),
        // amoCRM answers an unknown id with 204 and no body.
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn patch_lead(State(sim): State<Amocrm>, Path(id): Path<u64>, body: Bytes) -> Response {
    let Ok(fields) = serde_json::from_slice::<Value>(&body) else {
        return problem(StatusCode::BAD_REQUEST, "Bad Request", "the body is not JSON");
    };
    if !fields.is_object() {
        return problem(StatusCode::BAD_REQUEST, "Bad Request", "a lead is an object");
    }
    let mut d = sim.data();
    let Some(lead) = d.leads.get_mut(&id) else {
        return problem(StatusCode::NOT_FOUND, "Not Found", "no such lead");
    };
    merge(lead, &fields);
    touch(lead);
    let updated_at = lead["updated_at"].clone();
    hal(
        json!({ "id": id, "updated_at": updated_at, "_links": { "self": { "href": format!("https://example.amocrm.ru/api/v4/leads/{id}") } } }),
    )
}

async fn add_notes(State(sim): State<Amocrm>, Path(id): Path<u64>, body: Bytes) -> Response {
    let Ok(Value::Array(notes)) = serde_json::from_slice::<Value>(&body) else {
        return problem(StatusCode::BAD_REQUEST, "Bad Request", "notes are an array");
    };
    let mut d = sim.data();
    if !d.leads.contains_key(&id) {
        return problem(StatusCode::BAD_REQUEST, "Bad Request", "no such lead");
    }
    let mut made = Vec::new();
    for (i, mut note) in notes.into_iter().enumerate() {
        d.next_id += 1;
        let note_id = d.next_id;
        note["id"] = json!(note_id);
        note["entity_id"] = json!(id);
        d.notes.push(note);
        made.push(json!({ "id": note_id, "entity_id": id, "request_id": i.to_string(), "_links": { "self": { "href": format!("https://example.amocrm.ru/api/v4/leads/{id}/notes/{note_id}") } } }));
    }
    hal(
        json!({ "_links": { "self": { "href": format!("https://example.amocrm.ru/api/v4/leads/{id}/notes") } }, "_embedded": { "notes": made } }),
    )
}

async fn add_tasks(State(sim): State<Amocrm>, body: Bytes) -> Response {
    let Ok(Value::Array(tasks)) = serde_json::from_slice::<Value>(&body) else {
        return problem(StatusCode::BAD_REQUEST, "Bad Request", "tasks are an array");
    };
    let mut d = sim.data();
    let mut made = Vec::new();
    for (i, mut task) in tasks.into_iter().enumerate() {
        if task.get("text").is_none() || task.get("complete_till").is_none() {
            return problem(StatusCode::BAD_REQUEST, "Bad Request", "a task needs text and complete_till");
        }
        d.next_id += 1;
        let task_id = d.next_id;
        task["id"] = json!(task_id);
        d.tasks.push(task);
        made.push(json!({ "id": task_id, "request_id": i.to_string(), "_links": { "self": { "href": format!("https://example.amocrm.ru/api/v4/tasks/{task_id}") } } }));
    }
    hal(
        json!({ "_links": { "self": { "href": "https://example.amocrm.ru/api/v4/tasks" } }, "_embedded": { "tasks": made } }),
    )
}

async fn seed_leads(State(sim): State<Amocrm>, Json(body): Json<Value>) -> Response {
    let leads = match body {
        Value::Array(items) => items,
        one => vec![one],
    };
    let ids: Vec<u64> = leads.into_iter().map(|l| sim.add_lead(l)).collect();
    Json(json!({ "ids": ids })).into_response()
}

async fn add_faults(State(sim): State<Amocrm>, Json(body): Json<Value>) -> Response {
    let list = match body {
        Value::Array(items) => items,
        one => vec![one],
    };
    let parsed: Result<Vec<Fault>, _> = list.into_iter().map(serde_json::from_value).collect();
    match parsed {
        Ok(f) => {
            sim.fail_next(f);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => problem(StatusCode::BAD_REQUEST, "Bad Request", &e.to_string()),
    }
}

async fn revoke(State(sim): State<Amocrm>) -> Response {
    sim.revoke_access_tokens();
    StatusCode::NO_CONTENT.into_response()
}

async fn state(State(sim): State<Amocrm>, _headers: HeaderMap) -> Response {
    let d = sim.data();
    Json(json!({
        "leads": d.leads.values().collect::<Vec<_>>(),
        "notes": d.notes,
        "tasks": d.tasks,
        "token_requests": d.token_requests,
        "requests": d.seen.len(),
    }))
    .into_response()
}
