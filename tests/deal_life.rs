//! #18 §2–§3: one deal through every flow of the root project, against the simulators of the
//! outside systems: the amoCRM webhook → the master deal → a media plan drafted by the LLM and
//! noted on the lead → approved → its КП, noted, the deal proposal_sent → a contract signed →
//! one invoice in 1C, a shell campaign per plan line on Direct and VK Ads, the deal signed →
//! the payment in 1C → paid, the deal in_flight → the platforms' statistics → spend recorded,
//! an overspend as a task on the lead → the DWH's rows, one per fact. Asserted at every stage.
//!
//! It walks on embedded defaults (one process, SQLite, the embedded bus); as the diagram
//! deploys it, two Junction instances on PostgreSQL (the integration database and the
//! MasterDeal database apart) and a Redis Cluster, each API call going to the next instance in
//! turn, with the bus on Kafka (tansu) and again on RabbitMQ; and on Kafka with faults injected
//! on the way (an instance killed among them).
//!
//! The project is the root one, copied with its polls made quick (they run every minute or
//! five: a test cannot wait for them).

mod common;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Junction, PgDatabase, amqp_url, kafka_brokers, rabbitmqctl, redis_cluster_url, root, tag};
use junction_simulators::Fault;
use junction_simulators::amocrm;
use junction_simulators::onec;
use junction_simulators::openai::Answer;
use junction_simulators::outside::Outside;
use reqwest::Client;
use serde_json::{Value, json};

/// The dev key of the root project's `partners` (junction.yaml holds its hash).
const KEY: &str = "dev-partner-key-change-me";
/// The dev token of amoCRM's webhook URL (junction.yaml holds its hash).
const HOOK_TOKEN: &str = "dev-amocrm-hook-token";

/// The root project in `dir`, its polls every second instead of every minutes or hour, and
/// Direct's calls waiting two seconds, not an hour, once its points ran out.
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
    let path = dir.join("junction.yaml");
    let text = std::fs::read_to_string(&path).expect("junction.yaml");
    let direct = "    kind: yandex_direct\n";
    assert!(text.contains(direct), "junction.yaml has no Direct connector: update this test");
    std::fs::write(&path, text.replace(direct, &format!("{direct}    points_wait: 2s\n"))).expect("write");
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

/// Junction's instances of one deployment, sharing its store, cache and bus.
struct Deployment {
    /// Every instance started, and whether it is still alive.
    nodes: Mutex<Vec<(Arc<Junction>, bool)>>,
    /// Starts one more instance of the deployment (a restart).
    start: Box<dyn Fn() -> Junction + Send + Sync>,
    /// How long one stage may take.
    wait: Duration,
}

impl Deployment {
    /// `n` instances of the project in `dir` with `env`, started one after the other (the first
    /// migrates the databases).
    fn start(n: usize, dir: &Path, env: &[(&str, &str)], wait: Duration) -> Self {
        let (dir, env): (PathBuf, Vec<(String, String)>) =
            (dir.to_owned(), env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
        let start = Box::new(move || {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            Junction::start(&dir, &env)
        });
        let nodes = (0..n).map(|_| (Arc::new(start()), true)).collect();
        Self { nodes: Mutex::new(nodes), start, wait }
    }

    fn alive(&self) -> Vec<Arc<Junction>> {
        self.nodes.lock().expect("lock").iter().filter(|(_, alive)| *alive).map(|(j, _)| j.clone()).collect()
    }

    /// The `n`th instance alive, round the list.
    fn node(&self, n: usize) -> Arc<Junction> {
        let alive = self.alive();
        alive[n % alive.len()].clone()
    }

    /// Waits until every instance alive reads its share of each Kafka consumer group. tansu
    /// (0.6) can leave a partition with no reader for good when a member dies while its group
    /// is still taking it in (see tests/instances.rs); Kafka hands it on either way.
    async fn groups_settled(&self) {
        let routes = |j: &Junction| -> std::collections::BTreeSet<String> {
            let lines = j.logs();
            let assigned = lines.lines().filter(|l| l.contains("\"Kafka partitions assigned\""));
            assigned
                .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["route"].as_str().map(str::to_owned))
                .collect()
        };
        eventually(self, "every instance in every consumer group", || async {
            let alive = self.alive();
            let first = routes(&alive[0]);
            (!first.is_empty() && alive.iter().all(|j| routes(j) == first)).then_some(())
        })
        .await;
    }

    /// SIGKILL to the `i`th instance started: it stops where it is, nothing finishes.
    fn kill(&self, i: usize) {
        let mut nodes = self.nodes.lock().expect("lock");
        nodes[i].0.signal("KILL");
        nodes[i].1 = false;
    }

    /// Starts one more instance, as an orchestrator replaces a killed one.
    fn restart(&self) {
        let j = tokio::task::block_in_place(|| (self.start)());
        self.nodes.lock().expect("lock").push((Arc::new(j), true));
    }

    /// The sum of the series of metric `name` whose labels hold each of `labels`, over the
    /// instances alive.
    async fn metric(&self, c: &Client, name: &str, labels: &[&str]) -> f64 {
        let mut sum = 0.0;
        for j in self.alive() {
            let text = c.get(j.admin_url("/metrics")).send().await.expect("metrics").text().await.expect("text");
            for line in
                text.lines().filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            {
                if labels.iter().all(|l| line.contains(l)) {
                    sum += line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
                }
            }
        }
        sum
    }

    fn logs(&self) -> String {
        let nodes = self.nodes.lock().expect("lock");
        let logs = nodes.iter().enumerate().map(|(i, (j, _))| format!("--- instance {i} ---\n{}", j.logs()));
        logs.collect()
    }
}

/// Polls `check` until it gives a value, or fails naming `what` with Junction's logs.
async fn eventually<T, F, Fut>(d: &Deployment, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(start.elapsed() < d.wait, "{what}: not within {:?}; Junction's logs:\n{}", d.wait, d.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The MasterDeal API, each call on the next instance.
struct Api<'a> {
    d: &'a Deployment,
    c: Client,
    calls: std::sync::atomic::AtomicUsize,
}

impl Api<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        version: Option<i64>,
    ) -> (u16, Value) {
        let j = self.d.node(self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let mut rb = self.c.request(method, j.url(&format!("/api/v1{path}"))).header("x-api-key", KEY);
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
    let outside = Outside::start("e2e").await.expect("the simulators");
    let project = tempfile::tempdir().expect("temp dir");
    quick_copy(project.path());
    let data = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", data.path().join("junction.db").display());
    let masterdeal = format!("sqlite://{}", data.path().join("masterdeal.db").display());
    let mut env: Vec<(&str, String)> = outside.env();
    env.push(("JUNCTION_STORE", store));
    env.push(("MASTERDEAL_DATABASE", masterdeal));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let d = Deployment::start(1, project.path(), &env, Duration::from_secs(30));
    walk(&d, &outside, false).await;
}

/// The diagram's deployment: the integration database and the MasterDeal database apart on
/// PostgreSQL, the cache on a Redis Cluster, the bus on Kafka (its topics under a prefix of
/// this run's: the broker outlives the runs), two instances taking turns at the API calls and
/// sharing the consumer groups, the schedules and the outbox relay between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_deal_walks_on_postgres_redis_cluster_and_kafka_with_two_instances() {
    one_deal_walks_on_the_diagrams_deployment(Broker::Kafka).await;
}

/// The same with the bus on RabbitMQ (a virtual host of the run's own): the instances share
/// each route's queue as competing consumers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_deal_walks_on_postgres_redis_cluster_and_rabbitmq_with_two_instances() {
    one_deal_walks_on_the_diagrams_deployment(Broker::RabbitMq).await;
}

async fn one_deal_walks_on_the_diagrams_deployment(broker: Broker) {
    let outside = Outside::start("e2e").await.expect("the simulators");
    let (d, _kept) = diagram_deployment(&outside, broker).await;
    walk(&d, &outside, false).await;
    // The relay (like each schedule and statistics walk) ran on one instance, under its lease.
    let relay = "\"lease taken: running here\",\"task\":\"masterdeal.outbox\"";
    assert_eq!(d.logs().matches(relay).count(), 1, "{}", d.logs());
    // The instances go before their databases, their virtual host and the turn.
    drop(d);
}

/// The same deployment with faults injected on the way: the model's first plan breaks the
/// budget rule, billing answers 503 twice, Direct runs out of points (until the campaigns'
/// launch has felt it), and one instance is killed with SIGKILL while the КП is drafted. The
/// deal still reaches the end with one invoice, one campaign per line, one DWH row per fact
/// and no dead letter (all asserted by the walk), and the repairs and retries are the
/// injected faults'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deal_reaches_the_end_through_faults_and_a_killed_instance() {
    let outside = Outside::start("e2e").await.expect("the simulators");
    let (d, _kept) = diagram_deployment(&outside, Broker::Kafka).await;
    walk(&d, &outside, true).await;
    // The instances go before their databases and the turn.
    drop(d);
}

/// The diagram's deployments run one at a time: four instances at once, with the broker, are
/// more than two cores carry within the stages' waits.
static ONE_DEPLOYMENT_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The bus of the diagram's deployment.
#[derive(Clone, Copy)]
enum Broker {
    Kafka,
    RabbitMq,
}

/// A RabbitMQ virtual host of one run's own (the broker outlives the runs), deleted afterwards.
struct Vhost(String);

impl Vhost {
    fn create() -> Self {
        let name = format!("e2e-{}", tag());
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        Self(name)
    }

    /// The tests' RabbitMQ URL, on this virtual host.
    fn url(&self) -> String {
        let base = amqp_url();
        let server = base.rsplit_once('/').map_or(base.as_str(), |(server, _)| server);
        format!("{server}/{}", self.0)
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl").args(["delete_vhost", &self.0]).output();
    }
}

/// What a deployment needs as long as it runs: its databases, project, virtual host, and its
/// turn among the deployments.
struct Kept {
    _databases: (PgDatabase, PgDatabase),
    _project: tempfile::TempDir,
    _vhost: Option<Vhost>,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// Two instances of the root project on PostgreSQL (two databases), the Redis Cluster and
/// `broker`, reaching `outside`.
async fn diagram_deployment(outside: &Outside, broker: Broker) -> (Deployment, Kept) {
    let turn = ONE_DEPLOYMENT_AT_A_TIME.lock().await;
    let project = tempfile::tempdir().expect("temp dir");
    quick_copy(project.path());
    let (store, masterdeal) = (PgDatabase::create().await, PgDatabase::create().await);
    let mut env: Vec<(&str, String)> = outside.env();
    env.push(("JUNCTION_STORE", store.url.clone()));
    env.push(("MASTERDEAL_DATABASE", masterdeal.url.clone()));
    env.push(("JUNCTION_CACHE", redis_cluster_url()));
    let vhost = match broker {
        Broker::Kafka => {
            let bus = format!("kafka://{}?partitions=2&topic_prefix=e2e-{}.", kafka_brokers(), tag());
            env.push(("JUNCTION_BUS", bus));
            None
        }
        Broker::RabbitMq => {
            let vhost = Vhost::create();
            env.push(("JUNCTION_BUS", vhost.url()));
            Some(vhost)
        }
    };
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let d = Deployment::start(2, project.path(), &env, Duration::from_secs(90));
    (d, Kept { _databases: (store, masterdeal), _project: project, _vhost: vhost, _turn: turn })
}

/// One deal through every flow, asserted at every stage; with `faults`, those of
/// [`the_deal_reaches_the_end_through_faults_and_a_killed_instance`] on the way.
async fn walk(d: &Deployment, outside: &Outside, faults: bool) {
    let j = d.node(0);
    if faults {
        d.groups_settled().await;
    }
    let api = Api { d, c: Client::new(), calls: std::sync::atomic::AtomicUsize::new(0) };

    // (a) The lead is won in amoCRM; its webhook goes through the gateway, the lead is fetched
    // again, and the master deal is created as a draft.
    let today = chrono::Utc::now().date_naive();
    let period = (today, today + chrono::Days::new(30));
    let lead = outside.crm.add_lead(amocrm::deal_lead("Весна 2027", 1_000_000, "ООО «Ромашка»", "7707083893", period));
    let hook = j.url(&format!("/webhooks/amocrm?token={HOOK_TOKEN}"));
    assert_eq!(outside.crm.send_status_webhook(&hook, lead, 142).await.expect("the webhook is sent"), 202);
    let deal = eventually(d, "the master deal of the lead", || async {
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
    if faults {
        outside.llm.answer([Answer::PlanOverBudget, Answer::Plan]);
    }
    api.transition(&deal_path, "planning").await;
    let plan = eventually(d, "a proposed media plan", || async {
        let plans = api.get(&format!("{deal_path}/media-plans")).await;
        plans["items"].as_array()?.iter().find(|p| p["status"] == "proposed").cloned()
    })
    .await;
    assert_eq!((plan["source"].as_str(), plan["total"].as_str()), (Some("llm"), Some("1000000.00")), "{plan}");
    let plan_id = plan["id"].as_str().expect("an id").to_owned();
    if faults {
        // The first draft broke the budget rule: sent back once with the errors, the second kept.
        assert_eq!(d.metric(&api.c, "junction_llm_repairs_total", &[]).await, 1.0, "{}", d.logs());
    }
    let note = eventually(d, "the plan's note on the lead", || async {
        outside.crm.notes().into_iter().find(|n| n.to_string().contains(&plan_id))
    })
    .await;
    assert_eq!(note["entity_id"], json!(lead), "{note}");
    assert!(note.to_string().contains("Медиаплан №1 предложен клиенту: 1000000.00 RUB"), "{note}");

    // (c) Approved: its КП drafted and stored, its link noted, the deal proposal_sent.
    api.transition(&format!("/media-plans/{plan_id}"), "approved").await;
    if faults {
        // Killed while the КП is drafted (there or here), and started again once its session
        // in the consumer groups is over (10 s), as an orchestrator would: tansu hands a dead
        // member's partitions on only when a member joins (Kafka would at the session's end).
        // What the dead one held and had not committed is read again.
        d.kill(1);
        tokio::time::sleep(Duration::from_secs(12)).await;
        d.restart();
    }
    let proposal = eventually(d, "the КП", || async {
        let proposals = api.get(&format!("{deal_path}/proposals")).await;
        proposals["items"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(proposal["media_plan_id"], json!(plan_id), "{proposal}");
    assert!(proposal["body_html"].as_str().is_some_and(|h| h.contains("<h1>")), "{proposal}");
    let proposal_id = proposal["id"].as_str().expect("an id").to_owned();
    eventually(d, "the КП's note on the lead", || async {
        outside.crm.notes().into_iter().find(|n| n.to_string().contains(&proposal_id))
    })
    .await;
    eventually(d, "the deal at proposal_sent", || async {
        (api.get(&deal_path).await["status"] == "proposal_sent").then_some(())
    })
    .await;

    // (d, e) The contract signed: one invoice in 1C with its ids on the contract, a shell
    // campaign per plan line on its platform, and the deal signed (through negotiation).
    if faults {
        outside.billing.fail_next([Fault::status(503), Fault::status(503)]);
        outside.direct.set_units("", 0);
    }
    let contract = json!({ "number": "Д-E2E/1", "date": today.to_string(), "amount": "1000000.00", "currency": "RUB" });
    let (status, contract) =
        api.call(reqwest::Method::POST, &format!("{deal_path}/contracts"), Some(contract), None).await;
    assert_eq!(status, 201, "{contract}");
    let contract_path = format!("/contracts/{}", contract["id"].as_str().expect("an id"));
    api.transition(&contract_path, "sent").await;
    api.transition(&contract_path, "signed").await;
    if faults {
        let retried = ["route=\"campaigns-launch\"", "outcome=\"retried\""];
        eventually(d, "the launch on Direct held back by its points", || async {
            (d.metric(&api.c, "junction_step_messages_total", &retried).await >= 1.0).then_some(())
        })
        .await;
        outside.direct.set_units("", 1_000_000);
    }
    let contract = eventually(d, "the invoice's ids on the contract", || async {
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
    let campaigns = eventually(d, "a campaign per line on Direct and VK Ads", || async {
        let c = api.get(&format!("{deal_path}/campaigns")).await;
        let items = c["items"].as_array()?.clone();
        (items.len() == on_platforms).then_some(items)
    })
    .await;
    assert!(campaigns.iter().all(|c| c["status"] == "awaiting_creatives"), "{campaigns:?}");
    let direct_lines = lines.iter().filter(|l| l["platform"] == "yandex_direct").count();
    assert_eq!(outside.direct.campaigns().len(), direct_lines, "one Direct campaign per line");
    assert_eq!(outside.vk.plans().len(), on_platforms - direct_lines, "one VK ad plan per line");
    eventually(d, "the deal signed", || async { (api.get(&deal_path).await["status"] == "signed").then_some(()) })
        .await;

    // (d) The payment arrives in 1C: the poll marks the contract paid, the deal in_flight.
    let mut payment = json!({ "Posted": true, "СуммаДокумента": 1_000_000.0 });
    payment["ДокументОснование_Key"] = contract["billing_ids"]["onec_invoice"].clone();
    outside.billing.add(onec::PAYMENTS, payment);
    eventually(d, "the contract paid", || async {
        (api.get(&contract_path).await["payment_status"] == "paid").then_some(())
    })
    .await;
    eventually(d, "the deal in_flight", || async {
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
    let recorded = eventually(d, "every campaign's day recorded", || async {
        let c = api.get(&format!("{deal_path}/campaigns")).await;
        let items = c["items"].as_array()?.clone();
        // VK reports every day of the window (zeros too); Direct only the days with traffic.
        let has_day = |c: &Value| c["stats"].as_array().is_some_and(|s| s.iter().any(|d| d["day"] == json!(day)));
        items.iter().all(has_day).then_some(items)
    })
    .await;
    assert!(recorded.iter().all(|c| c["spend"] != "0.00"), "{recorded:?}");
    if let Some(over) = over {
        let task = eventually(d, "the overspend's task on the lead", || async {
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
    eventually(d, "the DWH's rows", || async {
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
    let audited = eventually(d, "the integration calls in the audit", || async {
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

    if faults {
        // Each 503 cost one retry of the route whose call it answered (the invoice's or the
        // payments' poll): no more, no fewer.
        let mut retried = 0.0;
        for route in ["billing-invoice", "billing-payments"] {
            let labels = [format!("route=\"{route}\""), "outcome=\"retried\"".to_owned()];
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            retried += d.metric(&api.c, "junction_step_messages_total", &labels).await;
        }
        assert_eq!(retried, 2.0, "{}", d.logs());
    }

    // Nothing was dead-lettered on the way.
    let dead = api.c.get(j.admin_url("/admin/dead-letters")).bearer_auth("dev-admin-token-change-me").send().await;
    let dead: Value = dead.expect("admin API").json().await.expect("json");
    assert_eq!(dead["items"], json!([]), "{dead}");
}
