//! #18 §2–§3: one deal through every flow of the root project, on embedded defaults (one
//! process, SQLite, the embedded bus), against the simulators of the outside systems: the
//! amoCRM webhook → the master deal → a media plan drafted by the LLM and noted on the lead →
//! approved → its КП, noted, the deal proposal_sent → a contract signed → one invoice in 1C,
//! a shell campaign per plan line on Direct and VK Ads, the deal signed → the payment in 1C →
//! paid, the deal in_flight → the platforms' statistics → spend recorded, an overspend as a
//! task on the lead → the DWH's rows, one per fact. Asserted at every stage.
//!
//! The project is the root one, copied with its polls made quick (they run every minute or
//! five: a test cannot wait for them).

mod common;

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Junction, root};
use junction_simulators::amocrm::{self, Amocrm};
use junction_simulators::clickhouse::ClickHouse;
use junction_simulators::direct::Direct;
use junction_simulators::onec::{self, OneC};
use junction_simulators::openai::OpenAi;
use junction_simulators::vk::VkAds;
use reqwest::Client;
use serde_json::{Value, json};

/// The dev key of the root project's `partners` (junction.yaml holds its hash).
const KEY: &str = "dev-partner-key-change-me";
/// The dev token of amoCRM's webhook URL (junction.yaml holds its hash).
const HOOK_TOKEN: &str = "dev-amocrm-hook-token";
const AMO_TOKEN: &str = "amo-long-lived-e2e";
const LLM_KEY: &str = "sk-e2e";
const DIRECT_TOKEN: &str = "direct-e2e";
const WAIT: Duration = Duration::from_secs(30);

/// The outside systems, each simulated on its own port.
struct Outside {
    crm: Amocrm,
    billing: OneC,
    direct: Direct,
    vk: VkAds,
    dwh: ClickHouse,
    llm: OpenAi,
}

impl Outside {
    async fn start() -> Outside {
        let options = amocrm::Options { long_lived_token: Some(AMO_TOKEN.into()), ..amocrm::Options::default() };
        Outside {
            crm: Amocrm::start("127.0.0.1:0", options).await.expect("amoCRM simulator"),
            billing: OneC::start("127.0.0.1:0", "junction", "e2e-1c").await.expect("1C simulator"),
            direct: Direct::start("127.0.0.1:0", DIRECT_TOKEN).await.expect("Direct simulator"),
            vk: VkAds::start("127.0.0.1:0", "vk-e2e", "vk-e2e-secret").await.expect("VK simulator"),
            dwh: ClickHouse::start("127.0.0.1:0", "default", "").await.expect("ClickHouse simulator"),
            llm: OpenAi::start("127.0.0.1:0", LLM_KEY).await.expect("LLM simulator"),
        }
    }

    /// What the root project's junction.yaml reads to reach them.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AMOCRM_URL", self.crm.url.clone()),
            ("AMOCRM_TOKEN", AMO_TOKEN.into()),
            ("ONEC_URL", self.billing.url.clone()),
            ("ONEC_USER", "junction".into()),
            ("ONEC_PASSWORD", "e2e-1c".into()),
            ("DIRECT_URL", self.direct.url.clone()),
            ("DIRECT_TOKEN", DIRECT_TOKEN.into()),
            ("VK_URL", self.vk.url.clone()),
            ("VK_CLIENT_ID", "vk-e2e".into()),
            ("VK_CLIENT_SECRET", "vk-e2e-secret".into()),
            ("DWH_URL", self.dwh.url.clone()),
            ("LLM_URL", self.llm.url.clone()),
            ("LLM_API_KEY", LLM_KEY.into()),
        ]
    }
}

/// The root project in `dir`, its polls every second instead of every minutes or hour.
fn quick_copy(dir: &Path) {
    let from = root();
    for entry in ["junction.yaml", "prompts.lock", "routes", "transforms", "schemas", "prompts"] {
        copy(&from.join(entry), &dir.join(entry));
    }
    for (file, slow, quick) in [
        ("routes/adapters/billing-payments.yaml", "every: 1m", "every: 1s"),
        ("routes/adapters/campaigns-status.yaml", "every: 5m", "every: 1s"),
        ("routes/adapters/stats-direct.yaml", "every: 1m", "every: 1s"),
        ("routes/adapters/stats-vk.yaml", "every: 1m", "every: 1s"),
    ] {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).expect("a route of the root project");
        assert!(text.contains(slow), "{file} no longer polls `{slow}`: update this test");
        std::fs::write(&path, text.replace(slow, quick)).expect("write");
    }
}

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read_dir").map_while(Result::ok) {
            copy(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}

/// A DWH table's rows as `SELECT … FINAL` reads them: ReplacingMergeTree keeps the last row
/// per key.
fn final_rows(rows: &impl Fn(&str) -> Vec<Value>, table: &str) -> Vec<Value> {
    let mut by_key = std::collections::BTreeMap::new();
    for row in rows(table) {
        let key = match table {
            "deals" => row["deal_id"].to_string(),
            "plan_lines" => row["line_id"].to_string(),
            "contracts" => row["contract_id"].to_string(),
            _ => format!("{}:{}", row["campaign_id"], row["day"]),
        };
        by_key.insert(key, row);
    }
    by_key.into_values().collect()
}

/// Polls `check` until it gives a value, or fails naming `what` with Junction's log.
async fn eventually<T, F, Fut>(j: &Junction, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(start.elapsed() < WAIT, "{what}: not within {WAIT:?}; Junction's log:\n{}", j.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Api<'a> {
    j: &'a Junction,
    c: Client,
}

impl Api<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        version: Option<i64>,
    ) -> (u16, Value) {
        let mut rb = self.c.request(method, self.j.url(&format!("/api/v1{path}"))).header("x-api-key", KEY);
        if let Some(body) = body {
            rb = rb.json(&body);
        }
        if let Some(v) = version {
            rb = rb.header("if-match", format!("\"{v}\""));
        }
        let resp = rb.send().await.expect("the API answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Moves a record (`/deals/{id}`, `/media-plans/{id}`, …) on; its new version.
    async fn transition(&self, record: &str, to: &str) -> Value {
        let current = self.get(record).await;
        let version = current["version"].as_i64().expect("a version");
        let (status, body) = self
            .call(reqwest::Method::POST, &format!("{record}/transitions"), Some(json!({ "to": to })), Some(version))
            .await;
        assert_eq!(status, 200, "{record} → {to}: {body}");
        body
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_deal_walks_from_the_crm_webhook_to_the_dwh_rows() {
    let outside = Outside::start().await;
    let project = tempfile::tempdir().expect("temp dir");
    quick_copy(project.path());
    let data = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", data.path().join("junction.db").display());
    let masterdeal = format!("sqlite://{}", data.path().join("masterdeal.db").display());
    let mut env: Vec<(&str, String)> = outside.env();
    env.push(("JUNCTION_STORE", store));
    env.push(("MASTERDEAL_DATABASE", masterdeal));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let j = Junction::start(project.path(), &env);
    let api = Api { j: &j, c: Client::new() };

    // (a) The lead is won in amoCRM; its webhook goes through the gateway, the lead is fetched
    // again, and the master deal is created as a draft.
    let today = chrono::Utc::now().date_naive();
    let period = (today, today + chrono::Days::new(30));
    let lead = outside.crm.add_lead(amocrm::deal_lead("Весна 2027", 1_000_000, "ООО «Ромашка»", "7707083893", period));
    let hook = j.url(&format!("/webhooks/amocrm?token={HOOK_TOKEN}"));
    assert_eq!(outside.crm.send_status_webhook(&hook, lead, 142).await.expect("the webhook is sent"), 202);
    let deal = eventually(&j, "the master deal of the lead", || async {
        let list = api.get("/deals?limit=50").await;
        list["items"].as_array()?.iter().find(|d| d["crm_id"] == json!(lead.to_string())).cloned()
    })
    .await;
    assert_eq!((deal["status"].as_str(), deal["budget"].as_str()), (Some("draft"), Some("1000000")), "{deal}");
    assert_eq!(deal["advertiser_inn"], "7707083893", "{deal}");
    assert_eq!(deal["period_from"], json!(period.0.to_string()), "{deal}");
    let deal_id = deal["id"].as_str().expect("an id").to_owned();
    let deal_path = format!("/deals/{deal_id}");

    // (b) Planning: a media plan drafted by the model, stored as proposed, noted on the lead.
    api.transition(&deal_path, "planning").await;
    let plan = eventually(&j, "a proposed media plan", || async {
        let plans = api.get(&format!("{deal_path}/media-plans")).await;
        plans["items"].as_array()?.iter().find(|p| p["status"] == "proposed").cloned()
    })
    .await;
    assert_eq!((plan["source"].as_str(), plan["total"].as_str()), (Some("llm"), Some("1000000.00")), "{plan}");
    let plan_id = plan["id"].as_str().expect("an id").to_owned();
    let note = eventually(&j, "the plan's note on the lead", || async {
        outside.crm.notes().into_iter().find(|n| n.to_string().contains(&plan_id))
    })
    .await;
    assert_eq!(note["entity_id"], json!(lead), "{note}");
    assert!(note.to_string().contains("Медиаплан №1 предложен клиенту: 1000000.00 RUB"), "{note}");

    // (c) Approved: its КП drafted and stored, its link noted, the deal proposal_sent.
    api.transition(&format!("/media-plans/{plan_id}"), "approved").await;
    let proposal = eventually(&j, "the КП", || async {
        let proposals = api.get(&format!("{deal_path}/proposals")).await;
        proposals["items"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(proposal["media_plan_id"], json!(plan_id), "{proposal}");
    assert!(proposal["body_html"].as_str().is_some_and(|h| h.contains("<h1>")), "{proposal}");
    let proposal_id = proposal["id"].as_str().expect("an id").to_owned();
    eventually(&j, "the КП's note on the lead", || async {
        outside.crm.notes().into_iter().find(|n| n.to_string().contains(&proposal_id))
    })
    .await;
    eventually(&j, "the deal at proposal_sent", || async {
        (api.get(&deal_path).await["status"] == "proposal_sent").then_some(())
    })
    .await;

    // (d, e) The contract signed: one invoice in 1C with its ids on the contract, a shell
    // campaign per plan line on its platform, and the deal signed (through negotiation).
    let contract = json!({ "number": "Д-E2E/1", "date": today.to_string(), "amount": "1000000.00", "currency": "RUB" });
    let (status, contract) =
        api.call(reqwest::Method::POST, &format!("{deal_path}/contracts"), Some(contract), None).await;
    assert_eq!(status, 201, "{contract}");
    let contract_path = format!("/contracts/{}", contract["id"].as_str().expect("an id"));
    api.transition(&contract_path, "sent").await;
    api.transition(&contract_path, "signed").await;
    let contract = eventually(&j, "the invoice's ids on the contract", || async {
        let c = api.get(&contract_path).await;
        c["billing_ids"]["onec_invoice"].is_string().then_some(c)
    })
    .await;
    let invoices = outside.billing.documents(onec::INVOICES);
    assert_eq!(invoices.len(), 1, "one invoice: {invoices:?}");
    assert_eq!(invoices[0]["Ref_Key"], contract["billing_ids"]["onec_invoice"]);
    assert_eq!(invoices[0]["СуммаДокумента"], json!(1_000_000.0));
    let lines = plan["lines"].as_array().expect("lines").clone();
    let on_platforms = lines.iter().filter(|l| l["platform"] == "yandex_direct" || l["platform"] == "vk_ads").count();
    assert!(on_platforms > 0, "the drafted plan buys on Direct or VK: {plan}");
    let campaigns = eventually(&j, "a campaign per line on Direct and VK Ads", || async {
        let c = api.get(&format!("{deal_path}/campaigns")).await;
        let items = c["items"].as_array()?.clone();
        (items.len() == on_platforms).then_some(items)
    })
    .await;
    assert!(campaigns.iter().all(|c| c["status"] == "awaiting_creatives"), "{campaigns:?}");
    let direct_lines = lines.iter().filter(|l| l["platform"] == "yandex_direct").count();
    assert_eq!(outside.direct.campaigns().len(), direct_lines, "one Direct campaign per line");
    assert_eq!(outside.vk.plans().len(), on_platforms - direct_lines, "one VK ad plan per line");
    eventually(&j, "the deal signed", || async { (api.get(&deal_path).await["status"] == "signed").then_some(()) })
        .await;

    // (d) The payment arrives in 1C: the poll marks the contract paid, the deal in_flight.
    let mut payment = json!({ "Posted": true, "СуммаДокумента": 1_000_000.0 });
    payment["ДокументОснование_Key"] = contract["billing_ids"]["onec_invoice"].clone();
    outside.billing.add(onec::PAYMENTS, payment);
    eventually(&j, "the contract paid", || async {
        (api.get(&contract_path).await["payment_status"] == "paid").then_some(())
    })
    .await;
    eventually(&j, "the deal in_flight", || async {
        (api.get(&deal_path).await["status"] == "in_flight").then_some(())
    })
    .await;

    // (f) Statistics: a day of each campaign on its platform; one Direct campaign spends over
    // its budget, which is a task on the lead.
    let day = today.to_string();
    let mut over = None;
    for c in &campaigns {
        let id: i64 = c["platform_campaign_id"].as_str().and_then(|i| i.parse().ok()).expect("a platform id");
        if c["platform"] == "yandex_direct" && over.is_none() {
            let budget: f64 = c["budget"].as_str().and_then(|b| b.parse().ok()).expect("a budget");
            outside.direct.set_stats(id, &day, 5000, 120, ((budget + 1000.0) * 1_000_000.0) as i64);
            over = Some(c["id"].clone());
        } else if c["platform"] == "yandex_direct" {
            outside.direct.set_stats(id, &day, 1000, 20, 1_500_000_000);
        } else {
            outside.vk.set_stats(id, &day, 900, 15, "1234.50");
        }
    }
    let recorded = eventually(&j, "every campaign's day recorded", || async {
        let c = api.get(&format!("{deal_path}/campaigns")).await;
        let items = c["items"].as_array()?.clone();
        // VK reports every day of the window (zeros too); Direct only the days with traffic.
        let has_day = |c: &Value| c["stats"].as_array().is_some_and(|s| s.iter().any(|d| d["day"] == json!(day)));
        items.iter().all(has_day).then_some(items)
    })
    .await;
    assert!(recorded.iter().all(|c| c["spend"] != "0.00"), "{recorded:?}");
    if let Some(over) = over {
        let task = eventually(&j, "the overspend's task on the lead", || async {
            outside.crm.tasks().into_iter().find(|t| t.to_string().contains("Перерасход"))
        })
        .await;
        assert_eq!(task["entity_id"], json!(lead), "{task}");
        let over = recorded.iter().find(|c| c["id"] == over).expect("the overspent campaign");
        assert!(task.to_string().contains(over["name"].as_str().expect("a name")), "{task}");
    }

    // (g) The DWH: one row per fact.
    let days: usize = recorded.iter().map(|c| c["stats"].as_array().map_or(0, Vec::len)).sum();
    let rows = |table: &str| outside.dwh.rows(&format!("dwh.{table}"));
    eventually(&j, "the DWH's rows", || async {
        let done = final_rows(&rows, "campaign_days").len() == days
            && rows("deals").iter().any(|d| d["status"] == "in_flight")
            && rows("contracts").iter().any(|c| c["payment_status"] == "paid");
        done.then_some(())
    })
    .await;
    let deals = final_rows(&rows, "deals");
    assert_eq!((deals.len(), deals[0]["status"].as_str()), (1, Some("in_flight")), "{deals:?}");
    let plan_lines = final_rows(&rows, "plan_lines");
    assert_eq!(plan_lines.len(), lines.len(), "{plan_lines:?}");
    assert!(plan_lines.iter().all(|l| l["plan_status"] == "approved"), "{plan_lines:?}");
    assert_eq!(final_rows(&rows, "contracts").len(), 1);
    let spent_today: Vec<Value> =
        final_rows(&rows, "campaign_days").into_iter().filter(|r| r["day"] == json!(day)).collect();
    assert_eq!(spent_today.len(), campaigns.len(), "{spent_today:?}");

    // Every call to an outside system (and every MasterDeal operation) is in the audit, by its
    // route: the diagram's AUDIT box.
    let audited = eventually(&j, "the integration calls in the audit", || async {
        let resp = api.c.get(j.admin_url("/admin/audit?action=connector.&limit=1000"));
        let audit: Value = resp.bearer_auth("dev-admin-token-change-me").send().await.ok()?.json().await.ok()?;
        let items = audit["items"].as_array()?.clone();
        let called = |connector: &str| {
            items.iter().any(|i| i["target"].as_str().is_some_and(|t| t.starts_with(&format!("{connector}: "))))
        };
        ["crm", "billing", "direct", "vk", "dwh", "llm", "masterdeal"].iter().all(|c| called(c)).then_some(items)
    })
    .await;
    // Newest first: the first call to the CRM was the webhook's lead fetch.
    let lead_fetch =
        audited.iter().rev().find(|i| i["target"].as_str().is_some_and(|t| t.starts_with("crm: "))).expect("crm");
    assert_eq!(
        (lead_fetch["actor"].as_str(), lead_fetch["outcome"].as_str()),
        (Some("route:amocrm-lead-won"), Some("ok")),
        "{lead_fetch}"
    );

    // Nothing was dead-lettered on the way.
    let dead = api.c.get(j.admin_url("/admin/dead-letters")).bearer_auth("dev-admin-token-change-me").send().await;
    let dead: Value = dead.expect("admin API").json().await.expect("json");
    assert_eq!(dead["items"], json!([]), "{dead}");
}
