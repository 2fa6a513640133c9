//! #18 §5: every metric the Prometheus alerting rules in deploy/ use exists in `/metrics` of the
//! root project once it has done the work each rule watches (scripts/check-deploy checks the
//! rules themselves with promtool; this checks they watch series Junction really exports).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Junction, deal_input, root, sqlite_store};
use junction_simulators::openai::{Answer, OpenAi};
use serde_json::Value;

const KEY: &str = "dev-partner-key-change-me";
const LLM_KEY: &str = "sk-deploy-test";

/// The `junction_*` metric names the rules name (in their expressions and annotations).
fn metrics_the_rules_use() -> BTreeSet<String> {
    let rules =
        std::fs::read_to_string(root().join("deploy/prometheus/alerts.yaml")).expect("deploy/prometheus/alerts.yaml");
    let mut names = BTreeSet::new();
    for line in rules.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut rest = line;
        while let Some(at) = rest.find("junction_") {
            let name: String =
                rest[at..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
            rest = &rest[at + name.len()..];
            names.insert(name);
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_alerting_rules_use_is_exported() {
    let used = metrics_the_rules_use();
    assert!(used.len() >= 6, "the rules watch dead letters, lag, breakers, 5xx, LLM budgets, the outbox: {used:?}");

    let llm = OpenAi::start("127.0.0.1:0", LLM_KEY).await.expect("LLM simulator");
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(&root(), &[("JUNCTION_STORE", &store), ("LLM_URL", &llm.url), ("LLM_API_KEY", LLM_KEY)]);
    let c = reqwest::Client::new();
    let api = |path: String| c.post(j.url(&format!("/api/v1{path}"))).header("x-api-key", KEY);

    // A plan drafted (the LLM's budget used), and one that keeps breaking the deal's budget
    // (its generation dead-lettered after the route's retries).
    for (crm_id, answer) in [("DEPLOY-1", Answer::Plan), ("DEPLOY-2", Answer::PlanOverBudget)] {
        llm.answer([answer]);
        let deal: Value =
            api("/deals".into()).json(&deal_input(crm_id)).send().await.expect("send").json().await.expect("json");
        let id = deal["id"].as_str().expect("a deal id");
        let resp = api(format!("/deals/{id}/media-plan-generations")).send().await.expect("send");
        assert_eq!(resp.status(), 202);
        let generation: Value = resp.json().await.expect("json");
        let at = format!("/api/v1/generations/{}", generation["id"].as_str().expect("an id"));
        let start = Instant::now();
        loop {
            let g: Value =
                c.get(j.url(&at)).header("x-api-key", KEY).send().await.expect("send").json().await.expect("json");
            if g["status"] != "pending" {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "{g}\n{}", j.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // A reload, and an answer from the gateway.
    let reload = c.post(j.admin_url("/admin/reload")).bearer_auth("dev-admin-token-change-me").send().await;
    assert_eq!(reload.expect("admin API").status(), 200);

    let start = Instant::now();
    loop {
        let text = c.get(j.admin_url("/metrics")).send().await.expect("metrics").text().await.expect("text");
        let exported: BTreeSet<&str> =
            text.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split(['{', ' ']).next()).collect();
        let missing: Vec<&String> = used.iter().filter(|m| !exported.contains(m.as_str())).collect();
        if missing.is_empty() {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "the rules use {missing:?}, not in /metrics:\n{text}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
