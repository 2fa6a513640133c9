//! 1C:Enterprise's standard OData v3 interface (`/odata/standard.odata/`), as
//! https://its.1c.ru/db/v8325doc#bookmark:dev:TI000001358 describes it, for invoices
//! (`Document_СчетНаОплатуПокупателю`) and payments (`Document_ПоступлениеНаРасчетныйСчет`):
//!
//! - HTTP Basic; 401 without the right user;
//! - `GET /<set>?$format=json&$filter=<field> eq '<text>'&$top&$skip&$select&$orderby` →
//!   `{"odata.metadata": …, "value": [...]}` (the filter: `eq` on one field, joined by `and`);
//! - `GET /<set>(guid'<ref>')` → the document, 404 with `odata.error` when there is none;
//! - `POST /<set>` → 201 and the document with its `Ref_Key`, `DataVersion`, `Number`;
//! - `PATCH /<set>(guid'<ref>')` with `If-Match: <DataVersion>` → 200, or 412 when the
//!   document changed since that version;
//! - `POST /<set>(guid'<ref>')/Post` → 200 with no body, the document `Posted`.
//!
//! 1C has no idempotency keys: two POSTs make two documents, which the tests count.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::faults::{self, Fault};

pub const INVOICES: &str = "Document_СчетНаОплатуПокупателю";
pub const PAYMENTS: &str = "Document_ПоступлениеНаРасчетныйСчет";

#[derive(Default)]
struct Data {
    user: String,
    password: String,
    /// Entity set → documents by `Ref_Key`, in creation order.
    sets: BTreeMap<String, Vec<Value>>,
    faults: Vec<Fault>,
    /// Statuses the next creates answer after they committed.
    create_faults: Vec<u16>,
    creates: usize,
    counter: u64,
}

/// A running 1C OData simulator.
#[derive(Clone)]
pub struct OneC {
    /// The OData root: `http://127.0.0.1:<port>/buh/odata/standard.odata`.
    pub url: String,
    data: Arc<Mutex<Data>>,
}

impl OneC {
    pub async fn start(listen: &str, user: &str, password: &str) -> std::io::Result<OneC> {
        let data = Data { user: user.into(), password: password.into(), ..Data::default() };
        let sim = OneC { url: String::new(), data: Arc::new(Mutex::new(data)) };
        let app = Router::new()
            .fallback(odata)
            .layer(middleware::from_fn_with_state(sim.clone(), guard))
            // Control, for the demo: a document as a 1C user enters it (a payment arriving).
            .route("/_sim/documents/{set}", axum::routing::post(add_document))
            .with_state(sim.clone());
        let addr = crate::serve(listen, app, "1C").await?;
        Ok(OneC { url: format!("http://{addr}/buh/odata/standard.odata"), ..sim })
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

    /// The next create commits its document and then answers `status` (a 1C that failed
    /// after the transaction).
    pub fn fail_next_create_after_commit(&self, status: u16) {
        self.data().create_faults.push(status);
    }

    /// The documents of an entity set.
    pub fn documents(&self, set: &str) -> Vec<Value> {
        self.data().sets.get(set).cloned().unwrap_or_default()
    }

    /// POSTs that created a document.
    pub fn creates(&self) -> usize {
        self.data().creates
    }

    /// Adds a document as a 1C user would (a payment arriving); returns its `Ref_Key`.
    pub fn add(&self, set: &str, fields: Value) -> String {
        let mut d = self.data();
        let doc = new_document(&mut d, fields);
        let reference = doc["Ref_Key"].as_str().unwrap_or_default().to_owned();
        d.sets.entry(set.to_owned()).or_default().push(doc);
        reference
    }

    /// Changes a document as a 1C user would (its `DataVersion` moves on).
    pub fn touch(&self, set: &str, reference: &str, fields: Value) {
        let mut d = self.data();
        d.counter += 1;
        let version = data_version(d.counter);
        if let Some(doc) = d.sets.get_mut(set).and_then(|docs| docs.iter_mut().find(|x| x["Ref_Key"] == reference)) {
            merge(doc, &fields);
            doc["DataVersion"] = json!(version);
        }
    }
}

fn data_version(n: u64) -> String {
    // 1C's versions are opaque base64 strings.
    format!("AAAAA{n:06}AAA=")
}

fn new_document(d: &mut Data, fields: Value) -> Value {
    d.counter += 1;
    let n = d.counter;
    let mut doc = json!({
        "Ref_Key": format!("{:08x}-1c00-11ee-8000-{:012x}", n, n),
        "DataVersion": data_version(n),
        "DeletionMark": false,
        "Number": format!("0000-{n:06}"),
        "Date": "2026-12-07T00:00:00",
        "Posted": false,
        "Комментарий": "",
    });
    merge(&mut doc, &fields);
    doc
}

fn merge(into: &mut Value, from: &Value) {
    if let (Some(into), Some(from)) = (into.as_object_mut(), from.as_object()) {
        for (k, v) in from {
            into.insert(k.clone(), v.clone());
        }
    }
}

/// Basic auth, then the next fault.
async fn guard(State(sim): State<OneC>, req: Request, next: Next) -> Response {
    use base64::Engine as _;
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let fault = {
        let mut d = sim.data();
        if presented.as_deref() != Some(&format!("{}:{}", d.user, d.password)) {
            return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"1C\"")], "").into_response();
        }
        if d.faults.is_empty() { None } else { Some(d.faults.remove(0)) }
    };
    faults::apply(fault, req, next).await
}

fn odata_error(status: StatusCode, message: &str) -> Response {
    let body = json!({ "odata.error": { "code": "-1", "message": { "lang": "ru", "value": message } } });
    (status, [(header::CONTENT_TYPE, "application/json;odata=minimalmetadata")], body.to_string()).into_response()
}

fn json_reply(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json;odata=minimalmetadata;charset=utf-8")], body.to_string())
        .into_response()
}

/// What a request path names: an entity set, maybe one document of it, maybe an action.
struct Target {
    set: String,
    reference: Option<String>,
    action: Option<String>,
}

fn target(path: &str) -> Option<Target> {
    let path = percent_decode(path);
    let rest = path.split("/odata/standard.odata/").nth(1)?;
    let (resource, action) = match rest.split_once('/') {
        Some((r, a)) => (r, Some(a.to_owned())),
        None => (rest, None),
    };
    match resource.split_once("(guid'") {
        Some((set, tail)) => {
            let reference = tail.strip_suffix("')")?.to_owned();
            Some(Target { set: set.to_owned(), reference: Some(reference), action })
        }
        None => Some(Target { set: resource.to_owned(), reference: None, action }),
    }
}

fn percent_decode(text: &str) -> String {
    reqwest::Url::parse(&format!("http://x/?v={}", text.replace('&', "%26").replace('+', "%2B")))
        .ok()
        .and_then(|u| u.query_pairs().next().map(|(_, v)| v.into_owned()))
        .unwrap_or_else(|| text.to_owned())
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = query else { return Vec::new() };
    reqwest::Url::parse(&format!("http://x/?{q}"))
        .map(|u| u.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
        .unwrap_or_default()
}

/// `Комментарий eq 'junction:42' and Posted eq true` (a reference field as `Ref_Key eq
/// guid'…'`): each clause an equality, or
/// `substringof('text', Field)` (1C's LIKE, which works on strings of unlimited length where
/// `eq` does not).
fn matches(doc: &Value, filter: &str) -> bool {
    filter.split(" and ").all(|clause| {
        if let Some(args) = clause.trim().strip_prefix("substringof(") {
            let args = args.trim_end_matches(" eq true").trim_end_matches(')');
            let Some((text, field)) = args.rsplit_once(',') else { return false };
            let text = text.trim().trim_matches('\'').replace("''", "'");
            return doc[field.trim()].as_str().is_some_and(|v| v.contains(&text));
        }
        let Some((field, value)) = clause.trim().split_once(" eq ") else { return false };
        let value = value.trim();
        let expected: Value = match value.strip_prefix("guid").unwrap_or(value) {
            v if v.starts_with('\'') && v.ends_with('\'') && v.len() >= 2 => {
                Value::from(v[1..v.len() - 1].replace("''", "'"))
            }
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            v => v.parse::<f64>().map(Value::from).unwrap_or(Value::Null),
        };
        let actual = &doc[field.trim()];
        actual == &expected || (actual.as_f64().is_some() && actual.as_f64() == expected.as_f64())
    })
}

async fn odata(State(sim): State<OneC>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let q = query_pairs(req.uri().query());
    let if_match = req.headers().get(header::IF_MATCH).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body: Bytes = axum::body::to_bytes(req.into_body(), 16 << 20).await.unwrap_or_default();
    let Some(t) = target(&path) else { return odata_error(StatusCode::NOT_FOUND, "Not an OData resource") };
    let get = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let mut d = sim.data();
    match (method, t.reference, t.action.as_deref()) {
        (Method::GET, None, None) => {
            let docs = d.sets.get(&t.set).cloned().unwrap_or_default();
            let mut docs: Vec<Value> =
                docs.into_iter().filter(|doc| get("$filter").is_none_or(|f| matches(doc, &f))).collect();
            if let Some(order) = get("$orderby") {
                let field = order.split_whitespace().next().unwrap_or_default().to_owned();
                docs.sort_by(|a, b| a[&field].to_string().cmp(&b[&field].to_string()));
            }
            let skip: usize = get("$skip").and_then(|v| v.parse().ok()).unwrap_or(0);
            let top: usize = get("$top").and_then(|v| v.parse().ok()).unwrap_or(usize::MAX);
            let mut page: Vec<Value> = docs.into_iter().skip(skip).take(top).collect();
            if let Some(select) = get("$select") {
                let fields: Vec<&str> = select.split(',').map(str::trim).collect();
                page = page
                    .into_iter()
                    .map(|doc| {
                        fields
                            .iter()
                            .map(|f| ((*f).to_owned(), doc[*f].clone()))
                            .collect::<serde_json::Map<_, _>>()
                            .into()
                    })
                    .collect();
            }
            json_reply(
                StatusCode::OK,
                json!({ "odata.metadata": format!("{}/$metadata#{}", sim.url, t.set), "value": page }),
            )
        }
        (Method::GET, Some(r), None) => {
            match d.sets.get(&t.set).and_then(|docs| docs.iter().find(|x| x["Ref_Key"] == r.as_str())) {
                Some(doc) => json_reply(StatusCode::OK, doc.clone()),
                None => odata_error(StatusCode::NOT_FOUND, "Объект не найден"),
            }
        }
        (Method::POST, None, None) => {
            let Ok(fields) = serde_json::from_slice::<Value>(&body) else {
                return odata_error(StatusCode::BAD_REQUEST, "Ошибка разбора тела запроса");
            };
            let doc = new_document(&mut d, fields);
            d.creates += 1;
            d.sets.entry(t.set.clone()).or_default().push(doc.clone());
            if !d.create_faults.is_empty() {
                let status = d.create_faults.remove(0);
                return faults::status_answer(status, None);
            }
            json_reply(StatusCode::CREATED, doc)
        }
        (Method::PATCH, Some(r), None) => {
            let Ok(fields) = serde_json::from_slice::<Value>(&body) else {
                return odata_error(StatusCode::BAD_REQUEST, "Ошибка разбора тела запроса");
            };
            d.counter += 1;
            let version = data_version(d.counter);
            let Some(doc) =
                d.sets.get_mut(&t.set).and_then(|docs| docs.iter_mut().find(|x| x["Ref_Key"] == r.as_str()))
            else {
                return odata_error(StatusCode::NOT_FOUND, "Объект не найден");
            };
            if if_match.as_deref().is_some_and(|v| doc["DataVersion"] != v) {
                return odata_error(StatusCode::PRECONDITION_FAILED, "Версия объекта изменилась");
            }
            merge(doc, &fields);
            doc["DataVersion"] = json!(version);
            json_reply(StatusCode::OK, doc.clone())
        }
        (Method::POST, Some(r), Some("Post")) => {
            let Some(doc) =
                d.sets.get_mut(&t.set).and_then(|docs| docs.iter_mut().find(|x| x["Ref_Key"] == r.as_str()))
            else {
                return odata_error(StatusCode::NOT_FOUND, "Объект не найден");
            };
            doc["Posted"] = json!(true);
            StatusCode::OK.into_response()
        }
        _ => odata_error(StatusCode::METHOD_NOT_ALLOWED, "Метод не поддерживается"),
    }
}

/// `POST /_sim/documents/<set>` with the document's fields: `{"Ref_Key": …}`.
async fn add_document(
    State(sim): State<OneC>,
    axum::extract::Path(set): axum::extract::Path<String>,
    body: Bytes,
) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(fields @ Value::Object(_)) => axum::Json(json!({ "Ref_Key": sim.add(&set, fields) })).into_response(),
        _ => (StatusCode::BAD_REQUEST, "a JSON object of the document's fields").into_response(),
    }
}
