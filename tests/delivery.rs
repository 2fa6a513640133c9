//! Delivery guarantees through the running binary: retries honouring Retry-After, dead
//! letters listed and replayed, and nothing lost when the process is killed — on SQLite and
//! on PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::{Junction, PgDatabase, Stub, junction, project, sqlite_store};

fn forwarding_project(api: &str) -> tempfile::TempDir {
    project(&[
        (
            "routes/dlq.yaml",
            "route: dlq\nfrom: { bus: { topic: dlq.forward } }\nsteps:\n  - log: \"dead letter ${body.dead_letter_id} of ${body.route} at ${body.step} after ${body.attempts}: deal ${body.message.body.deal}\"\n",
        ),
        (
            "junction.yaml",
            &format!("routes: [routes/]\nconnectors:\n  api: {{ kind: http, base_url: \"{api}\", timeout: 2s }}\n"),
        ),
        (
            "routes/forward.yaml",
            "route: forward\nfrom: { http: { method: POST, path: /forward, auth: none } }\nsteps:\n  - request: { connector: api, method: POST, path: /deals }\non_error:\n  retry: { attempts: 3, initial: 100ms, max: 2s }\n  dead_letter: { connector: bus, topic: dlq.forward }\n",
        ),
    ])
}

#[tokio::test]
async fn retries_honour_retry_after_then_succeed() {
    let api = Stub::start(vec![(503, "retry-after: 1"), (200, "")]);
    let dir = forwarding_project(&api.url);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let started = Instant::now();
    let resp = reqwest::Client::new().post(j.url("/forward")).body(r#"{"deal": 1}"#).send().await.expect("send");
    assert_eq!(resp.status(), 200, "{}", j.logs());
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 was not honoured ({:?})",
        started.elapsed()
    );
    assert_eq!(api.count(), 2);
}

#[tokio::test]
async fn failures_are_dead_lettered_listed_and_replayed() {
    let api = Stub::start(vec![(400, "")]);
    let dir = forwarding_project(&api.url);
    let (_tmp, store) = sqlite_store();
    let env = [("JUNCTION_STORE", store.as_str())];
    let j = Junction::start(dir.path(), &env);
    let resp = reqwest::Client::new().post(j.url("/forward")).body(r#"{"deal": 7}"#).send().await.expect("send");
    assert_eq!(resp.status(), 502);
    let problem: serde_json::Value = resp.json().await.expect("problem");
    assert_eq!(problem["type"], "https://junction.dev/problems/route-failed");
    let id = problem["dead_letter_id"].as_str().expect("a dead letter id").to_owned();
    assert_eq!(api.count(), 1, "a 400 is fatal: no retries");
    // The route's dead_letter endpoint got the envelope: the failure and the original message.
    j.wait_for_log(&format!("dead letter {id} of forward at 1:request after 1: deal 7"), Duration::from_secs(5));
    drop(j);

    let path = dir.path().to_str().expect("utf-8");
    let (code, out, err) = junction(&["dead-letters", "list", path, "--json"], &env);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value =
        serde_json::from_str(out.lines().next().expect("one dead letter")).expect("json line");
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(listed["route"], "forward");
    assert_eq!(listed["step"], "1:request");
    assert_eq!(listed["message"]["body"], serde_json::json!({"deal": 7}));
    assert_eq!(listed["message"]["meta"]["source"]["method"], "POST");
    assert_eq!(listed["message"]["meta"]["route"], "forward");
    assert_eq!(listed["message"]["meta"]["source"]["request_id"], problem["request_id"]);
    assert!(listed["error"].as_str().expect("error").contains("400"), "{listed}");

    api.answer_always(200);
    let (code, out, err) = junction(&["dead-letters", "replay", &id, path], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("done"), "{out}");
    assert_eq!(api.count(), 2);
    let (code, _, err) = junction(&["dead-letters", "replay", &id, path], &env);
    assert_eq!(code, 1, "a second replay of the same dead letter must be refused");
    assert!(err.contains("already replayed"), "{err}");
    assert_eq!(api.count(), 2);
    let (_, out, _) = junction(&["dead-letters", "list", path], &env);
    assert!(out.trim().is_empty(), "a replayed dead letter is no longer listed by default: {out}");
    let (_, out, _) = junction(&["dead-letters", "list", path, "--all"], &env);
    assert!(out.contains("(replayed)"), "{out}");
}

/// Accepted messages survive a kill -9 in the middle of processing.
async fn nothing_accepted_is_lost_on_a_crash(store: &str) {
    let dir = project(&[
        ("junction.yaml", "routes: [routes/]\n"),
        (
            "routes/accept.yaml",
            "route: accept\nfrom: { http: { method: POST, path: /work, auth: none, async: true } }\nmax_in_flight: 4\nsteps:\n  - delay: 300ms\n  - to: { connector: bus, topic: done }\n",
        ),
        ("routes/done.yaml", "route: done\nfrom: { bus: { topic: done } }\nsteps:\n  - log: \"processed ${body.n}\"\n"),
    ]);
    let env = [("JUNCTION_STORE", store)];
    let j = Junction::start(dir.path(), &env);
    let c = reqwest::Client::new();
    const N: usize = 20;
    for n in 0..N {
        let resp = c.post(j.url("/work")).body(format!("{{\"n\": {n}}}")).send().await.expect("send");
        assert_eq!(resp.status(), 202);
    }
    j.crash();

    let j = Junction::start(dir.path(), &env);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = j.logs();
        let missing: Vec<usize> = (0..N).filter(|n| !logs.contains(&format!("\"processed {n}\""))).collect();
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "lost after the crash: {missing:?}\n{logs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn nothing_accepted_is_lost_on_a_crash_sqlite() {
    let (_tmp, store) = sqlite_store();
    nothing_accepted_is_lost_on_a_crash(&store).await;
}

#[tokio::test]
async fn nothing_accepted_is_lost_on_a_crash_postgres() {
    let db = PgDatabase::create().await;
    nothing_accepted_is_lost_on_a_crash(&db.url).await;
}

/// An async route's topic holds at most `bus_max_backlog` unprocessed messages: past it the
/// gateway answers 503 with Retry-After instead of storing more, and takes messages again
/// once the consumer catches up. Everything accepted is processed.
#[tokio::test]
async fn an_async_route_past_its_backlog_answers_503_until_it_catches_up() {
    let dir = project(&[
        ("junction.yaml", "routes: [routes/]\nbus_max_backlog: 3\n"),
        (
            "routes/accept.yaml",
            "route: accept\nfrom: { http: { method: POST, path: /work, auth: none, async: true } }\nmax_in_flight: 1\nsteps:\n  - delay: 700ms\n  - log: \"worked ${body.n}\"\n",
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let c = reqwest::Client::new();
    let post = |n: u32| c.post(j.url("/work")).body(format!("{{\"n\": {n}}}")).send();
    for n in 0..3 {
        assert_eq!(post(n).await.expect("send").status(), 202);
    }
    let resp = post(3).await.expect("send");
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let body: serde_json::Value = resp.json().await.expect("problem+json");
    assert_eq!(body["type"], "https://junction.dev/problems/backlog-full", "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("bus_max_backlog (3)")), "{body}");

    // As the consumer works through the backlog, the route takes messages again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if post(3).await.expect("send").status() == 202 {
            break;
        }
        assert!(Instant::now() < deadline, "the backlog never made room:\n{}", j.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for n in 0..4 {
        j.wait_for_log(&format!("worked {n}\""), Duration::from_secs(10));
    }
}

/// An idempotent step's keys outlive a restart; a message that failed leaves no key, so the
/// caller's second try passes.
async fn idempotent_keys_outlive_a_restart(store: &str) {
    let dir = project(&[
        ("junction.yaml", "routes: [routes/]\n"),
        (
            "routes/pay.yaml",
            "route: pay\nfrom: { http: { method: POST, path: /pay, auth: none } }\nsteps:\n  - idempotent: { key: body.id, ttl: 1h }\n  - transform: pay.rhai\n  - log: \"paid ${body.id}\"\n",
        ),
        ("transforms/pay.rhai", "if body.fail { throw \"declined\" }\nbody\n"),
    ]);
    let env = [("JUNCTION_STORE", store)];
    let c = reqwest::Client::new();
    let pay = |j: &Junction, id: &str, fail: bool| {
        c.post(j.url("/pay")).body(format!("{{\"id\": \"{id}\", \"fail\": {fail}}}")).send()
    };
    let j = Junction::start(dir.path(), &env);
    assert_eq!(pay(&j, "p1", false).await.expect("send").status(), 200);
    assert_eq!(pay(&j, "p1", false).await.expect("send").status(), 204, "a duplicate is dropped");
    assert_eq!(pay(&j, "p2", true).await.expect("send").status(), 422);
    assert!(j.terminate().success());

    let j = Junction::start(dir.path(), &env);
    assert_eq!(pay(&j, "p1", false).await.expect("send").status(), 204, "still a duplicate after the restart");
    assert_eq!(pay(&j, "p2", false).await.expect("send").status(), 200, "p2 failed, so it left no key");
    j.wait_for_log("paid p2", Duration::from_secs(5));
    assert!(!j.logs().contains("paid p1"), "{}", j.logs());
}

#[tokio::test]
async fn idempotent_keys_outlive_a_restart_sqlite() {
    let (_tmp, store) = sqlite_store();
    idempotent_keys_outlive_a_restart(&store).await;
}

#[tokio::test]
async fn idempotent_keys_outlive_a_restart_postgres() {
    let db = PgDatabase::create().await;
    idempotent_keys_outlive_a_restart(&db.url).await;
}

/// With `cache: redis://…` an idempotent step keeps its keys in Redis, shared by every
/// instance: two instances with stores of their own still drop each other's duplicates.
#[tokio::test]
async fn idempotent_keys_are_shared_through_redis() {
    let redis = std::env::var("JUNCTION_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let dir = project(&[
        ("junction.yaml", "routes: [routes/]\n"),
        (
            "routes/pay.yaml",
            "route: pay\nfrom: { http: { method: POST, path: /pay, auth: none } }\nsteps:\n  - idempotent: { key: body.id, ttl: 1h }\n  - transform: pay.rhai\n  - log: \"paid ${body.id}\"\n",
        ),
        ("transforms/pay.rhai", "if body.fail { throw \"declined\" }\nbody\n"),
    ]);
    // Keys live an hour in Redis: each run pays ids of its own.
    let run = uuid::Uuid::new_v4();
    let (p1, p2) = (format!("p1-{run}"), format!("p2-{run}"));
    let ((_a, store_a), (_b, store_b)) = (sqlite_store(), sqlite_store());
    let a = Junction::start(dir.path(), &[("JUNCTION_STORE", &store_a), ("JUNCTION_CACHE", &redis)]);
    let b = Junction::start(dir.path(), &[("JUNCTION_STORE", &store_b), ("JUNCTION_CACHE", &redis)]);
    let c = reqwest::Client::new();
    let pay = |j: &Junction, id: &str, fail: bool| {
        c.post(j.url("/pay")).body(format!("{{\"id\": \"{id}\", \"fail\": {fail}}}")).send()
    };
    assert_eq!(pay(&a, &p1, false).await.expect("send").status(), 200);
    assert_eq!(pay(&b, &p1, false).await.expect("send").status(), 204, "a duplicate at another instance");
    assert_eq!(pay(&a, &p2, true).await.expect("send").status(), 422);
    assert_eq!(pay(&b, &p2, false).await.expect("send").status(), 200, "p2 failed, so it left no key");
    b.wait_for_log(&format!("paid {p2}"), Duration::from_secs(5));
    assert!(!b.logs().contains(&format!("paid {p1}")), "{}", b.logs());
}
