//! The `amqp` connector through the binary: its options checked at `file:line:col` (no broker
//! needed), the README's example valid, and against RabbitMQ on 127.0.0.1:5672 (or
//! `JUNCTION_TEST_AMQP`): the topology it declares, queues read as they are, a returned
//! (unroutable) message failing its publish, and a consumer that resumes by itself after its
//! connection was closed under it. What every bus must do is in `tests/bus_conformance.rs`.

mod common;

use std::time::{Duration, Instant};

use common::{Junction, amqp_url, junction, project, rabbitmqctl, sqlite_store, tag};

fn check(files: &[(&str, &str)]) -> (i32, String, String) {
    let dir = project(files);
    junction(&["check", dir.path().to_str().expect("utf-8")], &[("RABBIT_PASSWORD", "secret")])
}

#[test]
fn the_readmes_amqp_connector_is_valid() {
    common::assert_readme_example_checks("connectors:\n  rabbit:\n    kind: amqp", &[("RABBIT_PASSWORD", "secret")]);
}

#[test]
fn amqp_options_are_checked_at_their_line_and_column() {
    let cases = [
        ("    prefetc: 5\n", "junction.yaml:5:5: unknown field `prefetc`"),
        ("    delivery_limit: 0\n", "junction.yaml:5:21: `delivery_limit` is at least 1"),
        ("    exchanges: [{ name: x, type: sideways }]\n", "unknown variant `sideways`"),
        ("    url: \"http://nowhere\"\n", "not an AMQP URL"),
    ];
    for (line, expected) in cases {
        let config = if line.contains("url:") {
            format!("routes: [routes/]\nconnectors:\n  rabbit:\n    kind: amqp\n{line}")
        } else {
            format!(
                "routes: [routes/]\nconnectors:\n  rabbit:\n    kind: amqp\n{line}    url: \"amqp://127.0.0.1:5672/%2f\"\n"
            )
        };
        let (code, out, err) = check(&[("junction.yaml", &config), ("routes/.keep", "")]);
        assert_eq!(code, 1, "{config}\n{out}");
        assert!(err.contains(expected), "{line}: expected {expected:?} in\n{err}");
    }
    let yaml = "routes: [routes/]\nconnectors:\n  rabbit: { kind: amqp, url: \"amqp://127.0.0.1:5672/%2f\" }\n";
    let (code, _, err) = check(&[
        ("junction.yaml", yaml),
        ("routes/r.yaml", "route: r\nfrom: { connector: rabbit, queue: q, topics: [a] }\nsteps:\n  - log: x\n"),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("routes/r.yaml:2:") && err.contains("either a `queue`"), "{err}");
    // `bus: amqp://…` names the kind by its URL, and embedded-only settings are refused with it.
    let (code, out, err) =
        check(&[("junction.yaml", "routes: [routes/]\nbus: \"amqp://127.0.0.1:5672/%2f\"\n"), ("routes/.keep", "")]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = check(&[
        ("junction.yaml", "routes: [routes/]\nbus: \"amqp://127.0.0.1:5672/%2f\"\nbus_retention: 1h\n"),
        ("routes/.keep", ""),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("junction.yaml:3:") && err.contains("bus_retention"), "{err}");
}

/// The exchanges, queues and bindings in the options are declared (quorum queues with a delivery
/// limit and a dead-letter exchange); a route publishes to the exchange and another reads the
/// bound queue as it is, with the key, headers and where the message came from; the engine
/// counts the connector's calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_topology_carries_messages_from_an_exchange_to_a_queue() {
    let t = tag();
    let url = amqp_url();
    let dir = project(&[
        (
            "junction.yaml",
            &format!(
                "routes: [routes/]\nadmin: {{ listen: 127.0.0.1:0, token: amqp-test-token }}\nconnectors:\n  rabbit:\n    kind: amqp\n    url: \"{url}\"\n    exchanges: [{{ name: orders-{t}, type: direct }}]\n    queues: [{{ name: billing-{t}, delivery_limit: 3 }}]\n    bindings: [{{ queue: billing-{t}, exchange: orders-{t}, routing_key: created }}]\n"
            ),
        ),
        (
            "routes/send.yaml",
            &format!(
                "route: send-{t}\nfrom: {{ http: {{ method: POST, path: /send, auth: none }} }}\nsteps:\n  - set: {{ headers: {{ kind: '\"order\"' }} }}\n  - to: {{ connector: rabbit, exchange: orders-{t}, routing_key: created }}\n"
            ),
        ),
        (
            "routes/read.yaml",
            &format!(
                "route: read-{t}\nfrom: {{ connector: rabbit, queue: billing-{t} }}\nsteps:\n  - log: \"got n=${{body.n}} kind=${{headers.kind}} queue=${{meta.source.queue}} key=${{meta.source.routing_key}};\"\n"
            ),
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let c = reqwest::Client::new();
    for n in 0..5 {
        let resp = c.post(j.url("/send")).body(format!("{{\"n\": {n}}}")).send().await.expect("send");
        assert_eq!(resp.status(), 200, "{}\n{}", resp.text().await.unwrap_or_default(), j.logs());
    }
    for n in 0..5 {
        j.wait_for_log(&format!("got n={n} kind=order queue=billing-{t} key=created;"), Duration::from_secs(30));
    }
    // The engine counts every connector's calls, whatever its kind: the five publishes.
    let metrics = c.get(j.admin_url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("junction_connector_calls_total{connector=\"rabbit\",outcome=\"ok\"} 5"), "{metrics}");
    let queues = rabbitmqctl(&["list_queues", "-q", "name", "type", "arguments"]);
    let line = queues.lines().find(|l| l.starts_with(&format!("billing-{t}"))).expect("the declared queue");
    assert!(line.contains("quorum"), "{line}");
    assert!(line.contains("x-delivery-limit") && line.contains('3'), "{line}");
    assert!(line.contains("x-dead-letter-exchange") && line.contains("junction.dlx"), "{line}");
    assert!(queues.contains("junction.dead-letters") && queues.contains("junction.unrouted"), "{queues}");
}

/// A publish RabbitMQ returns (`mandatory`: no queue is bound to its routing key) fails: the
/// route retries it and dead-letters it, rather than taking the confirm alone as delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_publish_is_not_taken_as_delivered() {
    let t = tag();
    let url = amqp_url();
    let dir = project(&[
        (
            "junction.yaml",
            &format!(
                "routes: [routes/]\nconnectors:\n  rabbit:\n    kind: amqp\n    url: \"{url}\"\n    exchanges: [{{ name: nowhere-{t}, type: direct }}]\n"
            ),
        ),
        (
            "routes/send.yaml",
            &format!(
                "route: send-{t}\nfrom: {{ http: {{ method: POST, path: /send, auth: none }} }}\nsteps:\n  - to: {{ connector: rabbit, exchange: nowhere-{t}, routing_key: nobody }}\non_error:\n  retry: {{ attempts: 2, initial: 10ms }}\n"
            ),
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let resp = reqwest::Client::new().post(j.url("/send")).body("{\"n\": 1}").send().await.expect("send");
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(status, 503, "{body}\n{}", j.logs());
    assert!(body.contains("dead_letter_id"), "{body}");
    assert!(j.logs().contains("no queue is bound to `nobody` on exchange `nowhere-"), "{}", j.logs());
}

/// The broker closes the consumer's connection (as a restart would): the consumer connects
/// again with backoff and goes on reading, and nothing posted before or after is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_resumes_by_itself_after_its_connection_is_closed() {
    let t = tag();
    let url = amqp_url();
    let dir = project(&[
        ("junction.yaml", &format!("routes: [routes/]\nbus: \"{url}\"\n")),
        (
            "routes/send.yaml",
            &format!(
                "route: send-{t}\nfrom: {{ http: {{ method: POST, path: /send, auth: none }} }}\nsteps:\n  - to: {{ connector: bus, topic: work-{t} }}\non_error:\n  retry: {{ attempts: 20, initial: 100ms, max: 1s }}\n"
            ),
        ),
        (
            "routes/read.yaml",
            &format!(
                "route: read-{t}\nfrom: {{ bus: {{ topic: work-{t} }} }}\nsteps:\n  - log: \"got n=${{body.n}};\"\n"
            ),
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let c = reqwest::Client::new();
    let post = |n: u32| c.post(j.url("/send")).body(format!("{{\"n\": {n}}}")).send();
    for n in 0..5 {
        assert_eq!(post(n).await.expect("send").status(), 200, "{}", j.logs());
    }
    j.wait_for_log("got n=4;", Duration::from_secs(30));

    let name = format!("junction bus {}", j.pid());
    let closed = close_connections_named(&name);
    assert!(
        closed > 0,
        "no RabbitMQ connection named {name:?}:\n{}",
        rabbitmqctl(&["list_connections", "-q", "pid", "client_properties"])
    );
    for n in 5..10 {
        let resp = post(n).await.expect("send");
        assert_eq!(resp.status(), 200, "{}\n{}", resp.text().await.unwrap_or_default(), j.logs());
    }
    for n in 5..10 {
        j.wait_for_log(&format!("got n={n};"), Duration::from_secs(60));
    }
    assert!(j.logs().contains("consuming again") || j.logs().contains("retrying"), "{}", j.logs());
}

/// Closes every connection whose client named itself `name`; how many.
fn close_connections_named(name: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = rabbitmqctl(&["list_connections", "-q", "pid", "client_properties"]);
        let pids: Vec<String> = listed
            .lines()
            .filter(|l| l.contains(&format!("\"{name}\"")))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect();
        if !pids.is_empty() || Instant::now() > deadline {
            for pid in &pids {
                rabbitmqctl(&["close_connection", pid, "closed by the test"]);
            }
            return pids.len();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The messages waiting in a route's queue are its `junction_consumer_lag`: a slow route (one
/// message at a time, a second each) behind ten messages shows some waiting, then none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routes_waiting_messages_are_its_consumer_lag() {
    let t = tag();
    let url = amqp_url();
    let dir = project(&[
        (
            "junction.yaml",
            &format!("routes: [routes/]\nbus: \"{url}\"\nadmin: {{ listen: 127.0.0.1:0, token: amqp-test-token }}\n"),
        ),
        (
            "routes/send.yaml",
            &format!(
                "route: send-{t}\nfrom: {{ http: {{ method: POST, path: /send, auth: none }} }}\nsteps:\n  - to: {{ connector: bus, topic: slow-{t} }}\n"
            ),
        ),
        (
            "routes/read.yaml",
            &format!(
                "route: read-{t}\nmax_in_flight: 1\nfrom: {{ bus: {{ topic: slow-{t} }} }}\nsteps:\n  - delay: 1s\n  - log: \"done n=${{body.n}};\"\n"
            ),
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let c = reqwest::Client::new();
    for n in 0..12 {
        let resp = c.post(j.url("/send")).body(format!("{{\"n\": {n}}}")).send().await.expect("send");
        assert_eq!(resp.status(), 200, "{}\n{}", resp.text().await.unwrap_or_default(), j.logs());
    }
    let series = format!("junction_consumer_lag{{route=\"read-{t}\",topic=\"slow-{t}\",partition=\"0\"}}");
    let most = j.highest_until(&series, |log| log.contains("done n=11;"), Duration::from_secs(60)).await;
    assert!(most >= 2.0, "at most {most} messages were seen waiting:\n{}", j.logs());
    // Once all are done, the next measure shows none waiting.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let metrics = c.get(j.admin_url("/metrics")).send().await.expect("metrics").text().await.expect("text");
        if metrics.lines().any(|l| l == format!("{series} 0")) {
            break;
        }
        assert!(Instant::now() < deadline, "the lag did not fall to 0:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A message that kills its consumer every time (SIGKILL while the route holds it) stops
/// coming back after `delivery_limit` deliveries: RabbitMQ dead-letters it into
/// `<exchange>.dead-letters`, where a route can read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_killing_its_consumer_is_dead_lettered() {
    let t = tag();
    let url = amqp_url();
    let limit = 2;
    let dir = project(&[
        (
            "junction.yaml",
            &format!(
                "routes: [routes/]\nconnectors:\n  rabbit: {{ kind: amqp, url: \"{url}\", exchange: ex-{t}, delivery_limit: {limit} }}\n"
            ),
        ),
        (
            "routes/send.yaml",
            &format!(
                "route: send-{t}\nfrom: {{ http: {{ method: POST, path: /send, auth: none }} }}\nsteps:\n  - to: {{ connector: rabbit, topic: poison-{t} }}\n"
            ),
        ),
        (
            "routes/hold.yaml",
            &format!(
                "route: hold-{t}\nfrom: {{ connector: rabbit, topic: poison-{t} }}\nsteps:\n  - log: \"holding n=${{body.n}};\"\n  - delay: 120s\n"
            ),
        ),
        (
            "routes/dead.yaml",
            &format!(
                "route: dead-{t}\nfrom: {{ connector: rabbit, queue: ex-{t}.dead-letters }}\nsteps:\n  - log: \"dead n=${{body.n}} from=${{meta.source.routing_key}};\"\n"
            ),
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let mut holds = 0;
    let mut sent = false;
    loop {
        let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
        if !sent {
            // The consumer declared its queue before anything is published to its topic.
            j.wait_for_log("consuming from RabbitMQ", Duration::from_secs(30));
            let resp = reqwest::Client::new().post(j.url("/send")).body("{\"n\": 7}").send().await.expect("send");
            assert_eq!(resp.status(), 200, "{}", j.logs());
            sent = true;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let logs = loop {
            let logs = j.logs();
            if logs.contains("holding n=7;") || logs.contains("dead n=7") {
                break logs;
            }
            assert!(Instant::now() < deadline, "neither held nor dead-lettered:\n{logs}");
            std::thread::sleep(Duration::from_millis(50));
        };
        if logs.contains("dead n=7") {
            assert!(logs.contains(&format!("dead n=7 from=poison-{t};")), "{logs}");
            assert!(!logs.contains("holding n=7;"), "a dead-lettered message came back:\n{logs}");
            j.terminate();
            break;
        }
        holds += 1;
        assert!(holds <= limit + 2, "held {holds} times with a delivery limit of {limit}:\n{logs}");
        j.crash();
    }
    assert!(holds > limit, "dead-lettered after {holds} deliveries, before the limit of {limit}");
}
