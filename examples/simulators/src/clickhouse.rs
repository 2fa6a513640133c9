//! ClickHouse's HTTP interface (https://clickhouse.com/docs/interfaces/http), the part a loader
//! uses, with MergeTree's insert deduplication
//! (https://clickhouse.com/docs/operations/settings/settings#insert_deduplication_token):
//!
//! - `GET /ping` → `Ok.`; `POST /?query=<sql>` with the body appended to the query (an
//!   INSERT's rows); `X-ClickHouse-User` / `X-ClickHouse-Key` (or Basic) credentials, 403 and
//!   code 516 when wrong;
//! - `CREATE DATABASE`, `CREATE TABLE … ENGINE = [Replacing]MergeTree ORDER BY (…) SETTINGS
//!   non_replicated_deduplication_window = N`: a table remembers the last N inserts' tokens
//!   (`insert_deduplication_token`, or the data's hash without one) and skips an insert whose
//!   token it has seen; with no window (a plain non-replicated table) nothing is deduplicated;
//! - `INSERT INTO db.t FORMAT JSONEachRow`: an unknown field is code 117 (INCORRECT_DATA), a
//!   line that is not JSON code 27, a missing table code 60 (UNKNOWN_TABLE, 404);
//! - `SELECT count() FROM db.t [FINAL]` and `SELECT * FROM db.t [FINAL] FORMAT JSONEachRow`
//!   (FINAL: one row per ORDER BY key, the last);
//! - errors as ClickHouse answers them: `Code: N. DB::Exception: …` with
//!   `X-ClickHouse-Exception-Code`; success with `X-ClickHouse-Summary`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::faults::{self, Fault};

struct Table {
    columns: BTreeSet<String>,
    order_by: Vec<String>,
    window: usize,
    /// Tokens of the last `window` inserts.
    tokens: VecDeque<String>,
    rows: Vec<Map<String, Value>>,
}

#[derive(Default)]
struct Data {
    user: String,
    password: String,
    databases: BTreeSet<String>,
    tables: BTreeMap<String, Table>,
    faults: Vec<Fault>,
    /// Every statement run, in order.
    statements: Vec<String>,
    /// Inserts skipped as duplicates.
    deduplicated: usize,
}

/// A running ClickHouse simulator.
#[derive(Clone)]
pub struct ClickHouse {
    /// The HTTP interface: the connector's `url`.
    pub url: String,
    data: Arc<Mutex<Data>>,
}

impl ClickHouse {
    pub async fn start(listen: &str, user: &str, password: &str) -> std::io::Result<ClickHouse> {
        let data = Data {
            user: user.into(),
            password: password.into(),
            databases: ["default".to_owned()].into(),
            ..Data::default()
        };
        let sim = ClickHouse { url: String::new(), data: Arc::new(Mutex::new(data)) };
        let app = Router::new()
            .route("/ping", axum::routing::get(|| async { "Ok.\n" }))
            .fallback(query)
            .layer(middleware::from_fn_with_state(sim.clone(), guard))
            .with_state(sim.clone());
        let addr = crate::serve(listen, app, "ClickHouse").await?;
        Ok(ClickHouse { url: format!("http://{addr}"), ..sim })
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

    /// The rows stored in `db.table`, every part (no FINAL).
    pub fn rows(&self, table: &str) -> Vec<Value> {
        self.data().tables.get(table).map(|t| t.rows.iter().cloned().map(Value::Object).collect()).unwrap_or_default()
    }

    /// The rows of `db.table` from the `start`th on, in the order they were inserted: a reader
    /// that keeps its place reads each row once.
    pub fn rows_from(&self, table: &str, start: usize) -> Vec<Value> {
        let d = self.data();
        let Some(t) = d.tables.get(table) else { return Vec::new() };
        t.rows.iter().skip(start).cloned().map(Value::Object).collect()
    }

    /// The statements run, in order.
    pub fn statements(&self) -> Vec<String> {
        self.data().statements.clone()
    }

    /// Inserts skipped because their token was seen.
    pub fn deduplicated(&self) -> usize {
        self.data().deduplicated
    }
}

/// Credentials, then the next fault.
async fn guard(State(sim): State<ClickHouse>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/ping" {
        return next.run(req).await;
    }
    let (user, key) = credentials(req.headers());
    let fault = {
        let mut d = sim.data();
        if user != d.user || key != d.password {
            return error(
                516,
                &format!("{user}: Authentication failed: password is incorrect, or there is no user with such name"),
                "AUTHENTICATION_FAILED",
            );
        }
        if d.faults.is_empty() { None } else { Some(d.faults.remove(0)) }
    };
    faults::apply(fault, req, next).await
}

fn credentials(headers: &HeaderMap) -> (String, String) {
    use base64::Engine as _;
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(user) = get("x-clickhouse-user") {
        return (user, get("x-clickhouse-key").unwrap_or_default());
    }
    let basic = get("authorization")
        .and_then(|v| v.strip_prefix("Basic ").map(str::to_owned))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    match basic.as_deref().and_then(|b| b.split_once(':')) {
        Some((u, p)) => (u.to_owned(), p.to_owned()),
        None => ("default".to_owned(), String::new()),
    }
}

/// ClickHouse's error answer; the HTTP status by the code, as the server maps it.
fn error(code: u32, message: &str, name: &str) -> Response {
    let status = match code {
        516 => StatusCode::FORBIDDEN,
        60 | 81 | 115 => StatusCode::NOT_FOUND,
        27 | 62 | 117 => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = format!("Code: {code}. DB::Exception: {message}. ({name}) (version 24.8.4.13 (official build))\n");
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=UTF-8".to_owned()),
            (header::HeaderName::from_static("x-clickhouse-exception-code"), code.to_string()),
        ],
        body,
    )
        .into_response()
}

fn ok(body: String, written: usize) -> Response {
    let summary = format!(
        "{{\"read_rows\":\"0\",\"read_bytes\":\"0\",\"written_rows\":\"{written}\",\"written_bytes\":\"0\",\"total_rows_to_read\":\"0\",\"result_rows\":\"{written}\",\"result_bytes\":\"0\"}}"
    );
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/plain; charset=UTF-8".to_owned()),
            (header::HeaderName::from_static("x-clickhouse-summary"), summary),
        ],
        body,
    )
        .into_response()
}

async fn query(State(sim): State<ClickHouse>, req: Request) -> Response {
    let params: HashMap<String, String> =
        req.uri().query().map(|q| url_decode_pairs(q).into_iter().collect()).unwrap_or_default();
    let body = axum::body::to_bytes(req.into_body(), 64 << 20).await.unwrap_or_default();
    let body = String::from_utf8_lossy(&body);
    // The query parameter, then the body: an INSERT's data follows its statement.
    let sql = match params.get("query") {
        Some(q) => format!("{q}\n{body}"),
        None => body.into_owned(),
    };
    let mut d = sim.data();
    let statement = sql.lines().next().unwrap_or_default().trim().to_owned();
    d.statements.push(statement.clone());
    let words: Vec<String> = statement.split_whitespace().map(str::to_uppercase).collect();
    let word = |i: usize| words.get(i).map_or("", String::as_str);
    match (word(0), word(1)) {
        ("CREATE", "DATABASE") => {
            let name = statement.split_whitespace().last().unwrap_or_default().to_owned();
            d.databases.insert(name);
            ok(String::new(), 0)
        }
        ("CREATE", "TABLE") => create_table(&mut d, &sql),
        ("INSERT", "INTO") => {
            let table = statement.split_whitespace().nth(2).unwrap_or_default().to_owned();
            let data = sql.split_once('\n').map_or("", |(_, rest)| rest);
            insert(&mut d, &table, data, params.get("insert_deduplication_token").cloned())
        }
        ("SELECT", _) => select(&d, &statement),
        _ => error(62, &format!("Syntax error: failed at position 1 ({})", word(0)), "SYNTAX_ERROR"),
    }
}

fn url_decode_pairs(q: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{q}"))
        .map(|u| u.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
        .unwrap_or_default()
}

/// `CREATE TABLE [IF NOT EXISTS] db.t (c T, …) ENGINE = … ORDER BY (k, …) [SETTINGS …]`
fn create_table(d: &mut Data, sql: &str) -> Response {
    let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let Some(open) = flat.find('(') else {
        return error(62, "Syntax error: no columns", "SYNTAX_ERROR");
    };
    let name = flat[..open].split_whitespace().last().unwrap_or_default().to_owned();
    let Some(close) = flat.find(") ENGINE") else {
        return error(62, "Syntax error: no ENGINE", "SYNTAX_ERROR");
    };
    let database = name.split('.').next().unwrap_or_default();
    if !d.databases.contains(database) {
        return error(81, &format!("Database {database} does not exist"), "UNKNOWN_DATABASE");
    }
    if d.tables.contains_key(&name) {
        return ok(String::new(), 0);
    }
    let columns = flat[open + 1..close]
        .split(", ")
        .filter_map(|c| c.split_whitespace().next())
        .filter(|c| c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'))
        .map(str::to_owned)
        .collect();
    let after = &flat[close..];
    let order_by = after
        .split_once("ORDER BY (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(keys, _)| keys.split(',').map(|k| k.trim().to_owned()).collect())
        .unwrap_or_default();
    let window = after
        .split_once("non_replicated_deduplication_window = ")
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    d.tables.insert(name, Table { columns, order_by, window, tokens: VecDeque::new(), rows: Vec::new() });
    ok(String::new(), 0)
}

fn insert(d: &mut Data, name: &str, data: &str, token: Option<String>) -> Response {
    let Some(table) = d.tables.get_mut(name) else {
        return error(60, &format!("Table {name} does not exist"), "UNKNOWN_TABLE");
    };
    let mut rows = Vec::new();
    for (n, line) in data.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let Ok(Value::Object(row)) = serde_json::from_str::<Value>(line) else {
            return error(
                27,
                &format!(
                    "Cannot parse input: expected '{{' before: '{}': (at row {})",
                    line.chars().take(20).collect::<String>(),
                    n + 1
                ),
                "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            );
        };
        if let Some(unknown) = row.keys().find(|k| !table.columns.contains(*k)) {
            return error(
                117,
                &format!("Unknown field found while parsing JSONEachRow format: {unknown}: (at row {})", n + 1),
                "INCORRECT_DATA",
            );
        }
        rows.push(row);
    }
    if table.window > 0 {
        // Without a token, a block's hash is its token.
        let token = token.unwrap_or_else(|| format!("hash:{data}"));
        if table.tokens.contains(&token) {
            d.deduplicated += 1;
            return ok(String::new(), rows.len());
        }
        table.tokens.push_back(token);
        if table.tokens.len() > table.window {
            table.tokens.pop_front();
        }
    }
    let written = rows.len();
    table.rows.extend(rows);
    ok(String::new(), written)
}

/// `SELECT count() FROM t [FINAL]` or `SELECT * FROM t [FINAL] FORMAT JSONEachRow`.
fn select(d: &Data, statement: &str) -> Response {
    let words: Vec<&str> = statement.split_whitespace().collect();
    let Some(from) = words.iter().position(|w| w.eq_ignore_ascii_case("FROM")) else {
        return ok("1\n".to_owned(), 0);
    };
    let name = words.get(from + 1).copied().unwrap_or_default();
    let Some(table) = d.tables.get(name) else {
        return error(60, &format!("Table {name} does not exist"), "UNKNOWN_TABLE");
    };
    let final_ = words.get(from + 2).is_some_and(|w| w.eq_ignore_ascii_case("FINAL"));
    let rows: Vec<&Map<String, Value>> = if final_ {
        let mut by_key: BTreeMap<String, &Map<String, Value>> = BTreeMap::new();
        for row in &table.rows {
            let key: Vec<&Value> = table.order_by.iter().map(|k| row.get(k).unwrap_or(&Value::Null)).collect();
            by_key.insert(serde_json::to_string(&key).unwrap_or_default(), row);
        }
        by_key.into_values().collect()
    } else {
        table.rows.iter().collect()
    };
    if words.get(1).is_some_and(|w| w.eq_ignore_ascii_case("count()")) {
        return ok(format!("{}\n", rows.len()), 0);
    }
    let mut out = String::new();
    for row in rows {
        out.push_str(&Value::Object(row.clone()).to_string());
        out.push('\n');
    }
    ok(out, 0)
}
