//! The connector model driven through a real runtime: a kind defined here, as any kind in the
//! connectors crate would be (a typed config, one registry line), offering a consumer and a
//! task that must run once across instances.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::watch;

use super::Runtime;
use crate::config::node::{Node, NodeError};
use crate::connector::{
    BuildCx, Connector, ConnectorError, Consumer, Endpoint, Inbox, Kind, Registry, Role, StartCx, Task,
};
use crate::message::{Body, Message};

/// What the test kind's connectors did, shared with the test.
#[derive(Default)]
struct Journal {
    started: AtomicUsize,
    stopped: AtomicUsize,
    /// Message numbers acked by consumers, in ack order.
    acked: Mutex<Vec<u64>>,
    /// How many task runs are going on now, and the most there ever were at once.
    running: AtomicUsize,
    most_running: AtomicUsize,
    task_runs: AtomicUsize,
    /// When each message sent with `to: { connector: t }` was fired (`meta.source.fired_at`).
    fired: Mutex<Vec<String>>,
    /// While true, sends fail as a dependency that is down would (retryable); `tries` counts them.
    failing: std::sync::atomic::AtomicBool,
    tries: AtomicUsize,
}

struct Ticker(Arc<Journal>);

/// `kind: ticker`'s options.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TickerConfig {
    /// Changes the connector's version only.
    #[serde(default)]
    #[allow(dead_code)]
    label: String,
}

/// `from: { connector: t, count: 5 }`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedSpec {
    count: u64,
}

impl Kind for Ticker {
    const NAME: &'static str = "ticker";
    type Config = TickerConfig;

    fn build(&self, _: &str, _: TickerConfig, _: &Node, _: &BuildCx<'_>) -> Result<Arc<dyn Connector>, NodeError> {
        Ok(Arc::new(TickerConnector(self.0.clone())))
    }
}

struct TickerConnector(Arc<Journal>);

#[async_trait]
impl Connector for TickerConnector {
    fn kind(&self) -> &'static str {
        "ticker"
    }

    fn endpoint(&self, _role: Role, _options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Endpoint>, NodeError> {
        Ok(Arc::new(Record(self.0.clone())))
    }

    fn consumer(&self, _route: &str, options: &Node, _cx: &BuildCx<'_>) -> Result<Arc<dyn Consumer>, NodeError> {
        let spec: FeedSpec = options.parse()?;
        Ok(Arc::new(Feed { count: spec.count, journal: self.0.clone() }))
    }

    async fn start(&self, _cx: &StartCx) -> Result<(), crate::connector::ConnectorError> {
        self.0.started.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn tasks(&self) -> Vec<Task> {
        let journal = self.0.clone();
        vec![Task {
            name: "ticker.once".into(),
            once: true,
            run: Arc::new(move |mut stop: watch::Receiver<bool>| {
                let journal = journal.clone();
                Box::pin(async move {
                    let now = journal.running.fetch_add(1, Ordering::SeqCst) + 1;
                    journal.most_running.fetch_max(now, Ordering::SeqCst);
                    journal.task_runs.fetch_add(1, Ordering::SeqCst);
                    crate::connector::stopped(&mut stop).await;
                    journal.running.fetch_sub(1, Ordering::SeqCst);
                })
            }),
        }]
    }

    async fn stop(&self) {
        self.0.stopped.fetch_add(1, Ordering::SeqCst);
    }
}

/// Records when each message it is sent was fired.
struct Record(Arc<Journal>);

#[async_trait]
impl Endpoint for Record {
    async fn send(&self, msg: &Message) -> Result<(), ConnectorError> {
        if self.0.failing.load(Ordering::SeqCst) {
            self.0.tries.fetch_add(1, Ordering::SeqCst);
            return Err(ConnectorError::unavailable("down for the test"));
        }
        let fired = msg.meta.source.get("fired_at").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        self.0.fired.lock().unwrap_or_else(PoisonError::into_inner).push(fired);
        Ok(())
    }

    async fn request(&self, msg: &Message) -> Result<Message, ConnectorError> {
        self.send(msg).await.map(|()| msg.clone())
    }

    fn describe(&self) -> String {
        "record".into()
    }
}

/// Hands out `count` numbered messages, acking each once the route delivered it.
struct Feed {
    count: u64,
    journal: Arc<Journal>,
}

#[async_trait]
impl Consumer for Feed {
    async fn run(&self, inbox: Arc<dyn Inbox>, mut stop: watch::Receiver<bool>) {
        for n in 0..self.count {
            let Some(admission) = inbox.admit(&mut stop).await else { return };
            if inbox.deliver(Message::new(Body::Json(serde_json::json!({ "n": n }))), admission).await.settled() {
                self.journal.acked.lock().unwrap_or_else(PoisonError::into_inner).push(n);
            }
        }
        crate::connector::stopped(&mut stop).await;
    }

    fn describe(&self) -> String {
        format!("{} ticks", self.count)
    }
}

fn registry(journal: &Arc<Journal>) -> Registry {
    let mut r = Registry::new();
    r.register(Ticker(journal.clone()));
    r
}

/// Loads projects as `junction check` does, with the test kind registered.
fn loader(journal: &Arc<Journal>) -> crate::config::Loader {
    crate::config::Loader {
        registry: registry(journal),
        resources: Default::default(),
        env: HashMap::new(),
        scripts: Arc::new(crate::script::ScriptEngine::new(&Default::default())),
        intercept: None,
    }
}

fn project(dir: &std::path::Path, store: &str, label: &str) {
    std::fs::create_dir_all(dir.join("routes")).expect("mkdir");
    let root = format!(
        "listen: 127.0.0.1:0\nstore: {store}\nreload: {{ watch: false }}\nconnectors:\n  t: {{ kind: ticker, label: {label} }}\n"
    );
    std::fs::write(dir.join("junction.yaml"), root).expect("write");
    let route = "route: ticks\nfrom: { connector: t, count: 5 }\nsteps:\n  - log: \"tick ${body.n}\"\n";
    std::fs::write(dir.join("routes/ticks.yaml"), route).expect("write");
}

async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..200 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("waited 10s for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_outside_the_engine_feeds_a_route_and_lives_with_the_project() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("j.db").display());
    project(dir.path(), &store, "one");
    let journal = Arc::new(Journal::default());
    let runtime = Runtime::start(dir.path(), registry(&journal), HashMap::new()).await.expect("starts");
    assert_eq!(journal.started.load(Ordering::SeqCst), 1, "started once the project validated");
    let acked = || journal.acked.lock().unwrap_or_else(PoisonError::into_inner).clone();
    wait_for("five acks", || acked().len() == 5).await;
    assert_eq!(acked(), [0, 1, 2, 3, 4]);
    let route = runtime.routes().get("ticks").cloned().expect("the route");
    assert_eq!(route.counters.snapshot().completed, 5, "each went through the route before its ack");

    // A reload that changes nothing keeps the connector; one that changes its options
    // rebuilds it and the route using it, and stops the old one.
    let report = runtime.reload(false).await.expect("reload");
    assert_eq!((report.unchanged, journal.started.load(Ordering::SeqCst)), (1, 1));
    project(dir.path(), &store, "two");
    let report = runtime.reload(false).await.expect("reload");
    assert_eq!(report.changed, ["ticks"]);
    assert_eq!(journal.started.load(Ordering::SeqCst), 2, "the new connector started");
    assert_eq!(journal.stopped.load(Ordering::SeqCst), 1, "the old one stopped");

    runtime.shutdown().await;
    assert_eq!(journal.stopped.load(Ordering::SeqCst), 2, "stopped with the project");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_runs_once_moves_to_another_instance_when_its_holder_stops() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("j.db").display());
    project(dir.path(), &store, "one");
    let journal = Arc::new(Journal::default());
    let first = Runtime::start(dir.path(), registry(&journal), HashMap::new()).await.expect("starts");
    let second = Runtime::start(dir.path(), registry(&journal), HashMap::new()).await.expect("starts");
    wait_for("the task to run", || journal.running.load(Ordering::SeqCst) == 1).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(journal.most_running.load(Ordering::SeqCst), 1, "one instance at a time");
    assert_eq!(journal.task_runs.load(Ordering::SeqCst), 1);
    first.shutdown().await;
    wait_for("the other instance to take over", || journal.task_runs.load(Ordering::SeqCst) == 2).await;
    assert_eq!(journal.most_running.load(Ordering::SeqCst), 1);
    second.shutdown().await;
    assert_eq!(journal.running.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_in_one_instance_of_several() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("j.db").display());
    project(dir.path(), &store, "one");
    let every = "route: tick\nfrom: { schedule: { every: 300ms } }\nsteps:\n  - to: { connector: t }\n";
    std::fs::write(dir.path().join("routes/tick.yaml"), every).expect("write");
    let journal = Arc::new(Journal::default());
    let fired = || journal.fired.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let a = Runtime::start(dir.path(), registry(&journal), HashMap::new()).await.expect("starts");
    let b = Runtime::start(dir.path(), registry(&journal), HashMap::new()).await.expect("starts");
    wait_for("six ticks", || fired().len() >= 6).await;
    // The first holder stops; the other carries on from the stored last fire.
    a.shutdown().await;
    let before = fired().len();
    wait_for("ticks from the other instance", || fired().len() >= before + 3).await;
    b.shutdown().await;
    let mut times: Vec<chrono::DateTime<chrono::FixedOffset>> =
        fired().iter().map(|t| chrono::DateTime::parse_from_rfc3339(t).expect("fired_at")).collect();
    times.sort();
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        // Two instances each firing would send pairs of ticks moments apart.
        assert!(gap >= chrono::Duration::milliseconds(250), "ticks {} and {} are {gap} apart", pair[0], pair[1]);
    }
}

#[test]
fn a_kind_checks_its_source_options_where_they_are_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    project(dir.path(), "sqlite://x.db", "one");
    std::fs::write(dir.path().join("routes/ticks.yaml"), "route: ticks\nfrom: { connector: t, cuont: 5 }\nsteps: []\n")
        .expect("write");
    let journal = Arc::new(Journal::default());
    let Err(diags) = loader(&journal).load(dir.path()) else { panic!("an unknown option must not load") };
    let text = diags.to_string();
    assert!(text.contains("routes/ticks.yaml:2:") && text.contains("cuont"), "{text}");
}

#[test]
fn the_bus_setting_is_checked_where_it_is_written() {
    let journal = Arc::new(Journal::default());
    let check = |root: &str| -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("routes")).expect("mkdir");
        std::fs::write(dir.path().join("junction.yaml"), root).expect("write");
        loader(&journal).load(dir.path()).err().map(|d| d.to_string()).unwrap_or_default()
    };
    let unknown = check("bus: nats://127.0.0.1:4222\n");
    assert!(unknown.contains("junction.yaml:1:6: no connector kind takes `nats://` URLs"), "{unknown}");
    let nameless = check("bus: events\n");
    assert!(nameless.contains("junction.yaml:1:6: `bus: events` names no connector"), "{nameless}");
    let not_a_bus = check("bus: t\nconnectors:\n  t: { kind: ticker }\n");
    assert!(not_a_bus.contains("connector `t` (kind `ticker`) cannot be the bus"), "{not_a_bus}");
    // The embedded bus's own settings are refused with another bus, never silently ignored.
    let embedded_only = check("bus: t\nbus_retention: 1d\nbus_max_backlog: 10\nconnectors:\n  t: { kind: ticker }\n");
    assert!(
        embedded_only.contains("junction.yaml:2:16: bus_retention is a setting of the embedded bus"),
        "{embedded_only}"
    );
    assert!(embedded_only.contains("junction.yaml:3:18: bus_max_backlog is a setting"), "{embedded_only}");
    let reserved = check("connectors:\n  bus: { kind: ticker }\n");
    assert!(reserved.contains("junction.yaml:2:3: `bus` is the project's bus"), "{reserved}");
    assert_eq!(check("bus: embedded\nbus_retention: 1d\n"), "", "fine with the embedded bus");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_bus_group_is_read_by_one_instance_of_several() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("j.db").display());
    project(dir.path(), &store, "one");
    let read = "route: read\nfrom: { bus: { topic: orders } }\nsteps:\n  - to: { connector: t }\n";
    std::fs::write(dir.path().join("routes/read.yaml"), read).expect("write");
    let journal = Arc::new(Journal::default());
    let a = Runtime::start(dir.path(), registry(&journal), HashMap::new()).await.expect("starts");
    let b = Runtime::start(dir.path(), registry(&journal), HashMap::new()).await.expect("starts");
    let fired = || journal.fired.lock().unwrap_or_else(PoisonError::into_inner).len();
    for n in 0..20 {
        a.bus().publish("orders", &Message::new(Body::Json(serde_json::json!({ "n": n })))).await.expect("publish");
    }
    wait_for("twenty deliveries", || fired() >= 20).await;
    // The holder stops; the other instance carries on from the committed offset.
    a.shutdown().await;
    for n in 20..30 {
        b.bus().publish("orders", &Message::new(Body::Json(serde_json::json!({ "n": n })))).await.expect("publish");
    }
    wait_for("thirty deliveries", || fired() >= 30).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    b.shutdown().await;
    assert_eq!(fired(), 30, "every message once: two instances did not both read the group");
}

/// A stop does not wait out the backoff of a consumer's message whose step failed: the message
/// is left unacked (no dead letter) and delivered after the restart. Waiting would hold the
/// stop for up to the whole retry policy (here a minute), past a Kubernetes grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_leaves_a_message_waiting_to_be_retried_for_after_the_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("j.db").display());
    project(dir.path(), &store, "one");
    let root = std::fs::read_to_string(dir.path().join("junction.yaml")).expect("read");
    std::fs::write(
        dir.path().join("junction.yaml"),
        format!(
            "{root}shutdown_timeout: 5m
"
        ),
    )
    .expect("write");
    let read = "route: read\nfrom: { bus: { topic: orders } }\nsteps:\n  - to: { connector: t }\n\
                on_error:\n  retry: { attempts: 5, backoff: fixed, initial: 2m, max: 2m }\n";
    std::fs::write(dir.path().join("routes/read.yaml"), read).expect("write");
    let journal = Arc::new(Journal::default());
    journal.failing.store(true, Ordering::SeqCst);
    let first = Runtime::start(dir.path(), registry(&journal), HashMap::new()).await.expect("starts");
    first.bus().publish("orders", &Message::new(Body::Json(serde_json::json!({ "n": 1 })))).await.expect("publish");
    wait_for("the first try", || journal.tries.load(Ordering::SeqCst) == 1).await;
    let store_handle = first.store().clone();
    // The backoff is at least a minute; the stop must not wait for it.
    tokio::time::timeout(Duration::from_secs(20), first.shutdown())
        .await
        .expect("stopped without waiting out the backoff");
    assert_eq!(journal.tries.load(Ordering::SeqCst), 1, "not tried again on the way out");
    let dead = store_handle.list_dead_letters(&Default::default()).await.expect("dead letters");
    assert!(dead.is_empty(), "left, not dead-lettered: {dead:?}");

    journal.failing.store(false, Ordering::SeqCst);
    let second = Runtime::start(dir.path(), registry(&journal), HashMap::new()).await.expect("starts again");
    let fired = || journal.fired.lock().unwrap_or_else(PoisonError::into_inner).len();
    wait_for("the message after the restart", || fired() == 1).await;
    second.shutdown().await;
}

/// A request that found a route version just before a reload swapped it out: the drain of
/// that version waits for it and does not turn it away (it once took the free permits).
#[tokio::test]
async fn a_draining_version_still_takes_a_request_that_found_it() {
    let permits = Arc::new(tokio::sync::Semaphore::new(2));
    let running = permits.clone().try_acquire_owned().expect("a run in flight");
    let drain = tokio::spawn({
        let permits = permits.clone();
        async move { super::drained(&permits, 2).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let late = permits.clone().try_acquire_owned().expect("the late request gets a permit while the version drains");
    drop(running);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!drain.is_finished(), "drained with a run still in flight");
    drop(late);
    tokio::time::timeout(Duration::from_secs(1), drain).await.expect("drained once both are back").expect("join");
}
