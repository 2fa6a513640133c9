//! Yandex Direct API v5, as https://yandex.ru/dev/direct/doc/ref-v5/ describes it:
//!
//! - `POST /json/v5/campaigns` with `{method, params}`: `get`, `add`, `update`, `suspend`,
//!   `resume`; errors inside HTTP 200 (`{"error": {error_code, error_string, error_detail}}`),
//!   per-item errors in `AddResults[].Errors`; a bearer token; `Client-Login` for an agency's
//!   clients; points per client, spent by every call and shown in the `Units:
//!   spent/left/daily` header, error 152 once they ran out;
//! - `POST /json/v5/reports`: a report is built offline — 201, then 202, with `retryIn`, until
//!   it is ready (200, TSV); the same `ReportName` with other parameters is refused (4000).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use crate::faults::{self, Fault};

/// Points a call costs (Direct's costs differ by method; one number is enough here).
const CALL_COST: i64 = 10;

#[derive(Default)]
struct Data {
    token: String,
    campaigns: BTreeMap<i64, Value>,
    /// Points left per client (`""` for the account itself).
    units: HashMap<String, i64>,
    daily: i64,
    /// (campaign, day) → (impressions, clicks, cost in micros).
    stats: BTreeMap<(i64, String), (i64, i64, i64)>,
    /// Report name → (its parameters, polls answered so far).
    reports: HashMap<String, (Value, u32)>,
    /// Each report asked for, as (DateFrom, DateTo).
    asked: Vec<(String, String)>,
    /// Polls a report answers 201/202 before it is ready.
    build_polls: u32,
    adds: usize,
    /// Requests to the campaigns service, answered or refused.
    calls: usize,
    next_id: i64,
    faults: Vec<Fault>,
}

#[derive(Clone)]
pub struct Direct {
    /// The API root: the connector's `base_url`.
    pub url: String,
    data: Arc<Mutex<Data>>,
}

impl Direct {
    pub async fn start(listen: &str, token: &str) -> std::io::Result<Direct> {
        let data = Data { token: token.into(), daily: 64_000, build_polls: 2, next_id: 700, ..Data::default() };
        let sim = Direct { url: String::new(), data: Arc::new(Mutex::new(data)) };
        let app = Router::new()
            .route("/json/v5/campaigns", post(campaigns))
            .route("/json/v5/reports", post(reports))
            .layer(middleware::from_fn_with_state(sim.clone(), guard))
            // Control, for the demo: a day's statistics, a campaign's state.
            .route("/_sim/stats", post(control_stats))
            .route("/_sim/campaigns/{id}", post(control_campaign))
            .with_state(sim.clone());
        let addr = crate::serve(listen, app, "Yandex Direct").await?;
        Ok(Direct { url: format!("http://{addr}"), ..sim })
    }

    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next requests get these, one each, in order.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.data().faults.extend(faults);
    }

    /// Drops the faults no request took; how many there were.
    pub fn clear_faults(&self) -> usize {
        std::mem::take(&mut self.data().faults).len()
    }

    /// One day of a campaign's statistics.
    pub fn set_stats(&self, campaign: i64, day: &str, impressions: i64, clicks: i64, cost_micros: i64) {
        self.data().stats.insert((campaign, day.to_owned()), (impressions, clicks, cost_micros));
    }

    /// The points `client` has left.
    pub fn set_units(&self, client: &str, left: i64) {
        self.data().units.insert(client.to_owned(), left);
    }

    pub fn campaigns(&self) -> Vec<Value> {
        self.data().campaigns.values().cloned().collect()
    }

    /// Successful `add`s.
    pub fn adds(&self) -> usize {
        self.data().adds
    }

    /// Requests the campaigns service got.
    pub fn calls(&self) -> usize {
        self.data().calls
    }

    /// The date ranges of the reports asked for (each poll included).
    pub fn reports_asked(&self) -> Vec<(String, String)> {
        self.data().asked.clone()
    }
}

/// The next fault, if any.
async fn guard(State(sim): State<Direct>, req: Request, next: Next) -> Response {
    let fault = {
        let mut d = sim.data();
        if d.faults.is_empty() { None } else { Some(d.faults.remove(0)) }
    };
    faults::apply(fault, req, next).await
}

fn api_error(code: i64, text: &str, detail: &str) -> Response {
    let body = json!({ "error": { "request_id": "8695244274068608439", "error_code": code, "error_string": text, "error_detail": detail } });
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body.to_string()).into_response()
}

/// Checks the token and spends the client's points; the client, or the error to answer.
fn admit(d: &mut Data, headers: &HeaderMap) -> Result<(String, i64), Box<Response>> {
    let bearer =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(d.token.as_str()) {
        return Err(Box::new(api_error(53, "Ошибка авторизации", "Неверный OAuth-токен")));
    }
    let client = headers.get("client-login").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let daily = d.daily;
    let left = d.units.entry(client.clone()).or_insert(daily);
    if *left < CALL_COST {
        return Err(Box::new(api_error(152, "Недостаточно баллов", "Для выполнения запроса недостаточно баллов")));
    }
    *left -= CALL_COST;
    Ok((client, *left))
}

fn units_header(left: i64, daily: i64) -> (header::HeaderName, String) {
    (header::HeaderName::from_static("units"), format!("{CALL_COST}/{left}/{daily}"))
}

async fn campaigns(State(sim): State<Direct>, headers: HeaderMap, body: Bytes) -> Response {
    let mut d = sim.data();
    d.calls += 1;
    let (_, left) = match admit(&mut d, &headers) {
        Ok(x) => x,
        Err(resp) => return *resp,
    };
    let units = units_header(left, d.daily);
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return api_error(8000, "Неверный запрос", "Тело запроса не является JSON");
    };
    let params = &request["params"];
    let ids: Option<Vec<i64>> = params
        .pointer("/SelectionCriteria/Ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).collect());
    let result = match request["method"].as_str().unwrap_or_default() {
        "get" => {
            let list: Vec<Value> = d
                .campaigns
                .values()
                .filter(|c| ids.as_ref().is_none_or(|ids| c["Id"].as_i64().is_some_and(|id| ids.contains(&id))))
                .cloned()
                .collect();
            json!({ "Campaigns": list })
        }
        "add" => {
            let mut results = Vec::new();
            for c in params["Campaigns"].as_array().cloned().unwrap_or_default() {
                if c.get("Name").is_none() || c.get("StartDate").is_none() {
                    results.push(json!({ "Errors": [{ "Code": 8000, "Message": "Неверный запрос", "Details": "Не указаны Name или StartDate" }] }));
                    continue;
                }
                d.next_id += 1;
                let id = d.next_id;
                let mut stored = c.clone();
                stored["Id"] = json!(id);
                stored["State"] = json!("OFF");
                stored["Status"] = json!("DRAFT");
                d.campaigns.insert(id, stored);
                d.adds += 1;
                results.push(json!({ "Id": id }));
            }
            json!({ "AddResults": results })
        }
        "update" => {
            let mut results = Vec::new();
            for c in params["Campaigns"].as_array().cloned().unwrap_or_default() {
                let id = c["Id"].as_i64().unwrap_or(0);
                match d.campaigns.get_mut(&id) {
                    Some(stored) => {
                        if let (Some(into), Some(from)) = (stored.as_object_mut(), c.as_object()) {
                            into.extend(from.clone());
                        }
                        results.push(json!({ "Id": id }));
                    }
                    None => results.push(json!({ "Errors": [{ "Code": 8800, "Message": "Объект не найден", "Details": "Кампания не найдена" }] })),
                }
            }
            json!({ "UpdateResults": results })
        }
        method @ ("suspend" | "resume") => {
            let state = if method == "suspend" { "SUSPENDED" } else { "ON" };
            let mut results = Vec::new();
            for id in ids.unwrap_or_default() {
                match d.campaigns.get_mut(&id) {
                    Some(c) => {
                        c["State"] = json!(state);
                        results.push(json!({ "Id": id }));
                    }
                    None => results
                        .push(json!({ "Errors": [{ "Code": 8800, "Message": "Объект не найден", "Details": "" }] })),
                }
            }
            json!({ if method == "suspend" { "SuspendResults" } else { "ResumeResults" }: results })
        }
        other => return api_error(55, "Не найдена операция", &format!("Метод {other} не поддерживается")),
    };
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        json!({ "result": result }).to_string(),
    )
        .into_response();
    if let Ok(v) = units.1.parse() {
        resp.headers_mut().insert(units.0, v);
    }
    resp
}

async fn reports(State(sim): State<Direct>, headers: HeaderMap, body: Bytes) -> Response {
    let mut d = sim.data();
    if let Err(resp) = admit(&mut d, &headers) {
        return *resp;
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let params = request["params"].clone();
    let name = params["ReportName"].as_str().unwrap_or_default().to_owned();
    let from = params.pointer("/SelectionCriteria/DateFrom").and_then(Value::as_str).unwrap_or_default().to_owned();
    let to = params.pointer("/SelectionCriteria/DateTo").and_then(Value::as_str).unwrap_or_default().to_owned();
    d.asked.push((from.clone(), to.clone()));
    let mut without_name = params.clone();
    if let Some(o) = without_name.as_object_mut() {
        o.remove("ReportName");
    }
    let build_polls = d.build_polls;
    let entry = d.reports.entry(name).or_insert((without_name.clone(), 0));
    if entry.0 != without_name {
        let body = json!({ "error": { "request_id": "1", "error_code": "4000", "error_string": "Неверные параметры запроса", "error_detail": "Отчет с таким именем уже существует с другими параметрами" } });
        return (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "application/json")], body.to_string())
            .into_response();
    }
    entry.1 += 1;
    if entry.1 <= build_polls {
        let status = if entry.1 == 1 { StatusCode::CREATED } else { StatusCode::ACCEPTED };
        return (status, [(header::HeaderName::from_static("retryin"), "1")]).into_response();
    }
    let mut tsv = String::from("Date\tCampaignId\tImpressions\tClicks\tCost\n");
    for ((campaign, day), (shows, clicks, cost)) in &d.stats {
        if day.as_str() >= from.as_str() && day.as_str() <= to.as_str() {
            tsv.push_str(&format!("{day}\t{campaign}\t{shows}\t{clicks}\t{cost}\n"));
        }
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/tab-separated-values; charset=utf-8")], tsv).into_response()
}

/// `POST /_sim/stats` `{campaign_id, day, impressions, clicks, cost}` (cost in the currency,
/// stored in micros as Direct reports it).
async fn control_stats(State(sim): State<Direct>, axum::Json(row): axum::Json<Value>) -> Response {
    let int = |k: &str| row.get(k).and_then(Value::as_i64);
    let cost = row.get("cost").and_then(|c| c.as_f64().or_else(|| c.as_str().and_then(|s| s.parse().ok())));
    match (int("campaign_id"), row.get("day").and_then(Value::as_str), cost) {
        (Some(id), Some(day), Some(cost)) => {
            let micros = (cost * 1_000_000.0).round() as i64;
            sim.set_stats(id, day, int("impressions").unwrap_or(0), int("clicks").unwrap_or(0), micros);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => (StatusCode::BAD_REQUEST, "{campaign_id, day, impressions, clicks, cost}").into_response(),
    }
}

/// `POST /_sim/campaigns/<id>` `{"State": "ON", "Status": "ACCEPTED"}`: what moderation and
/// the client's people do to a campaign.
async fn control_campaign(
    State(sim): State<Direct>,
    axum::extract::Path(id): axum::extract::Path<i64>,
    axum::Json(fields): axum::Json<Value>,
) -> Response {
    let mut d = sim.data();
    match (d.campaigns.get_mut(&id), fields.as_object()) {
        (Some(campaign), Some(fields)) => {
            if let Some(c) = campaign.as_object_mut() {
                c.extend(fields.clone());
            }
            axum::Json(campaign.clone()).into_response()
        }
        _ => (StatusCode::NOT_FOUND, "no such campaign").into_response(),
    }
}
