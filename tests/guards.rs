//! A connector's `limits` and `breaker`, which the engine keeps for any kind: an outage opens
//! the breaker, the bus source of the route calling it takes nothing new until a probe finds
//! the partner back (a backlog, not a pile of dead letters); a rate limit in Redis holds for
//! every instance together.

mod common;

use std::time::{Duration, Instant};

use common::{Junction, Stub, junction, project, redis_url, sqlite_store};

const ADMIN: &str = "admin: { listen: 127.0.0.1:0, token: guards-test-token }\n";

/// The value of `series` on the admin API's `/metrics` (0 when absent).
async fn metric(j: &Junction, series: &str) -> f64 {
    let text =
        reqwest::Client::new().get(j.admin_url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{series} ")))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

async fn wait_for_metric(j: &Junction, series: &str, done: impl Fn(f64) -> bool, within: Duration) -> f64 {
    let deadline = Instant::now() + within;
    loop {
        let v = metric(j, series).await;
        if done(v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{series} is {v} after {within:?}:\n{}", j.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_holds_the_bus_source_back_until_the_partner_is_back() {
    let partner = Stub::start(vec![(503, "")]);
    let dir = project(&[
        (
            "junction.yaml",
            &format!(
                "routes: [routes/]\n{ADMIN}connectors:\n  partner:\n    kind: http\n    base_url: \"{}\"\n    breaker: {{ failures: 3, window: 30s, open_for: 6s }}\n",
                partner.url
            ),
        ),
        (
            "routes/accept.yaml",
            "route: accept\nfrom: { http: { method: POST, path: /jobs, auth: none } }\nsteps:\n  - to: { connector: bus, topic: jobs }\n",
        ),
        (
            "routes/work.yaml",
            "route: work\nmax_in_flight: 2\nfrom: { bus: { topic: jobs } }\nsteps:\n  - request: { connector: partner, method: POST, path: /jobs }\non_error:\n  retry: { attempts: 3, initial: 20ms, max: 100ms }\n",
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let c = reqwest::Client::new();
    for n in 0..20 {
        let resp = c.post(j.url("/jobs")).body(format!("{{\"n\": {n}}}")).send().await.expect("send");
        assert_eq!(resp.status(), 200, "{}", j.logs());
    }
    let state = "junction_connector_breaker_state{connector=\"partner\"}";
    wait_for_metric(&j, state, |v| v == 2.0, Duration::from_secs(20)).await;
    let received = "junction_route_messages_received_total{route=\"work\"}";
    let (taken, calls) = (metric(&j, received).await, partner.count());
    // Open: no new message is taken and the partner is left alone.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(metric(&j, received).await, taken, "the source took messages while the breaker was open");
    assert_eq!(partner.count(), calls, "calls went out while the breaker was open");
    assert!(taken < 20.0, "every message was taken before the breaker opened ({taken})");

    // The partner is back: the probe closes the breaker and the backlog drains.
    partner.answer_always(200);
    wait_for_metric(&j, state, |v| v == 0.0, Duration::from_secs(20)).await;
    let completed = "junction_route_messages_completed_total{route=\"work\"}";
    let dead = "junction_route_dead_lettered_total{route=\"work\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (done, dead) = (metric(&j, completed).await, metric(&j, dead).await);
        if done + dead == 20.0 {
            // Only what was in flight when the breaker opened may have run out of attempts.
            assert!(dead <= taken, "{dead} dead letters for {taken} messages taken before the breaker opened");
            assert!(done >= 20.0 - taken, "{done} completed");
            break;
        }
        assert!(Instant::now() < deadline, "completed {done}, dead-lettered {dead}:\n{}", j.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(metric(&j, "junction_connector_breaker_opened_total{connector=\"partner\"}").await >= 1.0);
    assert!(j.logs().contains("circuit breaker open"), "{}", j.logs());
}

/// Two instances with one Redis share the connector's bucket: 12 calls at 4 a second (burst 1)
/// take at least 2.75 s together, where each instance alone would allow its 6 in 1.25 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_for_every_instance_sharing_redis() {
    let partner = Stub::start(vec![(200, "")]);
    let name = format!("partner{}", common::tag().replace('-', ""));
    let dir = project(&[
        (
            "junction.yaml",
            &format!(
                "routes: [routes/]\nconnectors:\n  {name}:\n    kind: http\n    base_url: \"{}\"\n    limits: {{ per_second: 4, burst: 1, concurrency: 2 }}\n",
                partner.url
            ),
        ),
        (
            "routes/call.yaml",
            &format!(
                "route: call\nfrom: {{ http: {{ method: POST, path: /call, auth: none }} }}\nsteps:\n  - request: {{ connector: {name}, method: POST, path: /x }}\n"
            ),
        ),
    ]);
    let redis = redis_url();
    let (_a_tmp, a_store) = sqlite_store();
    let (_b_tmp, b_store) = sqlite_store();
    let a = Junction::start(dir.path(), &[("JUNCTION_STORE", &a_store), ("JUNCTION_CACHE", &redis)]);
    let b = Junction::start(dir.path(), &[("JUNCTION_STORE", &b_store), ("JUNCTION_CACHE", &redis)]);
    let c = reqwest::Client::new();
    let started = Instant::now();
    let mut calls = Vec::new();
    for n in 0..12 {
        let url = if n % 2 == 0 { a.url("/call") } else { b.url("/call") };
        let c = c.clone();
        calls.push(tokio::spawn(async move { c.post(url).body("{}").send().await.map(|r| r.status().as_u16()) }));
    }
    for call in calls {
        assert_eq!(call.await.expect("join").expect("send"), 200);
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(2600), "12 calls at 4/s across two instances took {took:?}");
    assert_eq!(partner.count(), 12);
}

#[test]
fn limits_and_breaker_are_checked_at_their_line_and_column() {
    let dir = project(&[(
        "junction.yaml",
        "routes: []\nconnectors:\n  one:\n    kind: http\n    base_url: http://127.0.0.1:1\n    limits: { per_second: 0 }\n  two:\n    kind: http\n    base_url: http://127.0.0.1:1\n    breaker: { failures: 3, windw: 10s }\n",
    )]);
    let (code, _, err) = junction(&["check", dir.path().to_str().expect("utf-8")], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("junction.yaml:6:13: `limits.per_second` must be above 0"), "{err}");
    assert!(err.contains("junction.yaml:10:") && err.contains("windw"), "{err}");
}
