//! One conformance suite for every bus backend, run through the binary: a project whose
//! routes say `bus` behaves the same whatever `bus:` names. Each test is written once, over a
//! [`Backend`]; [`every_backend!`] runs it on each. A new backend joins with one line there
//! (and one in [`Backend`]).
//!
//! Kafka is tansu on 127.0.0.1:9092 (or `JUNCTION_TEST_KAFKA`), started by `scripts/test`;
//! RabbitMQ is 127.0.0.1:5672, guest/guest (or `JUNCTION_TEST_AMQP`, an `amqp://` URL).
//! Topics, groups and routes carry a tag of their own per test: the broker outlives the runs.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Junction, amqp_url, kafka_brokers, project, sqlite_store, tag};

const TOKEN: &str = "conformance-admin-token";

#[derive(Clone, Copy, Debug)]
enum Backend {
    Embedded,
    Kafka,
    Amqp,
}

impl Backend {
    /// The `bus:` setting.
    fn bus(self) -> String {
        match self {
            Backend::Embedded => "embedded".into(),
            Backend::Kafka => {
                format!("\"kafka://{}?partitions=3\"", kafka_brokers())
            }
            Backend::Amqp => format!("\"{}\"", amqp_url()),
        }
    }

    /// How long a restart after a SIGKILL waits. On Kafka, until the group has given the dead
    /// member's partitions to the living (its 10 s session timeout): tansu (0.6) can leave a
    /// partition with no live reader for good when a member joins while a dead one is still in
    /// the group (seen in tests/instances.rs). Kafka itself hands it on either way.
    fn restart_after_kill(self) -> Duration {
        match self {
            Backend::Kafka => Duration::from_secs(12),
            Backend::Embedded | Backend::Amqp => Duration::ZERO,
        }
    }
}

/// Runs each named test on every backend: `mod embedded { fn publishes… }`, `mod kafka { … }`.
macro_rules! every_backend {
    ($($test:ident),* $(,)?) => {
        backend_tests!(embedded, super::Backend::Embedded, $($test),*);
        backend_tests!(kafka, super::Backend::Kafka, $($test),*);
        backend_tests!(amqp, super::Backend::Amqp, $($test),*);
    };
}

macro_rules! backend_tests {
    ($name:ident, $backend:expr, $($test:ident),*) => {
        mod $name {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($backend).await;
                }
            )*
        }
    };
}

every_backend!(
    publishes_and_consumes_each_message_once,
    acks_after_the_route_so_a_sigkill_redelivers,
    dead_letters_go_to_a_topic_on_the_bus,
    bounds_the_messages_in_flight,
    a_paused_route_holds_its_messages_until_resumed,
    drains_on_stop,
    a_reload_hands_the_group_over_without_duplicates,
    an_async_route_queues_on_the_bus,
);

// Order per key is promised where the backend partitions by key (Kafka) or the consumer keeps
// a lane per key (RabbitMQ; across instances with single-active-consumer queues); the
// embedded bus runs `max_in_flight` messages of a topic side by side whatever their key.
backend_tests!(kafka_ordered, super::Backend::Kafka, keeps_order_per_key);
backend_tests!(amqp_ordered, super::Backend::Amqp, keeps_order_per_key);

/// A project on `backend`: `POST /work` publishes its body on the work topic keyed by
/// `body.k`; the work route reads that topic, runs `steps`, and logs `processed n=… k=…;`.
struct Setup {
    dir: tempfile::TempDir,
    _store_dir: tempfile::TempDir,
    store: String,
    tag: String,
}

impl Setup {
    fn new(backend: Backend, max_in_flight: usize, steps: &str) -> Self {
        let tag = tag();
        let bus = backend.bus();
        let dir = project(&[
            (
                "junction.yaml",
                &format!(
                    "routes: [routes/]\nbus: {bus}\nadmin: {{ listen: 127.0.0.1:9090, token: {TOKEN} }}\nreload: {{ watch: false }}\n"
                ),
            ),
            (
                "routes/accept.yaml",
                &format!(
                    "route: accept-{tag}\nfrom: {{ http: {{ method: POST, path: /work, auth: none }} }}\nsteps:\n  - to: {{ connector: bus, topic: work-{tag}, key: body.k }}\n"
                ),
            ),
            ("routes/work.yaml", &work_route(&tag, max_in_flight, steps, "processed")),
        ]);
        let (store_dir, store) = sqlite_store();
        Self { dir, _store_dir: store_dir, store, tag }
    }

    fn start(&self) -> Junction {
        Junction::start(self.dir.path(), &[("JUNCTION_STORE", &self.store)])
    }

    fn route(&self) -> String {
        format!("work-{}", self.tag)
    }
}

fn work_route(tag: &str, max_in_flight: usize, steps: &str, word: &str) -> String {
    format!(
        "route: work-{tag}\nfrom: {{ bus: {{ topic: work-{tag}, group: g-{tag} }} }}\nmax_in_flight: {max_in_flight}\nsteps:\n  - log: \"started n=${{body.n}};\"\n{steps}  - log: \"{word} n=${{body.n}} k=${{body.k}};\"\n"
    )
}

/// Posts messages `ns`, key `k<n % keys>`, each accepted once the bus has it.
async fn post(j: &Junction, ns: impl IntoIterator<Item = u64>, keys: u64) {
    let c = reqwest::Client::new();
    for n in ns {
        let body = format!("{{\"n\": {n}, \"k\": \"k{}\"}}", n % keys);
        let resp = c.post(j.url("/work")).body(body).send().await.expect("post");
        assert_eq!(resp.status(), 200, "message {n}: {}\n{}", resp.text().await.unwrap_or_default(), j.logs());
    }
}

/// The `n`s of the log lines `<word> n=…;`, in log order.
fn seen(logs: &str, word: &str) -> Vec<u64> {
    let needle = format!("{word} n=");
    logs.match_indices(&needle)
        .filter_map(|(at, _)| {
            let rest = &logs[at + needle.len()..];
            rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len())].parse().ok()
        })
        .collect()
}

/// The `(key, n)` pairs of `processed n=… k=…;` lines, in log order.
fn processed_with_keys(logs: &str) -> Vec<(String, u64)> {
    logs.match_indices("processed n=")
        .filter_map(|(at, _)| {
            let rest = &logs[at + "processed n=".len()..];
            let (n, rest) = rest.split_once(" k=")?;
            let (k, _) = rest.split_once(';')?;
            Some((k.to_owned(), n.parse().ok()?))
        })
        .collect()
}

/// Waits until every `n` in `0..count` was logged as `<word>` in `logs()`; panics with what is
/// missing.
async fn wait_for_all(logs: impl Fn() -> String, word: &str, count: u64, within: Duration) -> Vec<u64> {
    let deadline = Instant::now() + within;
    loop {
        let text = logs();
        let got = seen(&text, word);
        let missing: Vec<u64> = (0..count).filter(|n| !got.contains(n)).collect();
        if missing.is_empty() {
            return got;
        }
        assert!(Instant::now() < deadline, "never {word}: {missing:?}\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn duplicates(ns: &[u64]) -> Vec<u64> {
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for n in ns {
        *counts.entry(*n).or_default() += 1;
    }
    let mut dup: Vec<u64> = counts.into_iter().filter(|(_, c)| *c > 1).map(|(n, _)| n).collect();
    dup.sort_unstable();
    dup
}

async fn publishes_and_consumes_each_message_once(backend: Backend) {
    let s = Setup::new(backend, 8, "");
    let j = s.start();
    post(&j, 0..50, 5).await;
    wait_for_all(|| j.logs(), "processed", 50, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = seen(&j.logs(), "processed");
    assert_eq!(duplicates(&got), Vec::<u64>::new(), "processed twice without a failure:\n{}", j.logs());
}

/// Each message is acknowledged only after its route finished it: killed mid-route, the
/// process loses nothing, and the next one runs what was not finished.
async fn acks_after_the_route_so_a_sigkill_redelivers(backend: Backend) {
    let s = Setup::new(backend, 4, "  - delay: 300ms\n");
    let j = s.start();
    post(&j, 0..20, 4).await;
    j.wait_for_log("processed n=", Duration::from_secs(30));
    // The log as of the kill: a message that finished (and was acknowledged) after a look at
    // the log but before the kill is not redelivered, and must count as processed.
    let first = j.crash_keeping_log();
    let before = seen(&first, "processed");
    assert!(before.len() < 20, "the crash came too late to test anything: {before:?}");
    tokio::time::sleep(backend.restart_after_kill()).await;

    let j = s.start();
    // At least once: the unfinished ones run again; a finished one may too, if the process
    // died before its acknowledgement was committed.
    let all = wait_for_all(|| format!("{first}{}", j.logs()), "processed", 20, Duration::from_secs(60)).await;
    eprintln!(
        "{backend:?}: {} processed before the kill, {} run twice over both runs",
        before.len(),
        duplicates(&all).len()
    );
}

async fn dead_letters_go_to_a_topic_on_the_bus(backend: Backend) {
    let s = Setup::new(backend, 4, "  - transform: 'if body.n % 5 == 0 { throw \"refused\" } body'\n");
    let tag = &s.tag;
    std::fs::write(
        s.dir.path().join("routes/work.yaml"),
        format!(
            "{}on_error:\n  retry: {{ attempts: 1 }}\n  dead_letter: {{ connector: bus, topic: dlq-{tag} }}\n",
            work_route(tag, 4, "  - transform: 'if body.n % 5 == 0 { throw \"refused\" } body'\n", "processed")
        ),
    )
    .expect("write");
    std::fs::write(
        s.dir.path().join("routes/dlq.yaml"),
        format!(
            "route: dlq-{tag}\nfrom: {{ bus: {{ topic: dlq-{tag} }} }}\nsteps:\n  - log: \"dead n=${{body.message.body.n}};\"\n"
        ),
    )
    .expect("write");
    let j = s.start();
    post(&j, 0..20, 4).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logs = j.logs();
        let (dead, done) = (seen(&logs, "dead"), seen(&logs, "processed"));
        let mut dead_sorted = dead.clone();
        dead_sorted.sort_unstable();
        if dead_sorted == [0, 5, 10, 15] && done.len() == 16 {
            assert!(done.iter().all(|n| n % 5 != 0), "{done:?}");
            break;
        }
        assert!(Instant::now() < deadline, "dead {dead:?}, processed {done:?}\n{logs}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The route's `max_in_flight` holds on every backend: never more running at once.
async fn bounds_the_messages_in_flight(backend: Backend) {
    let s = Setup::new(backend, 2, "  - delay: 300ms\n");
    let j = s.start();
    post(&j, 0..10, 10).await;
    let gauge = format!("junction_route_in_flight{{route=\"{}\"}}", s.route());
    let all_processed = |logs: &str| seen(logs, "processed").len() >= 10;
    let most = j.highest_until(&gauge, all_processed, Duration::from_secs(60)).await;
    assert!(most <= 2.0, "{most} messages in flight with max_in_flight: 2");
    assert!(most >= 2.0, "the route never ran two at once ({most}): the measure saw nothing");
}

async fn a_paused_route_holds_its_messages_until_resumed(backend: Backend) {
    let s = Setup::new(backend, 4, "");
    let j = s.start();
    let c = reqwest::Client::new();
    let action = |what: &str| c.post(j.admin_url(&format!("/admin/routes/{}/{what}", s.route()))).bearer_auth(TOKEN);
    post(&j, 0..1, 1).await;
    wait_for_all(|| j.logs(), "processed", 1, Duration::from_secs(60)).await;
    assert_eq!(action("pause").send().await.expect("pause").status(), 200);
    post(&j, 1..11, 3).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(seen(&j.logs(), "processed"), [0], "a paused route ran messages:\n{}", j.logs());
    assert_eq!(action("resume").send().await.expect("resume").status(), 200);
    wait_for_all(|| j.logs(), "processed", 11, Duration::from_secs(30)).await;
}

/// SIGTERM lets the running messages finish and commits them: the next start runs the rest,
/// none twice.
async fn drains_on_stop(backend: Backend) {
    let s = Setup::new(backend, 4, "  - delay: 1s\n");
    let j = s.start();
    post(&j, 0..12, 12).await;
    j.wait_for_log("started n=", Duration::from_secs(30));
    let first = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let status = j.terminate_keeping_log(&first);
    assert!(status.success(), "{status}");
    let first = first.lock().expect("log").clone();
    let (started, done) = (seen(&first, "started"), seen(&first, "processed"));
    let unfinished: Vec<u64> = started.iter().filter(|n| !done.contains(n)).copied().collect();
    assert!(unfinished.is_empty(), "stopped with {unfinished:?} running:\n{first}");
    assert!(done.len() < 12, "the stop came too late to test anything: {done:?}");

    let j = s.start();
    wait_for_all(|| format!("{first}{}", j.logs()), "processed", 12, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = seen(&format!("{first}{}", j.logs()), "processed");
    assert_eq!(duplicates(&all), Vec::<u64>::new(), "a drained message ran again:\n{first}\n{}", j.logs());
}

/// A reload that changes the consuming route stops the old consumer (committing what it
/// finished) before its successor joins the group: none is run by both.
async fn a_reload_hands_the_group_over_without_duplicates(backend: Backend) {
    let s = Setup::new(backend, 4, "  - delay: 100ms\n");
    let j = s.start();
    post(&j, 0..20, 4).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen(&j.logs(), "processed").len() < 3 {
        assert!(Instant::now() < deadline, "nothing processed:\n{}", j.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::write(s.dir.path().join("routes/work.yaml"), work_route(&s.tag, 4, "  - delay: 100ms\n", "handled"))
        .expect("write");
    let c = reqwest::Client::new();
    let reload = c.post(j.admin_url("/admin/reload")).bearer_auth(TOKEN).send().await.expect("reload");
    assert_eq!(reload.status(), 200, "{}", reload.text().await.unwrap_or_default());
    post(&j, 20..40, 4).await;
    let both = |logs: &str| [seen(logs, "processed"), seen(logs, "handled")].concat();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = both(&j.logs());
        if (0..40).all(|n| got.contains(&n)) {
            break;
        }
        assert!(Instant::now() < deadline, "missing after the reload:\n{}", j.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = j.logs();
    assert!(!seen(&logs, "handled").is_empty(), "the reloaded route never ran:\n{logs}");
    assert_eq!(duplicates(&both(&logs)), Vec::<u64>::new(), "run by both consumers:\n{logs}");
}

/// One key's messages run in the order they were published, though the route runs 8 at once
/// and even-numbered messages take longer: without a lane per key, odd ones would overtake.
async fn keeps_order_per_key(backend: Backend) {
    let slow_evens =
        "  - choice:\n      when:\n        - if: body.n % 2 == 0\n          steps:\n            - delay: 150ms\n";
    let s = Setup::new(backend, 8, slow_evens);
    let j = s.start();
    // Three keys: each gets odd and even numbers.
    post(&j, 0..40, 3).await;
    wait_for_all(|| j.logs(), "processed", 40, Duration::from_secs(60)).await;
    let mut by_key: HashMap<String, Vec<u64>> = HashMap::new();
    for (k, n) in processed_with_keys(&j.logs()) {
        by_key.entry(k).or_default().push(n);
    }
    for (k, ns) in &by_key {
        assert!(ns.windows(2).all(|w| w[0] < w[1]), "key {k} out of order: {ns:?}");
    }
    assert_eq!(by_key.len(), 3);
}

/// An async HTTP route answers 202 once its queue topic on the bus holds the message (on
/// Kafka a topic the connector creates, `junction.http.<route>`), and runs it from there.
async fn an_async_route_queues_on_the_bus(backend: Backend) {
    let s = Setup::new(backend, 4, "");
    let tag = &s.tag;
    std::fs::write(
        s.dir.path().join("routes/accept.yaml"),
        format!(
            "route: accept-{tag}\nfrom: {{ http: {{ method: POST, path: /work, auth: none, async: true }} }}\nsteps:\n  - log: \"processed n=${{body.n}} k=${{body.k}};\"\n"
        ),
    )
    .expect("write");
    let j = s.start();
    let c = reqwest::Client::new();
    for n in 0..10 {
        let resp = c.post(j.url("/work")).body(format!("{{\"n\": {n}, \"k\": \"k0\"}}")).send().await.expect("post");
        assert_eq!(resp.status(), 202, "{}\n{}", resp.text().await.unwrap_or_default(), j.logs());
    }
    wait_for_all(|| j.logs(), "processed", 10, Duration::from_secs(60)).await;
}
