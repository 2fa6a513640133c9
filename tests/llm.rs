//! The `llm` connector through the binary, against two OpenAI-compatible simulators as its
//! fallback chain: a prompt package rendered and held to `prompts.lock`, the schema sent to the
//! provider and every answer checked again here, invalid answers sent back with their errors,
//! refusals, 429s and answers still invalid after their repairs moving to the next target, other
//! 4xx failing at once, and a call no target answers validly dead-lettered with what it got.

mod common;

use common::{Junction, junction, post_json, project, sqlite_store};
use junction_simulators::openai::{Answer, OpenAi};
use serde_json::{Value, json};

const SCHEMA: &str = r#"{
  "type": "object",
  "additionalProperties": false,
  "required": ["lines", "total"],
  "properties": {
    "lines": { "type": "array", "minItems": 1, "items": {
      "type": "object", "additionalProperties": false, "required": ["channel", "budget"],
      "properties": { "channel": { "enum": ["search", "video", "social"] }, "budget": { "type": "string", "pattern": "^[0-9]+\\.[0-9]{2}$" } } } },
    "total": { "type": "string", "pattern": "^[0-9]+\\.[0-9]{2}$" }
  }
}"#;

/// The two OpenAI-compatible simulators of `project_for`'s chain, with its keys.
async fn simulators() -> (OpenAi, OpenAi) {
    let a = OpenAi::start("127.0.0.1:0", "sk-a-secret").await.expect("simulator a");
    let b = OpenAi::start("127.0.0.1:0", "sk-b-secret").await.expect("simulator b");
    (a, b)
}

fn project_for(a: &OpenAi, b: &OpenAi) -> tempfile::TempDir {
    project(&[
        (
            "junction.yaml",
            &format!(
                "routes: [routes/]\nadmin: {{ listen: 127.0.0.1:0, token: llm-test-token }}\nconnectors:\n  llm:\n    kind: llm\n    repairs: 2\n    targets:\n      - {{ provider: openai, base_url: \"{}\", api_key: \"${{KEY_A}}\", model: gpt-4o-mini }}\n      - {{ provider: openai, base_url: \"{}\", api_key: \"${{KEY_B}}\", model: qwen2.5-72b }}\n",
                a.url, b.url
            ),
        ),
        (
            "routes/plan.yaml",
            "route: plan\nfrom: { http: { method: POST, path: /plan, auth: none } }\nsteps:\n  - request: { connector: llm, op: complete, prompt: media-plan/1 }\n",
        ),
        ("prompts/media-plan/1/system.j2", "You are a media planner. Money is a decimal string with two decimals."),
        (
            "prompts/media-plan/1/user.j2",
            "Draft a media plan for {{ input.deal.name }} within {{ input.deal.budget }} RUB.",
        ),
        ("prompts/media-plan/1/schema.json", SCHEMA),
        ("prompts/media-plan/1/params.yaml", "temperature: 0\nmax_tokens: 800\n"),
    ])
}

const ENV: [(&str, &str); 2] = [("KEY_A", "sk-a-secret"), ("KEY_B", "sk-b-secret")];

/// Locks the packages the way a user would: `junction check` names the line to add.
fn lock(dir: &std::path::Path) {
    let path = dir.to_str().expect("utf-8");
    let (code, _, err) = junction(&["check", path], &ENV);
    assert_eq!(code, 1, "a package without a lock line is refused: {err}");
    let line =
        err.split('`').nth(1).filter(|l| l.starts_with("media-plan/1 sha256:")).unwrap_or_else(|| panic!("{err}"));
    std::fs::write(dir.join("prompts.lock"), format!("# name/version hash\n{line}\n")).expect("lock");
    let (code, out, err) = junction(&["check", path], &ENV);
    assert_eq!(code, 0, "{out}{err}");
}

fn deal() -> Value {
    json!({ "deal": { "name": "Весна 2027", "budget": "1500000.00" } })
}

fn plan(total: &str) -> Answer {
    Answer::json(&json!({ "lines": [{ "channel": "search", "budget": total }], "total": total }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_checked_repaired_and_fall_over_to_the_next_target() {
    let (a, b) = simulators().await;
    let dir = project_for(&a, &b);
    lock(dir.path());
    let (_tmp, store) = sqlite_store();
    let mut env = ENV.to_vec();
    env.push(("JUNCTION_STORE", &store));
    let j = Junction::start(dir.path(), &env);

    // Valid at once: the output, where it came from, the schema sent as OpenAI asks for it.
    a.answer([plan("1500000.00")]);
    let (status, out) = post_json(&j, "/plan", deal()).await;
    assert_eq!(status, 200, "{out}\n{}", j.logs());
    assert_eq!(out["output"]["total"], "1500000.00");
    assert_eq!(
        (out["model"].clone(), out["provider"].clone(), out["repairs"].clone()),
        (json!("gpt-4o-mini"), json!("openai"), json!(0))
    );
    assert_eq!(out["package"]["id"], "media-plan/1");
    assert!(out["package"]["hash"].as_str().is_some_and(|h| h.starts_with("sha256:")));
    let sent = a.requests().pop().expect("a request");
    assert_eq!(sent["response_format"]["type"], "json_schema");
    assert_eq!(sent["response_format"]["json_schema"]["schema"]["required"], json!(["lines", "total"]));
    assert_eq!(sent["response_format"]["json_schema"]["strict"], true, "a closed schema, every property required");
    assert_eq!(sent["max_completion_tokens"], 800);
    assert_eq!(sent["messages"][1]["content"], "Draft a media plan for Весна 2027 within 1500000.00 RUB.");

    // Invalid, then repaired: the errors went back to the model.
    a.answer([Answer::json(&json!({ "lines": [{ "channel": "radio", "budget": 5 }] })), plan("1400000.00")]);
    let (status, out) = post_json(&j, "/plan", deal()).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!((out["repairs"].clone(), out["output"]["total"].clone()), (json!(1), json!("1400000.00")));
    let repair = a.requests().pop().expect("the repair");
    let asked = repair["messages"].as_array().expect("messages");
    assert_eq!(asked[asked.len() - 2]["role"], "assistant");
    let told = asked[asked.len() - 1]["content"].as_str().expect("the errors");
    assert!(told.contains("total") && told.contains("radio"), "the exact errors: {told}");

    // Cut off at the token limit: not taken as an answer, asked again.
    a.answer([Answer::Truncated("{\"lines\": [{\"channel\": \"sea".into()), plan("1450000.00")]);
    let (status, out) = post_json(&j, "/plan", deal()).await;
    assert_eq!((status, out["repairs"].clone()), (200, json!(1)), "{out}");

    // Still invalid after two repairs: the next target.
    a.answer([Answer::Content("not json at all".into())]);
    b.answer([plan("1300000.00")]);
    let before = a.requests().len();
    let (status, out) = post_json(&j, "/plan", deal()).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["model"], "qwen2.5-72b");
    assert_eq!(a.requests().len() - before, 3, "the first answer and two repairs");

    // A refusal, and a 429 without Retry-After: the next target.
    a.answer([Answer::Refusal("I can't help with that.".into())]);
    let (status, out) = post_json(&j, "/plan", deal()).await;
    assert_eq!((status, out["model"].clone()), (200, json!("qwen2.5-72b")), "{out}");
    a.answer([Answer::Error { status: 429, code: "rate_limit_exceeded".into(), retry_after: None }]);
    let (status, out) = post_json(&j, "/plan", deal()).await;
    assert_eq!((status, out["model"].clone()), (200, json!("qwen2.5-72b")), "{out}");

    // A 400 the next target would refuse too: at once, the next not asked.
    a.answer([Answer::Error { status: 400, code: "invalid_value".into(), retry_after: None }]);
    let b_before = b.requests().len();
    let (status, out) = post_json(&j, "/plan", deal()).await;
    assert_eq!(status, 422, "{out}");
    assert_eq!(b.requests().len(), b_before);

    // Nobody valid: refused and dead-lettered with the raw answer and the errors.
    a.answer([Answer::Content("{\"lines\": []}".into())]);
    b.answer([Answer::Content("{\"total\": 7}".into())]);
    let (status, out) = post_json(&j, "/plan", deal()).await;
    assert_eq!(status, 422, "{out}");
    assert!(out["dead_letter_id"].is_string(), "{out}");
    let detail = out["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("last answer: {\"total\": 7}") && detail.contains("its errors:"), "{detail}");
    assert!(!j.logs().contains("sk-a-secret") && !j.logs().contains("sk-b-secret"), "keys are not logged");

    // Measured per target (#17 §9).
    let metrics =
        reqwest::Client::new().get(j.admin_url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    let has = |name: &str, labels: &[&str]| {
        metrics.lines().any(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|label| l.contains(label)))
    };
    assert!(
        has("junction_llm_requests_total", &["model=\"qwen2.5-72b\"", "outcome=\"ok\"", "provider=\"openai\""]),
        "{metrics}"
    );
    assert!(has("junction_llm_requests_total", &["model=\"gpt-4o-mini\"", "outcome=\"refusal\""]), "{metrics}");
    assert!(
        has("junction_llm_requests_total", &["model=\"gpt-4o-mini\"", "outcome=\"retryable\""]),
        "the 429: {metrics}"
    );
    assert!(has("junction_llm_fallbacks_total", &["from=\"gpt-4o-mini\""]), "{metrics}");
    assert!(has("junction_llm_repairs_total", &["model=\"gpt-4o-mini\""]), "{metrics}");
    assert!(has("junction_llm_tokens_total", &["model=\"gpt-4o-mini\"", "type=\"output\""]), "{metrics}");
    assert!(has("junction_llm_request_duration_seconds_bucket", &["model=\"gpt-4o-mini\""]), "{metrics}");
}

/// A domain check standing in for MasterDeal's: the plan's total within the deal's budget.
async fn check(axum::Json(body): axum::Json<Value>) -> axum::Json<Value> {
    let total: f64 = body["output"]["total"].as_str().and_then(|t| t.parse().ok()).unwrap_or(f64::MAX);
    let budget: f64 = body["input"]["deal"]["budget"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0.0);
    let errors: Vec<String> = if total > budget {
        vec![format!("/total: {} is over the deal budget {}", body["output"]["total"], body["input"]["deal"]["budget"])]
    } else {
        Vec::new()
    };
    axum::Json(json!({ "errors": errors }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routes_check_sends_an_answer_back_with_its_errors() {
    let (a, b) = simulators().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let checker = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::new().route("/check", axum::routing::post(check))).await
    });
    let dir = project_for(&a, &b);
    edit(dir.path(), "junction.yaml", |root| {
        format!("{root}  domain:\n    kind: http\n    base_url: \"http://{checker}\"\n")
    });
    std::fs::write(
        dir.path().join("routes/plan.yaml"),
        "route: plan\nfrom: { http: { method: POST, path: /plan, auth: none } }\nsteps:\n  - request: { connector: llm, op: complete, prompt: media-plan/1, validate: { connector: domain, method: POST, path: /check } }\n",
    )
    .expect("route");
    lock(dir.path());
    let (_tmp, store) = sqlite_store();
    let mut env = ENV.to_vec();
    env.push(("JUNCTION_STORE", &store));
    let j = Junction::start(dir.path(), &env);

    // Schema-valid but over the budget: sent back with the check's words, then accepted.
    a.answer([plan("1600000.00"), plan("1450000.00")]);
    let (status, out) = post_json(&j, "/plan", deal()).await;
    assert_eq!(status, 200, "{out}\n{}", j.logs());
    assert_eq!((out["repairs"].clone(), out["output"]["total"].clone()), (json!(1), json!("1450000.00")));
    let repair = a.requests().pop().expect("the repair");
    let told = repair["messages"].as_array().and_then(|m| m.last()).and_then(|m| m["content"].as_str()).unwrap_or("");
    assert!(told.contains("over the deal budget \"1500000.00\""), "{told}");

    // The simulator's own plans: one 10% over the deal's budget (the check refuses it), then its
    // plausible plan for the budget (accepted as it is).
    a.answer([Answer::PlanOverBudget, Answer::Plan]);
    let (status, out) = post_json(&j, "/plan", deal()).await;
    assert_eq!((status, out["repairs"].clone()), (200, json!(1)), "{out}");
    assert_eq!(out["output"]["total"], "1500000.00");
    assert_eq!(out["output"]["lines"][0], json!({ "channel": "search", "budget": "675000.00" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_answers_are_reused_for_the_same_request_only() {
    let (a, b) = simulators().await;
    let dir = project_for(&a, &b);
    edit(dir.path(), "junction.yaml", |root| root.replace("    repairs: 2\n", "    repairs: 2\n    cache_ttl: 1h\n"));
    lock(dir.path());
    let (_tmp, store) = sqlite_store();
    let mut env = ENV.to_vec();
    env.push(("JUNCTION_STORE", &store));
    let j = Junction::start(dir.path(), &env);

    // An answer still invalid after its repairs is never kept: asked again, the model is asked.
    a.answer([Answer::Content("{}".into())]);
    b.answer([Answer::Content("{}".into())]);
    assert_eq!(post_json(&j, "/plan", deal()).await.0, 422);
    a.answer([plan("1500000.00")]);
    let (status, first) = post_json(&j, "/plan", deal()).await;
    assert_eq!((status, first["cached"].clone()), (200, json!(false)), "{first}");
    let asked = a.requests().len();

    // The same request: the kept answer, the model not asked.
    let (status, again) = post_json(&j, "/plan", deal()).await;
    assert_eq!((status, again["cached"].clone()), (200, json!(true)), "{again}");
    assert_eq!(again["output"], first["output"]);
    assert_eq!(a.requests().len(), asked);

    // Another deal renders another prompt: asked.
    let (status, other) = post_json(&j, "/plan", json!({ "deal": { "name": "Лето", "budget": "1500000.00" } })).await;
    assert_eq!((status, other["cached"].clone()), (200, json!(false)), "{other}");
    assert_eq!(a.requests().len(), asked + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yandexgpt_target_speaks_foundation_models_and_falls_over_like_any() {
    let y = OpenAi::start("127.0.0.1:0", "yc-api-key").await.expect("simulator y");
    let b = OpenAi::start("127.0.0.1:0", "sk-b-secret").await.expect("simulator b");
    let dir = project_for(&y, &b);
    std::fs::write(
        dir.path().join("junction.yaml"),
        format!(
            "routes: [routes/]\nconnectors:\n  llm:\n    kind: llm\n    targets:\n      - {{ provider: yandexgpt, base_url: \"{}\", api_key: \"${{KEY_A}}\", folder: b1gfolder, model: yandexgpt-lite }}\n      - {{ provider: openai, base_url: \"{}\", api_key: \"${{KEY_B}}\", model: qwen2.5-72b }}\n",
            y.root, b.url
        ),
    )
    .expect("root");
    lock(dir.path());
    let (_tmp, store) = sqlite_store();
    let env = [("KEY_A", "yc-api-key"), ("KEY_B", "sk-b-secret"), ("JUNCTION_STORE", store.as_str())];
    let j = Junction::start(dir.path(), &env);

    y.answer([plan("1500000.00")]);
    let (status, out) = post_json(&j, "/plan", deal()).await;
    assert_eq!(status, 200, "{out}\n{}", j.logs());
    assert_eq!((out["provider"].clone(), out["model"].clone()), (json!("yandexgpt"), json!("yandexgpt-lite")));
    assert!(out["usage"]["total_tokens"].as_u64().is_some_and(|t| t > 0), "usage read from strings: {out}");
    let sent = y.requests().pop().expect("a request");
    assert_eq!(sent["modelUri"], "gpt://b1gfolder/yandexgpt-lite/latest");
    assert_eq!(sent["completionOptions"]["maxTokens"], "800");
    assert_eq!(sent["jsonSchema"]["schema"]["required"], json!(["lines", "total"]));
    assert_eq!(sent["messages"][1]["text"], "Draft a media plan for Весна 2027 within 1500000.00 RUB.");

    // Filtered, and over its limit: the next target answers.
    y.answer([Answer::Refusal("".into())]);
    b.answer([plan("1400000.00")]);
    let (status, out) = post_json(&j, "/plan", deal()).await;
    assert_eq!((status, out["model"].clone()), (200, json!("qwen2.5-72b")), "{out}");
    y.answer([Answer::Error { status: 429, code: "rate_limit_exceeded".into(), retry_after: None }]);
    let (status, out) = post_json(&j, "/plan", deal()).await;
    assert_eq!((status, out["model"].clone()), (200, json!("qwen2.5-72b")), "{out}");
    assert!(y.yandex_schemes().iter().all(|s| s == "Api-Key"), "{:?}", y.yandex_schemes());

    // An IAM token instead of the API key goes as a bearer.
    edit(dir.path(), "junction.yaml", |root| root.replace("api_key: \"${KEY_A}\"", "iam_token: \"${KEY_A}\""));
    drop(j);
    let j = Junction::start(dir.path(), &env);
    y.answer([plan("1500000.00")]);
    let (status, out) = post_json(&j, "/plan", deal()).await;
    assert_eq!((status, out["provider"].clone()), (200, json!("yandexgpt")), "{out}");
    assert_eq!(y.yandex_schemes().last().map(String::as_str), Some("Bearer"));
}

#[test]
fn a_locked_prompt_that_changed_is_refused_naming_the_lock() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (a, b) = rt.block_on(async {
        (OpenAi::start("127.0.0.1:0", "k").await.expect("a"), OpenAi::start("127.0.0.1:0", "k").await.expect("b"))
    });
    let dir = project_for(&a, &b);
    lock(dir.path());
    std::fs::write(dir.path().join("prompts/media-plan/1/user.j2"), "A quietly edited prompt {{ input.deal.name }}")
        .expect("edit");
    let (code, _, err) = junction(&["check", dir.path().to_str().expect("utf-8")], &ENV);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("routes/plan.yaml:4:")
            && err.contains("prompts.lock: the files of prompt package media-plan/1 changed"),
        "{err}"
    );
}

#[test]
fn the_readmes_llm_connector_is_valid() {
    let env = [("OPENAI_API_KEY", "sk-x"), ("YC_API_KEY", "yc-key"), ("YC_FOLDER", "b1gfolder")];
    common::assert_readme_example_checks("connectors:\n  llm:\n    kind: llm", &env);
    common::assert_readme_example_checks("connectors:\n    planner:\n      kind: llm", &env);
}

/// Rewrites the project's `file` with `change`.
fn edit(dir: &std::path::Path, file: &str, change: impl FnOnce(&str) -> String) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    std::fs::write(&path, change(&text)).unwrap_or_else(|e| panic!("{file}: {e}"));
}

/// `project_for` with `budgets` (and what goes with them) added to the connector's options.
fn budgeted(a: &OpenAi, b: &OpenAi, options: &str) -> tempfile::TempDir {
    let dir = project_for(a, b);
    edit(dir.path(), "junction.yaml", |root| root.replace("    repairs: 2\n", &format!("    repairs: 2\n{options}")));
    lock(dir.path());
    dir
}

/// POSTs the deal `name` to `/plan` at `base`; the status and the answer.
async fn post_plan(client: &reqwest::Client, base: String, name: &str) -> (u16, Value) {
    let body = json!({ "deal": { "name": name, "budget": "1500000.00" } });
    let resp = client.post(format!("{base}/plan")).json(&body).send().await.expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Budgets (#17 §6) on one Postgres ledger: three instances, fifty calls at once on each,
/// against a budget of twenty calls. Exactly twenty reach the provider, never one more; the
/// others are refused with 429 `budget-exhausted` before any provider (the fallback target
/// included) is asked; the ledger holds what the calls settled to, and no reservation is left.
/// A ledger that cannot be read refuses calls (fail closed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_holds_across_three_instances_under_concurrent_calls() {
    let (a, b) = simulators().await;
    let db = common::PgDatabase::create().await;
    let dir = budgeted(
        &a,
        &b,
        "    budgets:\n      - { name: calls, calls: 20 }\n      - { name: tokens, period: day, tokens: 100000000 }\n",
    );
    a.answer([plan("1500000.00")]);
    let mut env = ENV.to_vec();
    env.push(("JUNCTION_STORE", &db.url));
    let instances: Vec<Junction> = (0..3).map(|_| Junction::start(dir.path(), &env)).collect();

    let client = reqwest::Client::new();
    let mut calls = tokio::task::JoinSet::new();
    for j in &instances {
        for i in 0..50 {
            let (client, base) = (client.clone(), j.url(""));
            calls.spawn(async move {
                post_plan(&client, base.trim_end_matches('/').to_owned(), &format!("deal {i}")).await
            });
        }
    }
    let (mut done, mut refused, mut tokens) = (0, 0, 0);
    while let Some(call) = calls.join_next().await {
        let (status, out) = call.expect("a call");
        match status {
            200 => {
                done += 1;
                tokens += out["usage"]["total_tokens"].as_i64().expect("usage");
            }
            429 => {
                refused += 1;
                assert!(out["type"].as_str().is_some_and(|t| t.ends_with("budget-exhausted")), "{out}");
                assert!(out["detail"].as_str().is_some_and(|d| d.contains("budget `calls`")), "{out}");
            }
            _ => panic!("{status}: {out}\n{}", instances[0].logs()),
        }
    }
    assert_eq!((done, refused), (20, 130));
    assert_eq!(a.requests().len(), 20, "never one call over the budget");
    assert_eq!(b.requests().len(), 0, "a spent budget does not fall over to the next target");

    use sqlx::Connection;
    let mut ledger = sqlx::PgConnection::connect(&db.url).await.expect("the ledger");
    let spent: Vec<(String, i64)> = sqlx::query_as("SELECT bucket, used FROM junction_llm_spent ORDER BY bucket")
        .fetch_all(&mut ledger)
        .await
        .expect("spent");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(
        spent,
        vec![("llm|calls|*|all|calls".to_owned(), 20), (format!("llm|tokens|*|{today}|tokens"), tokens)],
        "the ledger equals the settled usage"
    );
    let (held,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM junction_llm_holds").fetch_one(&mut ledger).await.expect("holds");
    assert_eq!(held, 0, "every reservation settled");

    // The ledger out of reach: refused, and no provider asked.
    sqlx::query("ALTER TABLE junction_llm_spent RENAME TO junction_llm_spent_away")
        .execute(&mut ledger)
        .await
        .expect("rename");
    let (status, out) = post_plan(&client, instances[1].url("").trim_end_matches('/').to_owned(), "deal x").await;
    assert_eq!(status, 503, "{out}");
    assert!(out["detail"].as_str().is_some_and(|d| d.contains("ledger cannot be reached")), "{out}");
    assert_eq!(a.requests().len() + b.requests().len(), 20);
}

/// A reservation whose process was killed mid-call is given back once it expires; budgets
/// per route and per key keep their own counts; a day's bucket is the date in the time zone,
/// and a key is kept hashed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_calls_reservation_expires_and_keys_are_counted_apart() {
    let (a, b) = simulators().await;
    let dir = budgeted(
        &a,
        &b,
        "    timeout: 2s\n    budgets:\n      - { name: route, per: route, calls: 1 }\n      - { name: deal, per: body.deal.name, period: day, calls: 1 }\n",
    );
    let (_tmp, store) = sqlite_store();
    let mut env = ENV.to_vec();
    env.push(("JUNCTION_STORE", &store));
    let client = reqwest::Client::new();

    // Killed while the model is answering: its reservation stays behind.
    a.delay(std::time::Duration::from_secs(30));
    let j = Junction::start(dir.path(), &env);
    let base = j.url("").trim_end_matches('/').to_owned();
    let request = client.post(format!("{base}/plan")).json(&json!({ "deal": { "name": "Весна", "budget": "1.00" } }));
    let pending = tokio::spawn(async move { request.send().await.map(|r| r.status()) });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while a.arrived() == 0 {
        assert!(std::time::Instant::now() < deadline, "the call reached the model");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let killed_at = std::time::Instant::now();
    j.crash();
    assert!(pending.await.expect("the call").is_err(), "the process died before it answered");
    a.delay(std::time::Duration::ZERO);
    a.answer([plan("1500000.00")]);

    let j = Junction::start(dir.path(), &env);
    let base = j.url("").trim_end_matches('/').to_owned();
    let (status, out) = post_plan(&client, base.clone(), "Лето").await;
    assert_eq!(status, 429, "the dead call still holds the route's budget: {out}");
    assert!(out["detail"].as_str().is_some_and(|d| d.contains("budget `route`")), "{out}");
    // The hold lasts twice the call's timeout (2 s) and ten seconds more.
    tokio::time::sleep(std::time::Duration::from_secs(15).saturating_sub(killed_at.elapsed())).await;
    let (status, out) = post_plan(&client, base.clone(), "Лето").await;
    assert_eq!(status, 200, "given back once expired: {out}\n{}", j.logs());

    // A zone whose date is not UTC's now: Kiritimati (UTC+14) from 10:00 UTC, Pago Pago (UTC-11)
    // before; neither has daylight saving.
    use chrono::Timelike;
    let (zone, offset) =
        if chrono::Utc::now().hour() >= 11 { ("Pacific/Kiritimati", 14) } else { ("Pacific/Pago_Pago", -11) };
    let dir2 = budgeted(
        &a,
        &b,
        &format!(
            "    time_zone: {zone}\n    budgets:\n      - {{ name: deal, per: body.deal.name, period: day, calls: 1 }}\n"
        ),
    );
    drop(j);
    let j = Junction::start(dir2.path(), &env);
    let base = j.url("").trim_end_matches('/').to_owned();
    assert_eq!(post_plan(&client, base.clone(), "Осень").await.0, 200);
    let (status, out) = post_plan(&client, base.clone(), "Осень").await;
    assert_eq!(status, 429, "one call a day for this deal: {out}");
    assert!(out["detail"].as_str().is_some_and(|d| d.contains("budget `deal`") && d.contains("it renews at")), "{out}");
    let day = chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(offset * 3600).expect("an offset"));
    assert_ne!(day.date_naive(), chrono::Utc::now().date_naive(), "the zone's date is not UTC's");
    assert_eq!(post_plan(&client, base, "Зима").await.0, 200, "another deal has its own count");
    let ledger = sqlx::SqlitePool::connect(&store).await.expect("the ledger");
    let buckets: Vec<(String,)> =
        sqlx::query_as("SELECT bucket FROM junction_llm_spent WHERE bucket LIKE 'llm|deal|%' ORDER BY bucket")
            .fetch_all(&ledger)
            .await
            .expect("buckets");
    let date = day.format("%Y-%m-%d");
    // The key is kept hashed: no deal name (or e-mail) in the ledger.
    use sha2::Digest;
    let key = &hex::encode(sha2::Sha256::digest("Осень".as_bytes()))[..16];
    assert!(
        buckets.iter().any(|(b,)| *b == format!("llm|deal|key={key}|{date}|calls")),
        "the day is {zone}'s: {buckets:?}"
    );
    assert!(buckets.iter().all(|(b,)| !b.contains("Осень")), "{buckets:?}");
}

/// What the budgets need is checked where it is written.
#[test]
fn budget_options_are_checked_at_their_line_and_column() {
    let sims = tokio::runtime::Runtime::new().expect("runtime");
    let (a, b) = sims.block_on(simulators());
    let cases = [
        ("    budgets:\n      - { name: money, cost: 5.00 }\n", "no price for the model `gpt-4o-mini`"),
        ("    time_zone: Mars/Olympus\n", "not a time zone"),
        ("    budgets:\n      - { name: nothing }\n", "limits nothing"),
        ("    budgets:\n      - { name: t, tokens: 10, colour: red }\n", "colour"),
    ];
    for (options, expected) in cases {
        let dir = project_for(&a, &b);
        edit(dir.path(), "junction.yaml", |root| {
            root.replace("    repairs: 2\n", &format!("    repairs: 2\n{options}"))
        });
        let (code, out, err) = junction(&["check", dir.path().to_str().expect("utf-8")], &ENV);
        assert_eq!(code, 1, "{options}: {out}");
        assert!(err.contains(expected) && err.contains("junction.yaml:"), "{options}: {err}");
    }
    // A budget on tokens needs every package to bound its answer; on calls alone it need not.
    let dir = project_for(&a, &b);
    std::fs::write(dir.path().join("prompts/media-plan/1/params.yaml"), "temperature: 0\n").expect("params");
    lock(dir.path());
    let root = std::fs::read_to_string(dir.path().join("junction.yaml")).expect("root");
    for (budget, refused) in [("calls: 1000", false), ("tokens: 1000", true)] {
        let options = format!("    repairs: 2\n    budgets:\n      - {{ name: t, {budget} }}\n");
        std::fs::write(dir.path().join("junction.yaml"), root.replace("    repairs: 2\n", &options)).expect("root");
        let (code, out, err) = junction(&["check", dir.path().to_str().expect("utf-8")], &ENV);
        assert_eq!(code, i32::from(refused), "{budget}: {out}{err}");
        if refused {
            assert!(err.contains("max_tokens") && err.contains("plan.yaml:"), "{err}");
        }
    }
}

/// Personal data (#17 §7): the values the connector's pointers name and the phones and e-mails
/// in the prompt never reach the provider; the answer comes back with them in place; what an
/// answer sent back for repair, the dead letter and the log hold is masked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_is_masked_before_the_prompt_leaves_and_restored_in_the_answer() {
    let (a, b) = simulators().await;
    let dir = project_for(&a, &b);
    std::fs::write(
        dir.path().join("prompts/media-plan/1/user.j2"),
        "Draft a media plan for {{ input.deal.name }} (client INN {{ input.deal.inn }}, contact {{ input.deal.contact }}) within {{ input.deal.budget }} RUB. Notes: {{ input.deal.notes }}",
    )
    .expect("template");
    std::fs::create_dir_all(dir.path().join("prompts/brief/1")).expect("package folder");
    std::fs::write(
        dir.path().join("prompts/brief/1/user.j2"),
        "Write to {{ input.deal.contact }} about {{ input.deal.name }}. Notes: {{ input.deal.notes }}",
    )
    .expect("brief");
    edit(dir.path(), "junction.yaml", |root| {
        root.replace(
            "    repairs: 2\n",
            "    repairs: 1\n    private: { pointers: [/deal/inn, /deal/contact], patterns: [phone, email] }\n",
        )
    });
    std::fs::write(
        dir.path().join("routes/brief.yaml"),
        "route: brief\nfrom: { http: { method: POST, path: /brief, auth: none } }\nsteps:\n  - request: { connector: llm, op: complete, prompt: brief/1 }\n",
    )
    .expect("route");
    lock_all(dir.path());
    let (_tmp, store) = sqlite_store();
    let mut env = ENV.to_vec();
    env.push(("JUNCTION_STORE", &store));
    let j = Junction::start(dir.path(), &env);
    let secrets = ["7707083893", "Анна Петрова", "+7 916 123-45-67", "anna@client.ru"];
    let deal = json!({ "deal": { "name": "Весна 2027", "budget": "1500000.00", "inn": "7707083893",
        "contact": "Анна Петрова", "notes": "звонить +7 916 123-45-67, копию на anna@client.ru" } });

    // The pointers' values are [PII_1] and [PII_2], in the order they are written; the patterns'
    // matches follow in the order of the text.
    // A text answer naming the placeholders: restored for the route.
    a.answer([Answer::Content("Письмо для [PII_2]: копия на [PII_4], тел. [PII_3].".into())]);
    let (status, out) = post_json(&j, "/brief", deal.clone()).await;
    assert_eq!(status, 200, "{out}\n{}", j.logs());
    assert_eq!(out["output"], "Письмо для Анна Петрова: копия на anna@client.ru, тел. +7 916 123-45-67.");
    let sent = a.requests().pop().expect("a request").to_string();
    assert!(sent.contains("Write to [PII_2] about Весна 2027. Notes: звонить [PII_3], копию на [PII_4]"), "{sent}");

    // A JSON answer: restored before it is checked; the errors that go back for repair are
    // masked again; the dead letter holds the masked prompt.
    a.answer([Answer::json(&json!({ "lines": [{ "channel": "[PII_4]", "budget": "1.00" }], "total": "1.00" }))]);
    b.answer([Answer::json(&json!({ "lines": [{ "channel": "[PII_3]", "budget": "1.00" }], "total": "1.00" }))]);
    let (status, out) = post_json(&j, "/plan", deal).await;
    assert_eq!(status, 422, "{out}");
    let repair = a.requests().pop().expect("the repair");
    let told = repair["messages"].as_array().and_then(|m| m.last()).and_then(|m| m["content"].as_str()).unwrap_or("");
    assert!(told.contains("[PII_4]") && told.contains("channel"), "the schema's error, masked again: {told}");
    let detail = out["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("client INN [PII_1], contact [PII_2]"), "{detail}");
    let mut everything = a.requests().iter().chain(b.requests().iter()).map(Value::to_string).collect::<Vec<_>>();
    everything.push(detail.to_owned());
    everything.push(j.logs());
    for text in &everything {
        for secret in secrets {
            assert!(!text.contains(secret), "`{secret}` left: {text}");
        }
    }
}

/// Locks every package of the project, the way `lock` does one: the lines `junction check`
/// names, until it names none.
fn lock_all(dir: &std::path::Path) {
    let path = dir.to_str().expect("utf-8");
    let mut lock = String::new();
    for _ in 0..5 {
        let (code, out, err) = junction(&["check", path], &ENV);
        if code == 0 {
            return;
        }
        let lines: Vec<&str> = err
            .split('`')
            .filter(|l| l.split(' ').count() == 2 && l.split(' ').nth(1).is_some_and(|h| h.starts_with("sha256:")))
            .collect();
        assert!(!lines.is_empty(), "{out}{err}");
        for line in lines {
            lock.push_str(line);
            lock.push('\n');
        }
        std::fs::write(dir.join("prompts.lock"), &lock).expect("lock");
    }
    panic!("the packages could not be locked");
}

/// Sessions (#17 §7): a manager refines a plan in turns. Each turn is sent after the turns kept
/// so far, whichever instance takes it (the history is in Redis); only accepted answers are
/// kept; the oldest turn goes once `turns` are kept; another session starts empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_keeps_its_accepted_turns_across_instances() {
    let (a, b) = simulators().await;
    let dir = project_for(&a, &b);
    std::fs::create_dir_all(dir.path().join("prompts/refine/1")).expect("package folder");
    std::fs::write(
        dir.path().join("prompts/refine/1/user.j2"),
        "{{ input.ask }}{% if input.client is defined %} (client {{ input.client }}){% endif %}",
    )
    .expect("refine");
    edit(dir.path(), "junction.yaml", |root| {
        root.replace("    repairs: 2\n", "    repairs: 2\n    private: { pointers: [/client] }\n")
    });
    std::fs::write(
        dir.path().join("prompts/refine/1/schema.json"),
        r#"{"type": "object", "required": ["plan"], "properties": {"plan": {"type": "string"}}}"#,
    )
    .expect("schema");
    std::fs::write(
        dir.path().join("routes/refine.yaml"),
        "route: refine\nfrom: { http: { method: POST, path: /refine, auth: none } }\nsteps:\n  - request: { connector: llm, op: complete, prompt: refine/1, session: { id: body.session, turns: 2, ttl: 10m } }\n",
    )
    .expect("route");
    lock_all(dir.path());
    let redis = common::redis_url();
    let ((_ta, store_a), (_tb, store_b)) = (sqlite_store(), sqlite_store());
    let mut env_a = ENV.to_vec();
    env_a.extend([("JUNCTION_STORE", store_a.as_str()), ("JUNCTION_CACHE", redis.as_str())]);
    let mut env_b = ENV.to_vec();
    env_b.extend([("JUNCTION_STORE", store_b.as_str()), ("JUNCTION_CACHE", redis.as_str())]);
    let (one, two) = (Junction::start(dir.path(), &env_a), Junction::start(dir.path(), &env_b));
    let session = format!("s-{}", common::tag());
    let turn = |j: &Junction, ask: &str, session: &str| {
        let (url, body) = (j.url("/refine"), json!({ "session": session, "ask": ask }));
        async move {
            let resp = reqwest::Client::new().post(url).json(&body).send().await.expect("send");
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let asked = |a: &OpenAi| -> Vec<String> {
        let last = a.requests().pop().expect("a request");
        last["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["content"].as_str().unwrap_or("").to_owned())
            .collect()
    };

    a.answer([Answer::json(&json!({ "plan": "video 60%, search 40%" }))]);
    let (status, out) = turn(&one, "draft a plan", &session).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(asked(&a), ["draft a plan"]);
    let strict = &a.requests()[0]["response_format"]["json_schema"]["strict"];
    assert!(strict.is_null(), "an open schema goes without strict mode: {strict}");

    // The second turn on the other instance: the first turn goes before it. Its first answer
    // is refused by the schema and repaired; only the accepted one is kept.
    a.answer([Answer::json(&json!({ "nope": 1 })), Answer::json(&json!({ "plan": "video 40%, search 60%" }))]);
    let (status, out) = turn(&two, "move 20% from video to search", &session).await;
    assert_eq!((status, out["repairs"].clone()), (200, json!(1)), "{out}");
    let sent = asked(&a);
    assert_eq!(sent[..3], ["draft a plan", "{\"plan\":\"video 60%, search 40%\"}", "move 20% from video to search"]);

    a.answer([Answer::json(&json!({ "plan": "video 30%, search 70%" }))]);
    let (status, _) = turn(&one, "a bit more to search", &session).await;
    assert_eq!(status, 200);
    assert_eq!(
        asked(&a),
        [
            "draft a plan",
            "{\"plan\":\"video 60%, search 40%\"}",
            "move 20% from video to search",
            "{\"plan\":\"video 40%, search 60%\"}",
            "a bit more to search"
        ]
    );
    let (status, _) = turn(&two, "and now?", &session).await;
    assert_eq!(status, 200);
    assert_eq!(asked(&a)[0], "move 20% from video to search", "two turns kept: the first is gone");

    let (status, _) = turn(&one, "another deal", &format!("{session}-other")).await;
    assert_eq!(status, 200);
    assert_eq!(asked(&a), ["another deal"], "another session starts empty");

    // A value masked in one turn stays masked in the turns after it, which do not name it.
    let private = format!("{session}-private");
    let body = json!({ "session": private, "ask": "draft a plan", "client": "Анна Петрова" });
    let resp = reqwest::Client::new().post(one.url("/refine")).json(&body).send().await.expect("send");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(asked(&a), ["draft a plan (client [PII_1])"]);
    let (status, _) = turn(&two, "shorter", &private).await;
    assert_eq!(status, 200);
    assert_eq!(asked(&a)[0], "draft a plan (client [PII_1])", "the history goes out masked");
    assert!(a.requests().iter().all(|r| !r.to_string().contains("Анна")), "the name never left");
}

/// The gigachat provider (#17 §1): a 30-minute token fetched with the authorization key, a
/// `RqUID` and the scope, kept and reused; the package's schema as the function the model must
/// call, the call's arguments as the answer; a token that went stale answered 401, fetched anew
/// and the call sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gigachat_answers_through_its_token_and_a_function_call() {
    // The authorization key: base64 of `client_id:client_secret`.
    const KEY: &str = "Z2lnYS1pZDpnaWdhLXNlY3JldA==";
    let giga = OpenAi::start("127.0.0.1:0", KEY).await.expect("simulator");
    let other = OpenAi::start("127.0.0.1:0", "sk-b-secret").await.expect("simulator b");
    let dir = project_for(&giga, &other);
    std::fs::write(
        dir.path().join("junction.yaml"),
        format!(
            "routes: [routes/]\nconnectors:\n  llm:\n    kind: llm\n    targets:\n      - {{ provider: gigachat, base_url: \"{root}/api/v1\", auth_url: \"{root}/api/v2/oauth\", api_key: \"${{GIGA_KEY}}\", model: GigaChat-2-Pro }}\n",
            root = giga.root
        ),
    )
    .expect("root");
    let mut env = ENV.to_vec();
    env.push(("GIGA_KEY", KEY));
    let path = dir.path().to_str().expect("utf-8").to_owned();
    let (code, _, err) = junction(&["check", &path], &env);
    assert_eq!(code, 1, "{err}");
    let line =
        err.split('`').nth(1).filter(|l| l.starts_with("media-plan/1 sha256:")).unwrap_or_else(|| panic!("{err}"));
    std::fs::write(dir.path().join("prompts.lock"), format!("{line}\n")).expect("lock");
    let (_tmp, store) = sqlite_store();
    env.push(("JUNCTION_STORE", &store));
    let j = Junction::start(dir.path(), &env);

    giga.answer([plan("1500000.00")]);
    let (status, out) = post_json(&j, "/plan", deal()).await;
    assert_eq!(status, 200, "{out}\n{}", j.logs());
    assert_eq!((out["provider"].clone(), out["output"]["total"].clone()), (json!("gigachat"), json!("1500000.00")));
    let sent = giga.requests().pop().expect("a request");
    assert_eq!(sent["function_call"], json!({ "name": "answer" }));
    assert_eq!(sent["functions"][0]["parameters"]["required"], json!(["lines", "total"]));
    assert_eq!((sent["max_tokens"].clone(), sent["model"].clone()), (json!(800), json!("GigaChat-2-Pro")));
    let tokens = giga.token_requests();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].1, "GIGACHAT_API_PERS");
    assert!(uuid::Uuid::parse_str(&tokens[0].0).is_ok(), "RqUID is a UUID: {}", tokens[0].0);

    // The token is reused; once stale, a 401 fetches a new one and the call goes again.
    let (status, _) = post_json(&j, "/plan", deal()).await;
    assert_eq!((status, giga.token_requests().len()), (200, 1));
    giga.expire_tokens();
    let (status, out) = post_json(&j, "/plan", deal()).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(giga.token_requests().len(), 2, "a new token after the 401");
    assert_ne!(giga.token_requests()[0].0, giga.token_requests()[1].0, "a new RqUID each time");

    // The content filter (`blacklist`) is a refusal; a cut-off answer is repaired.
    giga.answer([Answer::Truncated("{\"lines\": [".into()), plan("1400000.00")]);
    let (status, out) = post_json(&j, "/plan", deal()).await;
    assert_eq!((status, out["repairs"].clone()), (200, json!(1)), "{out}");
    giga.answer([Answer::Refusal("Не могу ответить".into())]);
    let (status, out) = post_json(&j, "/plan", deal()).await;
    assert_eq!(status, 422, "{out}");
    assert!(out["detail"].as_str().is_some_and(|d| d.contains("refused")), "{out}");
    assert!(!j.logs().contains(KEY), "the key is not logged");
}

/// Fallback classes of one's own and a breaker per target (#17 §4): with `fall_over:
/// [unavailable]` a refusal ends the call at once (the next target not asked) while a 5xx moves
/// on; the first target's breaker, opened by that 5xx, sends the next calls straight to the
/// second until it is due for a probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_classes_and_a_breaker_per_target_are_the_connectors_to_choose() {
    let (a, b) = simulators().await;
    let dir = project_for(&a, &b);
    edit(dir.path(), "junction.yaml", |root| {
        root.replace("    repairs: 2\n", "    repairs: 2\n    fall_over: [unavailable]\n")
            .replace("model: gpt-4o-mini }", "model: gpt-4o-mini, breaker: { failures: 1, open_for: 60s } }")
    });
    lock(dir.path());
    let (_tmp, store) = sqlite_store();
    let mut env = ENV.to_vec();
    env.push(("JUNCTION_STORE", &store));
    let j = Junction::start(dir.path(), &env);

    a.answer([Answer::Refusal("I can't help with that.".into())]);
    let (status, out) = post_json(&j, "/plan", deal()).await;
    assert_eq!(status, 422, "a refusal is not a class this connector falls over on: {out}");
    assert_eq!(b.requests().len(), 0);

    a.answer([Answer::Error { status: 500, code: "server_error".into(), retry_after: None }]);
    let (status, out) = post_json(&j, "/plan", deal()).await;
    assert_eq!((status, out["model"].clone()), (200, json!("qwen2.5-72b")), "{out}");
    let asked = a.requests().len();
    a.answer([plan("1500000.00")]);
    for _ in 0..3 {
        let (status, out) = post_json(&j, "/plan", deal()).await;
        assert_eq!((status, out["model"].clone()), (200, json!("qwen2.5-72b")), "{out}");
    }
    assert_eq!(a.requests().len(), asked, "the open breaker keeps calls off the first target");
}

/// Recorded replay (#17 §5): `junction test` runs the real `llm` connector — package, schema,
/// repairs — over recordings. Without them a case fails naming the key and the package;
/// `--record` makes them from the simulator (the repair too); then the tests pass from the
/// recordings alone, the provider never asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junction_test_replays_recorded_answers() {
    let (a, b) = simulators().await;
    let dir = project_for(&a, &b);
    lock(dir.path());
    std::fs::write(
        dir.path().join("routes/plan.yaml"),
        "route: plan\nfrom: { http: { method: POST, path: /plan, auth: none } }\nsteps:\n  - request: { connector: llm, op: complete, prompt: media-plan/1 }\n  - transform: '#{ total: body.output.total, repairs: body.repairs, model: body.model }'\n",
    )
    .expect("route");
    std::fs::create_dir_all(dir.path().join("route-tests")).expect("route-tests");
    std::fs::write(
        dir.path().join("route-tests/plan.yaml"),
        "route: plan\ncases:\n  - name: a plan within the deal's budget, repaired once\n    input: { body: { deal: { name: \"Весна 2027\", budget: \"1500000.00\" } }, headers: {} }\n    expect:\n      output: [ { total: \"1400000.00\", repairs: 1, model: gpt-4o-mini } ]\n",
    )
    .expect("route test");
    let path = dir.path().to_str().expect("utf-8").to_owned();

    let (code, out, err) = junction(&["test", &path], &ENV);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("no recording") && out.contains("media-plan/1") && out.contains("--record"), "{out}");
    assert!(a.requests().is_empty(), "replay asks no provider");

    a.answer([Answer::json(&json!({ "lines": [] })), plan("1400000.00")]);
    let (code, out, err) = junction(&["test", "--record", &path], &ENV);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(a.requests().len(), 2, "the answer and its repair, recorded");
    let kept = std::fs::read_dir(dir.path().join("route-tests/recordings")).expect("recordings").count();
    assert_eq!(kept, 2);

    a.answer([Answer::Refusal("not any more".into())]);
    let (code, out, err) = junction(&["test", &path], &ENV);
    assert_eq!(code, 0, "from the recordings alone: {out}{err}");
    assert_eq!(a.requests().len(), 2, "no provider asked");

    // Budgets hold in route tests too, on the file's own store: two calls (the answer and its
    // repair) spend a budget of two, and the file's next case (another deal: the same one would
    // be answered from the cache) is refused before any call, recorded or not.
    edit(dir.path(), "junction.yaml", |root| {
        root.replace("    repairs: 2\n", "    repairs: 2\n    budgets:\n      - { name: calls, calls: 2 }\n")
    });
    let case = "  - name: a plan within the deal's budget, repaired once\n    input: { body: { deal: { name: \"Весна 2027\", budget: \"1500000.00\" } }, headers: {} }\n";
    std::fs::write(
        dir.path().join("route-tests/plan.yaml"),
        format!("route: plan\ncases:\n{case}    expect:\n      output: [ {{ total: \"1400000.00\", repairs: 1, model: gpt-4o-mini }} ]\n{}    expect:\n      error: {{ step: \"1:request\", contains: \"budget `calls`\" }}\n", case.replace("repaired once", "once the budget is spent").replace("Весна", "Осень")),
    )
    .expect("route test");
    let (code, out, err) = junction(&["test", &path], &ENV);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 passed, 0 failed"), "{out}");
    assert_eq!(a.requests().len(), 2, "no provider asked");
}

/// The exact cache across instances (#17 §5, §11): with `cache: redis://…`, an answer one
/// instance got is the other's for the same request; the provider is asked once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_answer_serves_every_instance() {
    let (a, b) = simulators().await;
    let dir = project_for(&a, &b);
    // A connector of its own name: the cache keys (`junction:llm:<connector>:…`) are this test's.
    let connector = format!("llm{}", common::tag().replace('-', ""));
    edit(dir.path(), "junction.yaml", |root| {
        root.replace("  llm:\n", &format!("  {connector}:\n"))
            .replace("    repairs: 2\n", "    repairs: 2\n    cache_ttl: 10m\n")
    });
    edit(dir.path(), "routes/plan.yaml", |route| route.replace("connector: llm,", &format!("connector: {connector},")));
    lock(dir.path());
    let redis = common::redis_url();
    let ((_ta, store_a), (_tb, store_b)) = (sqlite_store(), sqlite_store());
    let mut env_a = ENV.to_vec();
    env_a.extend([("JUNCTION_STORE", store_a.as_str()), ("JUNCTION_CACHE", redis.as_str())]);
    let mut env_b = ENV.to_vec();
    env_b.extend([("JUNCTION_STORE", store_b.as_str()), ("JUNCTION_CACHE", redis.as_str())]);
    let (one, two) = (Junction::start(dir.path(), &env_a), Junction::start(dir.path(), &env_b));

    a.answer([plan("1500000.00")]);
    let (status, first) = post_json(&one, "/plan", deal()).await;
    assert_eq!((status, first["cached"].clone()), (200, json!(false)), "{first}");
    let (status, second) = post_json(&two, "/plan", deal()).await;
    assert_eq!((status, second["cached"].clone()), (200, json!(true)), "{second}\n{}", two.logs());
    assert_eq!(second["output"], first["output"]);
    assert_eq!(a.requests().len(), 1, "the provider was asked once");
}

/// The step's CLIENT span carries the OpenTelemetry GenAI attributes (#17 §9).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calls_span_names_the_provider_model_and_tokens_as_genai_does() {
    let (a, b) = simulators().await;
    let collector = common::Stub::start(vec![(200, "")]);
    let dir = project_for(&a, &b);
    edit(dir.path(), "junction.yaml", |root| {
        root.replace(
            "routes: [routes/]\n",
            &format!("routes: [routes/]\ntracing: {{ otlp: \"{}\", service_name: llm-test }}\n", collector.url),
        )
    });
    lock(dir.path());
    let (_tmp, store) = sqlite_store();
    let mut env = ENV.to_vec();
    env.push(("JUNCTION_STORE", &store));
    let j = Junction::start(dir.path(), &env);
    a.answer([plan("1500000.00")]);
    let (status, out) = post_json(&j, "/plan", deal()).await;
    assert_eq!(status, 200, "{out}");

    let attribute = |span: &Value, key: &str| {
        span["attributes"]
            .as_array()
            .and_then(|attrs| attrs.iter().find(|a| a["key"] == key))
            .map_or(Value::Null, |a| a["value"].clone())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let span = loop {
        let bodies = collector.requests.lock().expect("lock").clone();
        let found = bodies
            .iter()
            .filter_map(|body| serde_json::from_str::<Value>(body).ok())
            .flat_map(|r| {
                let mut spans = Vec::new();
                for resource in r["resourceSpans"].as_array().into_iter().flatten() {
                    for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                        spans.extend(scope["spans"].as_array().into_iter().flatten().cloned());
                    }
                }
                spans
            })
            .find(|s| !attribute(s, "gen_ai.request.model").is_null());
        if let Some(span) = found {
            break span;
        }
        assert!(std::time::Instant::now() < deadline, "no span with gen_ai attributes: {bodies:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(attribute(&span, "gen_ai.request.model"), json!({ "stringValue": "gpt-4o-mini" }), "{span}");
    assert_eq!(attribute(&span, "gen_ai.provider.name"), json!({ "stringValue": "openai" }));
    assert_eq!(attribute(&span, "gen_ai.operation.name"), json!({ "stringValue": "chat" }));
    let input = out["usage"]["prompt_tokens"].as_i64().expect("usage");
    let tokens = attribute(&span, "gen_ai.usage.input_tokens");
    assert_eq!(
        tokens["intValue"].as_str().map(str::to_owned).or_else(|| tokens["intValue"].as_i64().map(|n| n.to_string())),
        Some(input.to_string()),
        "{span}"
    );
    assert_eq!(span["kind"], 3, "a CLIENT span");
}
