//! The MasterDeal flows drafted by a model (#17 §3, §8), through the root project's own
//! routes, prompt packages and API, against the LLM simulator: a deal → `202` → a generation
//! `done` with a stored `llm` media plan; its approved plan → a proposal whose HTML is rendered
//! and sanitised; a model that keeps breaking the deal's budget → the generation `failed`, its
//! problem naming the domain's errors, and the message dead-lettered for a replay.

mod common;

use std::time::{Duration, Instant};

use common::{Junction, deal_input, root, sqlite_store};
use junction_simulators::openai::{Answer, OpenAi};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

/// The dev key of the root project's `partners` (junction.yaml holds its hash).
const KEY: &str = "dev-partner-key-change-me";
const LLM_KEY: &str = "sk-generations-test";

struct Api {
    j: Junction,
    c: Client,
}

impl Api {
    async fn start(sim: &OpenAi) -> (Api, tempfile::TempDir) {
        let (tmp, store) = sqlite_store();
        let j =
            Junction::start(&root(), &[("JUNCTION_STORE", &store), ("LLM_URL", &sim.url), ("LLM_API_KEY", LLM_KEY)]);
        (Api { j, c: Client::new() }, tmp)
    }

    /// The root project as `cargo run --release -- run .` starts it: its own simulators, the
    /// default LLM address.
    fn demo() -> (std::fs::File, Api, tempfile::TempDir) {
        let ports = common::demo_ports();
        let (tmp, store) = sqlite_store();
        let j = Junction::start(&root(), &[("JUNCTION_STORE", &store), ("JUNCTION_SIMULATORS", "on")]);
        (ports, Api { j, c: Client::new() }, tmp)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<i64>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let url = if path.starts_with("/api/") { self.j.url(path) } else { self.j.url(&format!("/api/v1{path}")) };
        let mut rb = self.c.request(method, url).header("x-api-key", KEY);
        if let Some(body) = body {
            rb = rb.json(&body);
        }
        if let Some(v) = if_match {
            rb = rb.header("if-match", format!("\"{v}\""));
        }
        let resp = rb.send().await.expect("the API answers");
        let (status, headers) = (resp.status(), resp.headers().clone());
        let text = resp.text().await.expect("a body");
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn post(
        &self,
        path: &str,
        body: Option<Value>,
        if_match: Option<i64>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.send(reqwest::Method::POST, path, body, if_match).await
    }

    async fn get(&self, path: &str) -> Value {
        let (status, _, body) = self.send(reqwest::Method::GET, path, None, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// A new deal's id.
    async fn deal(&self, crm_id: &str) -> String {
        let (status, _, deal) = self.post("/deals", Some(deal_input(crm_id)), None).await;
        assert_eq!(status, 201, "{deal}");
        deal["id"].as_str().expect("an id").to_owned()
    }

    /// Asks for a generation at `path`: 202 with `Location`; then follows it until it ends.
    async fn generate(&self, path: &str) -> Value {
        let (status, headers, accepted) = self.post(path, None, None).await;
        assert_eq!(status, 202, "{accepted}");
        assert_eq!(accepted["status"], "pending", "{accepted}");
        let location = headers.get("location").and_then(|l| l.to_str().ok()).expect("a Location").to_owned();
        assert_eq!(location, format!("/api/v1/generations/{}", accepted["id"].as_str().expect("an id")));
        let start = Instant::now();
        loop {
            let g = self.get(&location).await;
            if g["status"] != "pending" {
                return g;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "still pending after 30 s:\n{}", self.j.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deal_gets_a_drafted_media_plan_and_its_approved_plan_a_proposal() {
    let sim = OpenAi::start("127.0.0.1:0", LLM_KEY).await.expect("simulator");
    let (api, _tmp) = Api::start(&sim).await;
    let deal_id = api.deal("GEN-1").await;

    let done = api.generate(&format!("/deals/{deal_id}/media-plan-generations")).await;
    assert_eq!((done["status"].as_str(), done["kind"].as_str()), (Some("done"), Some("media_plan")), "{done}");
    assert_eq!(done["subject_id"], json!(deal_id));
    let plan = api.get(&format!("/media-plans/{}", done["result_id"].as_str().expect("result_id"))).await;
    assert_eq!((plan["source"].as_str(), plan["deal_id"].as_str()), (Some("llm"), Some(deal_id.as_str())), "{plan}");
    assert!(plan["prompt_template_version"].as_str().is_some_and(|v| v.starts_with("media-plan/1 sha256:")), "{plan}");
    assert_eq!(plan["model"], "openai:gpt-4o-mini", "{plan}");
    let lines = plan["lines"].as_array().expect("lines");
    assert_eq!(lines.len(), 3, "{plan}");
    assert!(lines.iter().all(|l| l["flight_from"] == "2026-03-01" && l["flight_to"] == "2026-05-31"), "{plan}");
    assert_eq!(plan["total"], "1000000.00", "the whole budget, no more: {plan}");
    // The domain's check ran as the step's validation hook, with the deal from the store.
    let asked = sim.requests();
    assert_eq!(asked.len(), 1, "valid at once: no repair");
    let prompt = asked[0]["messages"].to_string();
    assert!(prompt.contains("1000000.00 RUB") && prompt.contains("2026-03-01 to 2026-05-31"), "{prompt}");
    assert!(!prompt.contains("7707083893"), "the INN never goes to the model: {prompt}");

    // A proposal only for an approved plan.
    let plan_id = plan["id"].as_str().expect("id").to_owned();
    let (status, _, refused) = api.post(&format!("/media-plans/{plan_id}/proposal-generations"), None, None).await;
    assert_eq!(
        (status.as_u16(), refused["type"].as_str()),
        (409, Some("https://junction.dev/problems/plan-not-approved")),
        "{refused}"
    );
    // The drafting route proposed it already (version 2); approving it asks for its КП by
    // itself (routes/worker/proposal-on-approval.yaml), and the API asks for one more.
    assert_eq!(plan["status"], "proposed", "{plan}");
    sim.answer([Answer::json(&json!({
        "markdown": "# КП: Spring campaign\n\n| Канал | Бюджет |\n|---|---|\n| search | 450000.00 |\n\n[site](javascript:alert(1))\n\n<script>alert('x')</script>"
    }))]);
    let transitions = format!("/media-plans/{plan_id}/transitions");
    assert_eq!(api.post(&transitions, Some(json!({ "to": "approved" })), Some(2)).await.0, 200);
    let done = api.generate(&format!("/media-plans/{plan_id}/proposal-generations")).await;
    assert_eq!((done["status"].as_str(), done["kind"].as_str()), (Some("done"), Some("proposal")), "{done}");
    let proposal = api.get(&format!("/proposals/{}", done["result_id"].as_str().expect("result_id"))).await;
    assert_eq!(proposal["media_plan_id"], json!(plan_id));
    assert!(proposal["body_markdown"].as_str().is_some_and(|m| m.starts_with("# КП")), "{proposal}");
    let html = proposal["body_html"].as_str().expect("html");
    assert!(html.contains("<h1>КП: Spring campaign</h1>") && html.contains("<td>450000.00</td>"), "{html}");
    assert!(
        html.contains(">site</a>") && !html.contains("<script") && !html.contains("javascript:"),
        "sanitised: {html}"
    );
    assert_eq!(proposal["generated_by"], "llm:openai:gpt-4o-mini", "{proposal}");
    let prompt = sim.requests().last().expect("asked")["messages"].to_string();
    assert!(
        prompt.contains("search on yandex_direct"),
        "the plan's lines are in the prompt: {prompt}\n{}",
        api.j.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_that_keeps_breaking_the_budget_fails_its_generation_and_is_dead_lettered() {
    let sim = OpenAi::start("127.0.0.1:0", LLM_KEY).await.expect("simulator");
    sim.answer([Answer::PlanOverBudget]);
    let (api, _tmp) = Api::start(&sim).await;
    let deal_id = api.deal("GEN-2").await;

    let failed = api.generate(&format!("/deals/{deal_id}/media-plan-generations")).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["result_id"], Value::Null);
    let problem = &failed["problem"];
    let detail = problem["detail"].as_str().expect("detail");
    assert!(detail.contains("over the deal's budget"), "the domain's error: {problem}");
    assert!(problem["dead_letter_id"].is_string(), "{problem}");
    assert_eq!(sim.requests().len(), 3, "the first answer and two repairs, each sent the domain's errors");
    assert!(sim.requests()[1]["messages"].to_string().contains("over the deal's budget"));
    // Nothing half-valid was stored.
    let plans = api.get(&format!("/deals/{deal_id}/media-plans")).await;
    assert_eq!(plans["items"], json!([]), "{plans}");

    // An unknown deal is a 404, and a generation that does not exist too.
    let (status, _, _) = api.post(&format!("/deals/{}/media-plan-generations", uuid::Uuid::now_v7()), None, None).await;
    assert_eq!(status, 404);
    let (status, _, _) =
        api.send(reqwest::Method::GET, &format!("/generations/{}", uuid::Uuid::now_v7()), None, None).await;
    assert_eq!(status, 404);
}

/// #16 §3, #17 §10: the demo needs no network and no simulator started by hand: `junction
/// run .` serves those `simulators.yaml` lists, the LLM's on the address `junction.yaml`'s
/// `llm` defaults to; a deal's media plan is drafted by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_drafts_with_the_simulators_the_project_serves_itself() {
    // The lock goes last, once this Junction has let the ports go.
    let (_ports, api, _tmp) = Api::demo();
    for line in [
        "junction: LLM (OpenAI-compatible) simulator on http://127.0.0.1:8085/v1",
        "junction: amoCRM simulator on http://127.0.0.1:8081",
        "junction: 1C OData simulator on http://127.0.0.1:8082",
        "junction: Yandex Direct simulator on http://127.0.0.1:8083",
        "junction: VK Ads simulator on http://127.0.0.1:8084",
        "junction: ClickHouse simulator on http://127.0.0.1:8123",
    ] {
        api.j.wait_for_log(line, Duration::from_secs(5));
    }
    let deal_id = api.deal("GEN-DEMO").await;
    let done = api.generate(&format!("/deals/{deal_id}/media-plan-generations")).await;
    assert_eq!(done["status"], "done", "{done}\n{}", api.j.logs());
}
