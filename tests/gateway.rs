//! The gateway through the running binary: replies, problem+json for bad input, async
//! acceptance through the durable bus, load shedding, graceful stop.

mod common;

use std::time::Duration;

use common::{Junction, deal, project, root, sqlite_store};
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn problem(resp: reqwest::Response, status: u16, kind: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(ct, "application/problem+json");
    let body: Value = resp.json().await.expect("problem is JSON");
    assert_eq!(body["type"], format!("https://junction.dev/problems/{kind}"), "{body}");
    assert_eq!(body["status"], status);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_masterdeal_routes_and_answers_bad_input_with_problems() {
    // The new deal's row goes to the DWH: a reachable one, so that no load is still retrying
    // (and holding the stop for up to its shutdown_timeout) when the test stops Junction.
    let dwh = junction_simulators::clickhouse::ClickHouse::start("127.0.0.1:0", "default", "").await.expect("DWH");
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(&root(), &[("JUNCTION_STORE", &store), ("DWH_URL", &dwh.url)]);
    let c = client();

    let resp = c
        .post(j.url("/api/deals/preview"))
        .header("content-type", "application/json")
        .header("x-request-id", "req-42")
        .body(deal())
        .send()
        .await
        .expect("preview");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "req-42");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(
        body,
        json!({"external_id":"crm:D-100245","name":"Spring campaign 2027 / Romashka LLC",
               "advertiser":{"name":"Romashka LLC","inn":"7707083893","kpp":"770101001"},
               "owner":"ivanov@agency.example","amount":1250000.5,"currency":"RUB","budget":1250000.5,
               "status":"signed","channels":["search","social","video","display","audio"],"source":"crm"})
    );

    let resp = c
        .post(j.url("/api/deals/preview"))
        .header("content-type", "application/json")
        .body("{\"id\": ")
        .send()
        .await
        .expect("send");
    let p = problem(resp, 400, "malformed-json").await;
    assert_eq!(p["line"], 1);

    let resp = c
        .post(j.url("/api/deals/preview"))
        .header("content-type", "application/json")
        .body(r#"{"id": 5, "title": "t"}"#)
        .send()
        .await
        .expect("send");
    let p = problem(resp, 422, "schema-violation").await;
    let pointers: Vec<&str> =
        p["errors"].as_array().expect("errors").iter().filter_map(|e| e["pointer"].as_str()).collect();
    assert!(pointers.contains(&"/id"), "{p}");

    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(2 << 20));
    let resp = c
        .post(j.url("/api/deals/preview"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("send");
    problem(resp, 413, "body-too-large").await;

    let resp = c.get(j.url("/no/such/path")).send().await.expect("send");
    problem(resp, 404, "not-found").await;

    let resp = c.get(j.url("/api/deals/preview")).send().await.expect("send");
    assert_eq!(resp.headers()["allow"], "POST");
    problem(resp, 405, "method-not-allowed").await;

    // Accepted into the durable queue, then carried through two routes and the bus.
    // Unsigned, it is refused; signed by the CRM, it is accepted.
    let resp = c
        .post(j.url("/webhooks/crm/deals"))
        .header("content-type", "application/json")
        .body(deal())
        .send()
        .await
        .expect("webhook");
    assert_eq!(resp.status(), 401);
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs().to_string();
    let signature = junction_engine::gateway::auth::sign_webhook(b"dev-crm-webhook-secret", &ts, deal().as_bytes());
    let resp = c
        .post(j.url("/webhooks/crm/deals"))
        .header("content-type", "application/json")
        .header("x-timestamp", &ts)
        .header("x-signature", signature)
        .body(deal())
        .send()
        .await
        .expect("webhook");
    assert_eq!(resp.status(), 202);
    let accepted: Value = resp.json().await.expect("json");
    assert_eq!(accepted["status"], "accepted");
    // The deal's event, from the outbox through the bus.
    j.wait_for_log(
        "master deal crm:D-100245 (signed), budget 1250000.5 RUB: masterdeal.deal.created",
        Duration::from_secs(10),
    );

    let status = j.terminate();
    assert!(status.success(), "SIGTERM should end with exit 0, got {status:?}");
}

#[tokio::test]
async fn sheds_load_beyond_max_in_flight() {
    let dir = project(&[
        ("junction.yaml", "routes: [routes/]\n"),
        (
            "routes/slow.yaml",
            "route: slow\nfrom: { http: { method: POST, path: /slow, auth: none } }\nmax_in_flight: 1\nsteps:\n  - delay: 1s\n",
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let c = client();
    let first = tokio::spawn({
        let (c, url) = (c.clone(), j.url("/slow"));
        async move { c.post(url).body("{}").send().await.expect("send").status().as_u16() }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resp = c.post(j.url("/slow")).body("{}").send().await.expect("send");
    assert_eq!(resp.headers()["retry-after"], "1");
    problem(resp, 503, "overloaded").await;
    assert_eq!(first.await.expect("first request"), 200);
}

#[tokio::test]
async fn schedules_fire_and_calls_carry_headers_from_expressions() {
    let api = common::Stub::start(vec![(200, "")]);
    let dir = project(&[
        (
            "junction.yaml",
            &format!(
                "routes: [routes/]\nconnectors:\n  api: {{ kind: http, base_url: \"{}\", headers: {{ x-static: yes }} }}\n",
                api.url
            ),
        ),
        (
            "routes/tick.yaml",
            "route: tick\nfrom: { schedule: { every: 200ms, body: { kind: tick } } }\nsteps:\n  - set: { body: { n: \"42\" } }\n  - to: { connector: api, method: PUT, path: \"/ticks/${body.kind}\", headers: { x-kind: body.kind, x-n: body.n + 1 } }\n  - log: \"tick ${body.kind} sent\"\n",
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    j.wait_for_log("tick tick sent", Duration::from_secs(5));
    let first = api.heads.lock().expect("lock")[0].clone();
    assert!(first.starts_with("PUT /ticks/tick HTTP/1.1"), "{first}");
    let lower = first.to_ascii_lowercase();
    for header in ["x-kind: tick", "x-n: 43", "x-static: yes", "content-type: application/json"] {
        assert!(lower.contains(header), "missing {header} in:\n{first}");
    }
    assert_eq!(api.requests.lock().expect("lock")[0], r#"{"kind":"tick","n":42}"#);
}

#[tokio::test]
async fn path_parameters_and_aggregate_timeouts() {
    let dir = project(&[
        ("junction.yaml", "routes: [routes/]\n"),
        (
            "routes/deal.yaml",
            "route: deal\nfrom: { http: { method: GET, path: \"/deals/{id}/lines/{line}\", auth: none } }\nsteps:\n  - transform: { script: \"#{ id: meta.source.params.id, line: meta.source.params.line, q: meta.source.query.full }\" }\n",
        ),
        (
            "routes/batch.yaml",
            "route: batch\nfrom: { schedule: { every: 100ms, body: { n: 1 } } }\nsteps:\n  - aggregate: { key: '\"all\"', size: 1000, timeout: 350ms }\n  - log: \"batch of ${body.len()}\"\n",
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let body: Value =
        client().get(j.url("/deals/D-7/lines/3?full=yes")).send().await.expect("send").json().await.expect("json");
    assert_eq!(body, json!({"id": "D-7", "line": "3", "q": "yes"}));
    // The group never reaches its size: only the timeout can release it.
    j.wait_for_log("batch of ", Duration::from_secs(5));
}

#[tokio::test]
async fn a_timeout_answers_but_the_route_finishes() {
    let dir = project(&[
        ("junction.yaml", "routes: [routes/]\n"),
        (
            "routes/slow.yaml",
            "route: slow\nfrom: { http: { method: POST, path: /slow, auth: none, timeout: 200ms } }\nsteps:\n  - delay: 600ms\n  - log: \"slow finished ${body.n}\"\n",
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let resp = client().post(j.url("/slow")).body(r#"{"n": 7}"#).send().await.expect("send");
    let p = problem(resp, 503, "timeout").await;
    assert!(p["message_id"].is_string(), "{p}");
    j.wait_for_log("slow finished 7", Duration::from_secs(5));
}

/// The gateway serves at most `max_connections` clients at once; the next waits to be
/// accepted until one leaves, rather than each costing memory without bound.
#[tokio::test]
async fn connections_past_max_connections_wait_their_turn() {
    let dir = project(&[
        ("junction.yaml", "routes: [routes/]\ngateway: { max_connections: 2 }\n"),
        (
            "routes/ping.yaml",
            "route: ping\nfrom: { http: { method: GET, path: /ping, auth: none } }\nsteps:\n  - transform: { script: \"#{ pong: true }\" }\n",
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    // Two clients keep a connection open each.
    let (a, b) = (client(), client());
    for c in [&a, &b] {
        assert_eq!(c.get(j.url("/ping")).send().await.expect("send").status(), 200);
    }
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().expect("client");
    assert!(impatient.get(j.url("/ping")).send().await.is_err(), "a third connection is not served meanwhile");
    // One leaves; the next client is served.
    drop(a);
    let resp =
        client().get(j.url("/ping")).timeout(Duration::from_secs(5)).send().await.expect("served once a slot is free");
    assert_eq!(resp.status(), 200);
    assert_eq!(b.get(j.url("/ping")).send().await.expect("send").status(), 200, "b kept its connection");
}

/// A connection that sends nothing, or sits idle after a request, is closed after
/// `gateway.idle_timeout`, so idle clients cannot keep the `max_connections` places taken.
#[tokio::test]
async fn idle_connections_are_closed_and_free_their_place() {
    use tokio::io::AsyncReadExt;
    let dir = project(&[
        ("junction.yaml", "routes: [routes/]\ngateway: { max_connections: 1, idle_timeout: 300ms }\n"),
        (
            "routes/ping.yaml",
            "route: ping\nfrom: { http: { method: GET, path: /ping, auth: none } }\nsteps:\n  - transform: { script: \"#{ pong: true }\" }\n",
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let mut silent = tokio::net::TcpStream::connect(&j.addr).await.expect("connect");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "a silent connection is closed: {read:?}");
    // The place it held is free; this client's kept-alive connection is closed when idle too.
    let first = client();
    assert_eq!(first.get(j.url("/ping")).send().await.expect("send").status(), 200);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let second = client().get(j.url("/ping")).timeout(Duration::from_secs(3)).send().await;
    assert_eq!(second.expect("served: the idle connection gave its place up").status(), 200);
}

#[tokio::test]
async fn aggregate_groups_outlive_crashes_and_restarts_on_sqlite() {
    let (_tmp, store) = sqlite_store();
    aggregate_groups_outlive_crashes_and_restarts(&store).await;
}

#[tokio::test]
async fn aggregate_groups_outlive_crashes_and_restarts_on_postgres() {
    let db = common::PgDatabase::create().await;
    aggregate_groups_outlive_crashes_and_restarts(&db.url).await;
}

/// Open groups live in the store: a crash loses none of their messages, a group released
/// but not yet delivered when the process died is delivered by the next one, and a group
/// whose timeout ran out while the engine was down completes as it starts.
async fn aggregate_groups_outlive_crashes_and_restarts(store: &str) {
    let dir = project(&[
        ("junction.yaml", "routes: [routes/]\n"),
        (
            "routes/batch.yaml",
            "route: batch\nfrom: { http: { method: POST, path: /items, auth: none } }\nsteps:\n  - aggregate: { key: body.order, size: 3, timeout: 2s }\n  - delay: 1s\n  - log: \"batch ${headers.aggregate_key}: ${body.len()} items, first ${body[0].n}, last ${body[body.len() - 1].n}\"\n",
        ),
    ]);
    let env = [("JUNCTION_STORE", store)];
    let post = |j: &Junction, order: &str, n: u32| {
        client().post(j.url("/items")).body(json!({ "order": order, "n": n }).to_string()).send()
    };

    // Two of A's three messages, then a crash: they were acked, so they must survive it.
    let j = Junction::start(dir.path(), &env);
    for n in [1, 2] {
        let resp = post(&j, "A", n).await.expect("send");
        assert!(resp.status().is_success(), "absorbed into the group: {}", resp.status());
    }
    j.crash();

    // The third completes A; the process dies while A is on its way (in the delay).
    let j = Junction::start(dir.path(), &env);
    let third = tokio::spawn(post(&j, "A", 3));
    tokio::time::sleep(Duration::from_millis(400)).await;
    j.crash();
    let _ = third.await;

    // The next process delivers A, whole and in order, and keeps B open past its stop.
    let j = Junction::start(dir.path(), &env);
    j.wait_for_log("batch A: 3 items, first 1, last 3", Duration::from_secs(10));
    assert!(
        j.logs().contains("delivering aggregated groups an earlier process released but did not finish"),
        "A was taken over as a released group, not completed anew by its timeout:\n{}",
        j.logs()
    );
    let resp = post(&j, "B", 1).await.expect("send");
    assert!(resp.status().is_success(), "{}", resp.status());
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    assert!(j.terminate_keeping_log(&log).success());
    let logs = log.lock().expect("log").clone();
    assert!(!logs.contains("batch B"), "a stop keeps an open group in the store:\n{logs}");

    // B's two seconds pass while nothing runs; it completes as the engine starts.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let j = Junction::start(dir.path(), &env);
    j.wait_for_log("batch B: 1 items, first 1, last 1", Duration::from_secs(10));
    assert!(!j.logs().contains("batch A"), "A was delivered and settled before:\n{}", j.logs());

    // C stays open while its route loses the aggregate: the start says so, and keeps it.
    let resp = post(&j, "C", 1).await.expect("send");
    assert!(resp.status().is_success(), "{}", resp.status());
    assert!(j.terminate().success());
    std::fs::write(
        dir.path().join("routes/batch.yaml"),
        "route: batch\nfrom: { http: { method: POST, path: /items, auth: none } }\nsteps:\n  - log: \"no batching\"\n",
    )
    .expect("rewrite the route");
    let j = Junction::start(dir.path(), &env);
    j.wait_for_log("the store holds aggregated messages no loaded route takes", Duration::from_secs(5));
}

#[tokio::test]
async fn the_callers_trace_and_request_id_travel_to_logs_and_outbound_calls() {
    let api = common::Stub::start(vec![(200, "")]);
    let dir = project(&[
        (
            "junction.yaml",
            &format!("routes: [routes/]\nconnectors:\n  api: {{ kind: http, base_url: \"{}\" }}\n", api.url),
        ),
        (
            "routes/relay.yaml",
            "route: relay\nfrom: { http: { method: POST, path: /relay, auth: none } }\nsteps:\n  - log: relaying\n  - request: { connector: api, method: POST, path: /in }\n",
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let resp = client()
        .post(j.url("/relay"))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .header("x-request-id", "req-trace-1")
        .body("{}")
        .send()
        .await
        .expect("send");
    let status = resp.status();
    assert_eq!(status, 200, "{}", resp.text().await.unwrap_or_default());
    let head = api.heads.lock().expect("lock")[0].to_ascii_lowercase();
    assert!(head.contains(&format!("traceparent: 00-{trace}-")), "{head}");
    assert!(!head.contains("00f067aa0ba902b7"), "the outbound call is a span of its own: {head}");
    assert!(head.contains("x-request-id: req-trace-1"), "{head}");
    j.wait_for_log("\"message\":\"relaying\"", Duration::from_secs(5));
    let line = j.logs().lines().find(|l| l.contains("\"message\":\"relaying\"")).map(str::to_owned).expect("logged");
    assert!(
        line.contains(&format!("\"trace_id\":\"{trace}\"")) && line.contains("\"request_id\":\"req-trace-1\""),
        "{line}"
    );
    for field in ["\"route\":\"relay\"", "\"step\":\"1:log\"", "\"message_id\":"] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
}

#[tokio::test]
async fn sensitive_fields_never_reach_the_log() {
    let dir = project(&[
        ("junction.yaml", "routes: [routes/]\nlogging: { redact: [inn] }\n"),
        (
            "routes/signup.yaml",
            "route: signup\nfrom: { http: { method: POST, path: /signup, auth: none } }\nsteps:\n  - log: \"signup ${body}\"\n  - wire_tap: { connector: log }\n",
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let body = r#"{"name": "Ada", "password": "hunter2-secret", "company": {"inn": "7701234567"}}"#;
    let resp = client().post(j.url("/signup")).body(body).send().await.expect("send");
    assert_eq!(resp.status(), 200);
    // The route itself still has the values: only the log is masked.
    let echoed: Value = resp.json().await.expect("json");
    assert_eq!(echoed["company"]["inn"], "7701234567");
    // The `log` connector's line (not its "connector started" line at start-up).
    j.wait_for_log("\"message\":\"message\",\"connector\":\"log\"", Duration::from_secs(5));
    let logs = j.logs();
    assert!(logs.contains("signup") && logs.contains("Ada"), "{logs}");
    assert!(!logs.contains("hunter2-secret") && !logs.contains("7701234567"), "{logs}");
}
