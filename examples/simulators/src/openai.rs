//! An OpenAI-compatible chat completions API (https://platform.openai.com/docs/api-reference/chat),
//! as OpenAI, vLLM, Ollama and proxies serve it:
//!
//! - `POST /v1/chat/completions` with `{model, messages, response_format, max_tokens, …}` and a
//!   bearer key → `{id, object: "chat.completion", created, model, choices: [{index, message:
//!   {role, content, refusal}, finish_reason}], usage: {prompt_tokens, completion_tokens,
//!   total_tokens}}`;
//! - errors as `{"error": {message, type, param, code}}`: 401 `invalid_api_key`, 429
//!   `rate_limit_exceeded` (with or without `Retry-After`), 400 `context_length_exceeded`;
//! - the same answers in Yandex Foundation Models' shape at `POST
//!   /foundationModels/v1/completion` (`Authorization: Api-Key …` or `Bearer <IAM token>`; `{result: {alternatives:
//!   [{message: {role, text}, status}], usage: {inputTextTokens, completionTokens, totalTokens},
//!   modelVersion}}`, a refusal as `ALTERNATIVE_STATUS_CONTENT_FILTER`, errors as `{error:
//!   {grpcCode, httpCode, message, httpStatus}}`), so one simulator serves both providers;
//! - and in GigaChat's (https://developers.sber.ru/docs/ru/gigachat/api/reference/rest): `POST
//!   /api/v2/oauth` (`Authorization: Basic <authorization key>`, a UUID in `RqUID`, the form
//!   `scope=GIGACHAT_API_PERS`) → `{access_token, expires_at}` (unix milliseconds, 30 minutes),
//!   then `POST /api/v1/chat/completions` with that bearer token; a schema comes as the function
//!   the model must call, and the answer as that call's `arguments` (an object); a refusal is
//!   `finish_reason: blacklist`; errors as `{status, message}`. Tokens can be expired at will
//!   ([`OpenAi::expire_tokens`]) for the 401 a stale token gets;
//! - what it answers is scripted: each request takes the next [`Answer`] (the last repeats), so a
//!   test says "invalid JSON first, then a valid plan".

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// What the next request gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The assistant's message content (for structured output, the JSON text).
    Content(String),
    /// The model refused (`message.refusal`, no content).
    Refusal(String),
    /// Content cut off at the token limit (`finish_reason: length`; YandexGPT's
    /// `ALTERNATIVE_STATUS_TRUNCATED_FINAL`).
    Truncated(String),
    /// An error answer with this status and OpenAI's error `code`; `retry_after` in seconds.
    Error { status: u16, code: String, retry_after: Option<u64> },
    /// A plausible media plan for the budget the first user message names (its largest amount): `{lines:
    /// [{channel, budget}], total}` over search, video and social (45/35/20), money as decimal
    /// strings, the total equal to the budget. Lines also get `platform`, `format`,
    /// `flight_from` and `flight_to` (the first two dates of the prompt, the deal's period) when
    /// the request's schema has them. The same prompt gets the same plan. When the schema asks
    /// for `markdown` instead, a commercial proposal for the prompt. What the simulator answers
    /// until told otherwise.
    Plan,
    /// The same plan 10% over the budget: valid JSON that breaks a domain rule.
    PlanOverBudget,
}

impl Answer {
    pub fn json(value: &Value) -> Self {
        Answer::Content(value.to_string())
    }
}

/// An [`Answer`] as it is given to one request (a plan written out).
enum Said {
    Content(String),
    Refusal(String),
    Truncated(String),
    Error { status: u16, code: String, retry_after: Option<u64> },
}

#[derive(Default)]
struct Data {
    key: String,
    answers: Vec<Answer>,
    /// Each request's body, in order.
    requests: Vec<Value>,
    counter: u64,
    /// How long each answer takes.
    delay: std::time::Duration,
    /// Requests received, counted as they arrive (before a slow answer).
    arrived: usize,
    /// GigaChat's access tokens handed out, and whether each still holds.
    tokens: Vec<(String, bool)>,
    /// Each GigaChat token request's `RqUID` and scope.
    token_requests: Vec<(String, String)>,
    /// The scheme of each YandexGPT request's `Authorization` (`Api-Key` or `Bearer`).
    yandex_schemes: Vec<String>,
}

/// A running OpenAI-compatible simulator.
#[derive(Clone)]
pub struct OpenAi {
    /// The API root, `http://…/v1`: an openai target's `base_url`.
    pub url: String,
    /// The server, `http://…`: a yandexgpt target's `base_url`.
    pub root: String,
    data: Arc<Mutex<Data>>,
}

impl OpenAi {
    pub async fn start(listen: &str, key: &str) -> std::io::Result<OpenAi> {
        let data = Data { key: key.into(), answers: vec![Answer::Plan], ..Data::default() };
        let sim = OpenAi { url: String::new(), root: String::new(), data: Arc::new(Mutex::new(data)) };
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .route("/foundationModels/v1/completion", post(yandex_completion))
            .route("/api/v2/oauth", post(gigachat_token))
            .route("/api/v1/chat/completions", post(gigachat_completion))
            .with_state(sim.clone());
        let addr = crate::serve(listen, app, "OpenAI").await?;
        Ok(OpenAi { url: format!("http://{addr}/v1"), root: format!("http://{addr}"), ..sim })
    }

    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answers of the next requests, in order; the last repeats.
    pub fn answer(&self, answers: impl IntoIterator<Item = Answer>) {
        let answers: Vec<Answer> = answers.into_iter().collect();
        if !answers.is_empty() {
            self.data().answers = answers;
        }
    }

    /// Makes every answer from now on take `delay` (a slow model).
    pub fn delay(&self, delay: std::time::Duration) {
        self.data().delay = delay;
    }

    /// Makes every GigaChat token handed out so far stale: the next call with one is answered 401.
    pub fn expire_tokens(&self) {
        for (_, live) in &mut self.data().tokens {
            *live = false;
        }
    }

    /// The GigaChat token requests so far: each one's `RqUID` and scope.
    pub fn token_requests(&self) -> Vec<(String, String)> {
        self.data().token_requests.clone()
    }

    /// How each YandexGPT request authorized itself: `Api-Key` or `Bearer` (an IAM token).
    pub fn yandex_schemes(&self) -> Vec<String> {
        self.data().yandex_schemes.clone()
    }

    /// Requests received so far, including those still being answered slowly.
    pub fn arrived(&self) -> usize {
        self.data().arrived
    }

    /// The bodies of the requests so far.
    pub fn requests(&self) -> Vec<Value> {
        self.data().requests.clone()
    }
}

fn error(status: u16, code: &str, message: &str, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let kind = match status.as_u16() {
        401 => "invalid_request_error",
        429 => "requests",
        400 => "invalid_request_error",
        _ => "server_error",
    };
    let body = json!({ "error": { "message": message, "type": kind, "param": null, "code": code } });
    let mut resp = (status, axum::Json(body)).into_response();
    if let Some(secs) = retry_after
        && let Ok(v) = header::HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Records `request` and takes the next answer; the prompt's text (each message's `field`).
fn take(d: &mut Data, request: Value, field: &str) -> (Said, String) {
    let prompt = request["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m[field].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    // A plan is for the budget the first request named, not the amounts of a repair's errors.
    let asked = request["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "user"))
        .and_then(|m| m[field].as_str())
        .unwrap_or_default()
        .to_owned();
    let schema = schema_of(&request);
    d.requests.push(request);
    let answer = if d.answers.len() > 1 { d.answers.remove(0) } else { d.answers[0].clone() };
    let said = match answer {
        Answer::Content(text) => Said::Content(text),
        Answer::Refusal(text) => Said::Refusal(text),
        Answer::Truncated(text) => Said::Truncated(text),
        Answer::Error { status, code, retry_after } => Said::Error { status, code, retry_after },
        Answer::Plan if wants(&schema, "markdown") => Said::Content(proposal(&asked).to_string()),
        Answer::Plan => Said::Content(plan(&asked, 100, &schema).to_string()),
        Answer::PlanOverBudget => Said::Content(plan(&asked, 110, &schema).to_string()),
    };
    (said, prompt)
}

/// The schema a request asks the answer to follow, in any of the three APIs' places.
fn schema_of(request: &Value) -> Value {
    [
        &request["response_format"]["json_schema"]["schema"],
        &request["jsonSchema"]["schema"],
        &request["functions"][0]["parameters"],
    ]
    .into_iter()
    .find(|s| s.is_object())
    .cloned()
    .unwrap_or(Value::Null)
}

/// Whether the object `schema` describes has `property`.
fn wants(schema: &Value, property: &str) -> bool {
    !schema["properties"][property].is_null()
}

/// A commercial proposal in Markdown for the plan the prompt describes.
fn proposal(prompt: &str) -> Value {
    let title = prompt.lines().find(|l| !l.trim().is_empty()).unwrap_or("the campaign").trim();
    json!({
        "markdown": format!(
            "# Commercial proposal\n\n**{title}**\n\nWe propose the media plan below: every line is \
             bought at the platform's list price, and the flights follow the deal's period.\n\n\
             - Search advertising brings ready-to-buy demand.\n- Video builds reach.\n- Social \
             keeps the audience warm.\n\nThe plan's total stays within the agreed budget."
        )
    })
}
/// A media plan of `percent`% of the largest amount in `prompt`, in kopecks split 45/35/20,
/// with the line fields `schema` has.
fn plan(prompt: &str, percent: u64, schema: &Value) -> Value {
    let cents = budget_cents(prompt).unwrap_or(100_000_000) * percent / 100;
    let money = |c: u64| format!("{}.{:02}", c / 100, c % 100);
    let (search, video) = (cents * 45 / 100, cents * 35 / 100);
    let social = cents - search - video;
    let line_schema = &schema["properties"]["lines"]["items"];
    let dates = dates(prompt);
    let line = |channel: &str, platform: &str, format: &str, budget: u64| {
        let mut line = json!({ "channel": channel, "budget": money(budget) });
        for (field, value) in [("platform", platform), ("format", format)] {
            if wants(line_schema, field) {
                line[field] = json!(value);
            }
        }
        if let [from, to, ..] = dates.as_slice() {
            for (field, value) in [("flight_from", from), ("flight_to", to)] {
                if wants(line_schema, field) {
                    line[field] = json!(value);
                }
            }
        }
        line
    };
    json!({
        "lines": [
            line("search", "yandex_direct", "text", search),
            line("video", "vk_ads", "instream", video),
            line("social", "vk_ads", "feed", social),
        ],
        "total": money(cents),
    })
}

/// The ISO dates (`2027-03-01`) written in `text`, in order.
fn dates(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(9))
        .filter(|&i| i == 0 || !bytes[i - 1].is_ascii_digit())
        .filter_map(|i| text.get(i..i + 10))
        .filter(|s| {
            // chrono also takes a leading space and a one-digit day: the text must be the date as written.
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok_and(|d| d.format("%Y-%m-%d").to_string() == *s)
        })
        .map(str::to_owned)
        .collect()
}

/// The largest amount written in `text` (`1500000.00`, `1 500 000`, `2000000`), in kopecks.
fn budget_cents(text: &str) -> Option<u64> {
    let mut best: Option<u64> = None;
    let mut digits = String::new();
    let mut fraction: Option<String> = None;
    let mut flush = |digits: &mut String, fraction: &mut Option<String>| {
        if let Ok(whole) = digits.parse::<u64>() {
            let f = fraction.take().unwrap_or_default();
            let kopecks = format!("{:0<2}", &f[..f.len().min(2)]).parse::<u64>().unwrap_or(0);
            let cents = whole.saturating_mul(100).saturating_add(kopecks);
            best = Some(best.map_or(cents, |b| b.max(cents)));
        }
        digits.clear();
        *fraction = None;
    };
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let inside = fraction.is_none() && !digits.is_empty() && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if c.is_ascii_digit() {
            match &mut fraction {
                Some(f) => f.push(c),
                None => digits.push(c),
            }
        } else if inside && matches!(c, ' ' | '\u{a0}') {
            // A thousands space between digits (`1 500 000`).
        } else if inside && matches!(c, '.' | ',') {
            fraction = Some(String::new());
        } else {
            flush(&mut digits, &mut fraction);
        }
    }
    flush(&mut digits, &mut fraction);
    best
}

/// A rough token count, as the usage a provider reports: a token per four characters.
fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// Waits as long as the simulator was told each answer takes.
async fn slow(sim: &OpenAi) {
    let delay = {
        let mut d = sim.data();
        d.arrived += 1;
        d.delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

async fn completions(State(sim): State<OpenAi>, headers: HeaderMap, body: Bytes) -> Response {
    slow(&sim).await;
    let mut d = sim.data();
    let bearer =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(d.key.as_str()) {
        return error(401, "invalid_api_key", "Incorrect API key provided.", None);
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "invalid_json", "We could not parse the JSON body of your request.", None);
    };
    let (answer, prompt) = take(&mut d, request.clone(), "content");
    d.counter += 1;
    let id = format!("chatcmpl-sim{:06}", d.counter);
    let model = request["model"].as_str().unwrap_or("gpt-4o-mini").to_owned();
    let (message, finish) = match answer {
        Said::Error { status, code, retry_after } => {
            let message = match code.as_str() {
                "context_length_exceeded" => "This model's maximum context length is 128000 tokens.",
                "rate_limit_exceeded" => "Rate limit reached for requests.",
                _ => "The server had an error while processing your request.",
            };
            return error(status, &code, message, retry_after);
        }
        Said::Content(content) => (json!({ "role": "assistant", "content": content, "refusal": null }), "stop"),
        Said::Refusal(text) => (json!({ "role": "assistant", "content": null, "refusal": text }), "stop"),
        Said::Truncated(content) => (json!({ "role": "assistant", "content": content, "refusal": null }), "length"),
    };
    let completion = tokens(message["content"].as_str().or(message["refusal"].as_str()).unwrap_or(""));
    let prompt_tokens = tokens(&prompt);
    axum::Json(json!({
        "id": id,
        "object": "chat.completion",
        "created": chrono::Utc::now().timestamp(),
        "model": model,
        "choices": [{ "index": 0, "message": message, "logprobs": null, "finish_reason": finish }],
        "usage": { "prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion },
        "system_fingerprint": "fp_sim",
    }))
    .into_response()
}

async fn yandex_completion(State(sim): State<OpenAi>, headers: HeaderMap, body: Bytes) -> Response {
    let yandex_error = |status: u16, grpc: u32, message: &str| {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({ "error": { "grpcCode": grpc, "httpCode": status, "message": message, "httpStatus": code.canonical_reason().unwrap_or(""), "details": [] } });
        (code, axum::Json(body)).into_response()
    };
    slow(&sim).await;
    let mut d = sim.data();
    // An API key (`Api-Key …`) or an IAM token (`Bearer …`): the simulator takes its key as either.
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let (scheme, key) = authorization.split_once(' ').unwrap_or_default();
    d.yandex_schemes.push(scheme.to_owned());
    let key = matches!(scheme, "Api-Key" | "Bearer").then_some(key);
    if key != Some(d.key.as_str()) {
        return yandex_error(401, 16, "Unknown api key");
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return yandex_error(400, 3, "Invalid JSON");
    };
    let (answer, prompt) = take(&mut d, request.clone(), "text");
    let (text, status) = match answer {
        Said::Error { status, retry_after, .. } => {
            let mut resp = yandex_error(status, if status == 429 { 8 } else { 13 }, "simulated failure");
            if let Some(secs) = retry_after
                && let Ok(v) = header::HeaderValue::from_str(&secs.to_string())
            {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
        Said::Content(text) => (text, "ALTERNATIVE_STATUS_FINAL"),
        Said::Refusal(text) => (text, "ALTERNATIVE_STATUS_CONTENT_FILTER"),
        Said::Truncated(text) => (text, "ALTERNATIVE_STATUS_TRUNCATED_FINAL"),
    };
    let (input, output) = (tokens(&prompt), tokens(&text));
    axum::Json(json!({
        "result": {
            "alternatives": [{ "message": { "role": "assistant", "text": text }, "status": status }],
            // int64 in the API's JSON mapping: strings.
            "usage": { "inputTextTokens": input.to_string(), "completionTokens": output.to_string(), "totalTokens": (input + output).to_string() },
            "modelVersion": "23.10.2024",
        }
    }))
    .into_response()
}

/// GigaChat's token endpoint: the authorization key as Basic credentials, a UUID as `RqUID`.
async fn gigachat_token(State(sim): State<OpenAi>, headers: HeaderMap, body: Bytes) -> Response {
    let refuse = |status: u16, message: &str| {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        (code, axum::Json(json!({ "code": status, "message": message }))).into_response()
    };
    let mut d = sim.data();
    let basic = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic "));
    if basic != Some(d.key.as_str()) {
        return refuse(401, "Can't decode 'Authorization' header");
    }
    let rquid = headers.get("RqUID").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    if uuid::Uuid::parse_str(&rquid).is_err() {
        return refuse(400, "Invalid RqUID");
    }
    let form = String::from_utf8_lossy(&body).into_owned();
    let scope = form.split('&').find_map(|kv| kv.strip_prefix("scope=")).unwrap_or_default().to_owned();
    if !matches!(scope.as_str(), "GIGACHAT_API_PERS" | "GIGACHAT_API_B2B" | "GIGACHAT_API_CORP") {
        return refuse(400, "scope is not valid");
    }
    d.token_requests.push((rquid, scope));
    let token = format!("giga-{}", uuid::Uuid::new_v4());
    d.tokens.push((token.clone(), true));
    let expires_at = chrono::Utc::now().timestamp_millis() + 30 * 60 * 1000;
    axum::Json(json!({ "access_token": token, "expires_at": expires_at })).into_response()
}

/// GigaChat's chat completions: OpenAI's shape, the schema as a function to call.
async fn gigachat_completion(State(sim): State<OpenAi>, headers: HeaderMap, body: Bytes) -> Response {
    let error = |status: u16, message: &str| {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, axum::Json(json!({ "status": status, "message": message }))).into_response()
    };
    slow(&sim).await;
    let mut d = sim.data();
    let bearer =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !d.tokens.iter().any(|(t, live)| *live && Some(t.as_str()) == bearer) {
        return error(401, "Token has expired");
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(422, "Invalid JSON");
    };
    let (answer, prompt) = take(&mut d, request.clone(), "content");
    let function = request["function_call"]["name"].as_str().map(str::to_owned);
    let (message, finish) = match answer {
        Said::Error { status, retry_after, .. } => {
            let mut resp = error(status, "simulated failure");
            if let Some(secs) = retry_after
                && let Ok(v) = header::HeaderValue::from_str(&secs.to_string())
            {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
        Said::Refusal(text) => (json!({ "role": "assistant", "content": text }), "blacklist"),
        Said::Truncated(text) => (json!({ "role": "assistant", "content": text }), "length"),
        Said::Content(text) => match (&function, serde_json::from_str::<Value>(&text)) {
            (Some(name), Ok(arguments)) => (
                json!({ "role": "assistant", "content": "", "function_call": { "name": name, "arguments": arguments } }),
                "function_call",
            ),
            _ => (json!({ "role": "assistant", "content": text }), "stop"),
        },
    };
    let completion = tokens(&message.to_string());
    let prompt_tokens = tokens(&prompt);
    axum::Json(json!({
        "choices": [{ "message": message, "index": 0, "finish_reason": finish }],
        "created": chrono::Utc::now().timestamp(),
        "model": format!("{}:1.0.26.20", request["model"].as_str().unwrap_or("GigaChat")),
        "object": "chat.completion",
        "usage": { "prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion, "precached_prompt_tokens": 0 },
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_spends_the_prompts_budget() {
        assert_eq!(budget_cents("Весна 2027 within 1500000.00 RUB, 2027-03-01..2027-05-31"), Some(150_000_000));
        assert_eq!(budget_cents("бюджет 1 500 000,5 ₽"), Some(150_000_050));
        let p = plan("within 1000.01 RUB", 100, &Value::Null);
        assert_eq!(p["total"], "1000.01");
        let lines: u64 = p["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .map(|l| {
                let b = l["budget"].as_str().expect("money").replace('.', "");
                b.parse::<u64>().expect("kopecks")
            })
            .sum();
        assert_eq!(lines, 100_001, "the lines add up to the total");
        assert_eq!(plan("within 1000.00 RUB", 110, &Value::Null)["total"], "1100.00");
        assert_eq!(p["lines"][0].as_object().map(|l| l.len()), Some(2), "only the fields asked for");
    }

    #[test]
    fn a_plan_fills_the_fields_its_schema_asks_for() {
        let schema = json!({ "properties": { "lines": { "items": { "properties": {
            "channel": {}, "budget": {}, "platform": {}, "format": {}, "flight_from": {}, "flight_to": {},
        } } } } });
        let p = plan("Spring within 900.00 RUB from 2027-03-01 to 2027-05-31.", 100, &schema);
        assert_eq!(p["lines"][1]["platform"], "vk_ads");
        assert_eq!(
            (p["lines"][2]["flight_from"].as_str(), p["lines"][2]["flight_to"].as_str()),
            (Some("2027-03-01"), Some("2027-05-31"))
        );
        let asked = json!({ "response_format": { "json_schema": { "schema": { "properties": { "markdown": {} } } } } });
        assert!(wants(&schema_of(&asked), "markdown"));
        assert!(
            proposal("Spring campaign\nmore")["markdown"].as_str().is_some_and(|m| m.contains("**Spring campaign**"))
        );
    }
}
