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

fn project_for(a: &OpenAi, b: &OpenAi) -> tempfile::TempDir {
    project(&[
        (
            "junction.yaml",
            &format!(
                "routes: [routes/]\nconnectors:\n  llm:\n    kind: llm\n    repairs: 2\n    targets:\n      - {{ provider: openai, base_url: \"{}\", api_key: \"${{KEY_A}}\", model: gpt-4o-mini }}\n      - {{ provider: openai, base_url: \"{}\", api_key: \"${{KEY_B}}\", model: qwen2.5-72b }}\n",
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
    let a = OpenAi::start("127.0.0.1:0", "sk-a-secret").await.expect("simulator a");
    let b = OpenAi::start("127.0.0.1:0", "sk-b-secret").await.expect("simulator b");
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
    let a = OpenAi::start("127.0.0.1:0", "sk-a-secret").await.expect("simulator a");
    let b = OpenAi::start("127.0.0.1:0", "sk-b-secret").await.expect("simulator b");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let checker = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::new().route("/check", axum::routing::post(check))).await
    });
    let dir = project_for(&a, &b);
    let root = std::fs::read_to_string(dir.path().join("junction.yaml")).expect("root");
    std::fs::write(
        dir.path().join("junction.yaml"),
        format!("{root}  domain:\n    kind: http\n    base_url: \"http://{checker}\"\n"),
    )
    .expect("root");
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_answers_are_reused_for_the_same_request_only() {
    let a = OpenAi::start("127.0.0.1:0", "sk-a-secret").await.expect("simulator a");
    let b = OpenAi::start("127.0.0.1:0", "sk-b-secret").await.expect("simulator b");
    let dir = project_for(&a, &b);
    let root = std::fs::read_to_string(dir.path().join("junction.yaml")).expect("root");
    std::fs::write(
        dir.path().join("junction.yaml"),
        root.replace("    repairs: 2\n", "    repairs: 2\n    cache_ttl: 1h\n"),
    )
    .expect("root");
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
}
