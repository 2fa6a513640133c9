//! The `kafka` connector through the binary: its options checked at `file:line:col` (no
//! broker needed), the README's example valid, and a Kafka source and sink carrying keys and
//! headers over tansu on 127.0.0.1:9092 (or `JUNCTION_TEST_KAFKA`, started by `scripts/test`).
//! What every bus must do is in `tests/bus_conformance.rs`.

mod common;

use std::time::Duration;

use common::{Junction, junction, kafka_brokers, project, sqlite_store, tag};

fn check(files: &[(&str, &str)]) -> (i32, String, String) {
    let dir = project(files);
    junction(&["check", dir.path().to_str().expect("utf-8")], &[("KAFKA_PASSWORD", "secret")])
}

#[test]
fn the_readmes_kafka_connector_is_valid() {
    common::assert_readme_example_checks("connectors:\n  events:\n    kind: kafka", &[("KAFKA_PASSWORD", "secret")]);
}

#[test]
fn kafka_options_are_checked_at_their_line_and_column() {
    let cases = [
        ("    lingr: 5ms\n", "junction.yaml:5:5: unknown field `lingr`"),
        ("    partitions: 0\n", "junction.yaml:5:17: `partitions` is at least 1"),
        ("    topic_prefix: \"my env/\"\n", "junction.yaml:5:19: `my env/`: a topic name takes only"),
        ("    sasl: { mechanism: GSSAPI, username: u, password: \"${SASL_PASSWORD:-p}\" }\n", "not a SASL mechanism"),
        ("    options: { no.such.property: \"1\" }\n", "librdkafka refuses these options"),
    ];
    for (line, expected) in cases {
        let config =
            format!("routes: [routes/]\nconnectors:\n  events:\n    kind: kafka\n{line}    brokers: 127.0.0.1:9092\n");
        let (code, out, err) = check(&[("junction.yaml", &config), ("routes/.keep", "")]);
        assert_eq!(code, 1, "{config}\n{out}");
        assert!(err.contains(expected), "{line}: expected {expected:?} in\n{err}");
    }
    // A source's options are the kind's too.
    let (code, _, err) = check(&[
        ("junction.yaml", "routes: [routes/]\nconnectors:\n  events: { kind: kafka, brokers: \"127.0.0.1:9092\" }\n"),
        (
            "routes/r.yaml",
            "route: r\nfrom: { connector: events, topics: [a], checkpoint_limt: 5 }\nsteps:\n  - log: x\n",
        ),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("routes/r.yaml:2:") && err.contains("unknown field `checkpoint_limt`"), "{err}");
}

/// One route publishes with a key from an expression and a header; another reads the topic
/// as a consumer group and sees the body, the key, the header and where the record was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_sink_and_source_carry_keys_and_headers() {
    let tag = tag();
    let brokers = kafka_brokers();
    let dir = project(&[
        (
            "junction.yaml",
            &format!(
                "routes: [routes/]\nconnectors:\n  events: {{ kind: kafka, brokers: \"{brokers}\", partitions: 2 }}\n"
            ),
        ),
        (
            "routes/send.yaml",
            &format!(
                "route: send-{tag}\nfrom: {{ http: {{ method: POST, path: /send, auth: none }} }}\nsteps:\n  - set: {{ headers: {{ kind: '\"deal\"' }} }}\n  - to: {{ connector: events, topic: deals-{tag}, key: '\"D-\" + body.n' }}\n"
            ),
        ),
        (
            "routes/read.yaml",
            &format!(
                "route: read-{tag}\nfrom: {{ connector: events, topic: deals-{tag} }}\nsteps:\n  - log: \"got n=${{body.n}} key=${{meta.key}} kind=${{headers.kind}} topic=${{meta.source.topic}};\"\n"
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
        j.wait_for_log(&format!("got n={n} key=D-{n} kind=deal topic=deals-{tag};"), Duration::from_secs(60));
    }
    // The graph shows the source as the kind describes it.
    let (code, out, err) = junction(&["routes", dir.path().to_str().expect("utf-8")], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("kafka deals-{tag} as group read-{tag}")), "{out}");
}

/// `topic_prefix` names every topic and group the connector uses on the brokers: two
/// connectors on one cluster with different prefixes (two environments, two test runs) share
/// no messages though their routes name the same topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_prefix_keeps_two_environments_apart_on_one_cluster() {
    let tag = tag();
    let brokers = kafka_brokers();
    let route = |name: &str| {
        format!(
            "route: {name}-{tag}\nfrom: {{ connector: {name}, topic: deals }}\nsteps:\n  - log: \"{name} got n=${{body.n}} from ${{meta.source.topic}};\"\n"
        )
    };
    let send = |name: &str| {
        format!(
            "route: send-{name}-{tag}\nfrom: {{ http: {{ method: POST, path: /send/{name}, auth: none }} }}\nsteps:\n  - to: {{ connector: {name}, topic: deals }}\n"
        )
    };
    let dir = project(&[
        (
            "junction.yaml",
            &format!(
                "routes: [routes/]\nconnectors:\n  blue: {{ kind: kafka, brokers: \"{brokers}\", topic_prefix: blue-{tag}. }}\n  \
                 green: {{ kind: kafka, brokers: \"{brokers}\", topic_prefix: green-{tag}. }}\n"
            ),
        ),
        ("routes/send-blue.yaml", &send("blue")),
        ("routes/send-green.yaml", &send("green")),
        ("routes/blue.yaml", &route("blue")),
        ("routes/green.yaml", &route("green")),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let c = reqwest::Client::new();
    for (to, n) in [("blue", 1), ("blue", 2), ("green", 3)] {
        let resp = c.post(j.url(&format!("/send/{to}"))).body(format!("{{\"n\": {n}}}")).send().await.expect("send");
        assert_eq!(resp.status(), 200, "{}\n{}", resp.text().await.unwrap_or_default(), j.logs());
    }
    for (to, n) in [("blue", 1), ("blue", 2), ("green", 3)] {
        j.wait_for_log(&format!("{to} got n={n} from {to}-{tag}.deals;"), Duration::from_secs(60));
    }
    // The commits of each group are on their way; what the other environment published is
    // not read meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let logs = j.logs();
    assert_eq!(logs.matches(" got n=").count(), 3, "each message read once, by its own environment:\n{logs}");
    let (code, out, err) = junction(&["routes", dir.path().to_str().expect("utf-8")], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("kafka blue-{tag}.deals as group blue-{tag}.blue-{tag}")), "{out}");
}

/// `checkpoint_limit` bounds what one partition runs at once, below the route's own
/// `max_in_flight`: with one partition and a limit of 2, never more than 2 run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_limit_bounds_a_partition() {
    let tag = tag();
    let brokers = kafka_brokers();
    let dir = project(&[
        (
            "junction.yaml",
            &format!(
                "routes: [routes/]\nadmin: {{ listen: 127.0.0.1:9090, token: kafka-test-token-1 }}\nconnectors:\n  events: {{ kind: kafka, brokers: \"{brokers}\" }}\n"
            ),
        ),
        (
            "routes/send.yaml",
            &format!(
                "route: send-{tag}\nfrom: {{ http: {{ method: POST, path: /send, auth: none }} }}\nsteps:\n  - to: {{ connector: events, topic: slow-{tag} }}\n"
            ),
        ),
        (
            "routes/read.yaml",
            &format!(
                "route: read-{tag}\nfrom: {{ connector: events, topic: slow-{tag}, checkpoint_limit: 2 }}\nmax_in_flight: 8\nsteps:\n  - delay: 200ms\n  - log: \"done n=${{body.n}};\"\n"
            ),
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let c = reqwest::Client::new();
    for n in 0..10 {
        let resp = c.post(j.url("/send")).body(format!("{{\"n\": {n}}}")).send().await.expect("send");
        assert_eq!(resp.status(), 200, "{}", j.logs());
    }
    let gauge = format!("junction_route_in_flight{{route=\"read-{tag}\"}}");
    let most = j.highest_until(&gauge, |logs| logs.matches("done n=").count() >= 10, Duration::from_secs(60)).await;
    assert_eq!(most, 2.0, "checkpoint_limit 2 on one partition: at most (and here exactly) 2 at once");
}
