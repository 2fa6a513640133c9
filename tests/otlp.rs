//! Spans over OTLP/HTTP through the running binary: a request in the caller's trace yields a
//! route span, step spans and a client span per connector call (whatever its kind) nested as
//! the caller, the collector and the called API expect.

mod common;

use std::time::{Duration, Instant};

use common::{Junction, Stub, junction, project, sqlite_store};
use serde_json::Value;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// Every span the collector received so far.
fn received_spans(collector: &Stub) -> Vec<Value> {
    let bodies = collector.requests.lock().expect("lock").clone();
    let mut spans = Vec::new();
    for body in bodies {
        let request: Value = serde_json::from_str(&body).expect("an OTLP export is JSON");
        for resource in request["resourceSpans"].as_array().into_iter().flatten() {
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                spans.extend(scope["spans"].as_array().into_iter().flatten().cloned());
            }
        }
    }
    spans
}

/// Waits until the collector has a route span, three step spans and both client spans.
fn wait_for_spans(collector: &Stub, within: Duration) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let spans = received_spans(collector);
        let named =
            |prefix: &str| spans.iter().filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with(prefix))).count();
        if named("route ") >= 1 && named("step ") >= 3 && named("POST api") >= 1 && named("send bus") >= 1 {
            return spans;
        }
        assert!(start.elapsed() < within, "the collector did not get every span within {within:?}: {spans:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn attribute<'a>(span: &'a Value, key: &str) -> &'a Value {
    span["attributes"]
        .as_array()
        .and_then(|attrs| attrs.iter().find(|a| a["key"] == key))
        .map_or(&Value::Null, |a| &a["value"])
}

#[tokio::test]
async fn a_traced_request_exports_route_step_and_client_spans_in_the_callers_trace() {
    let collector = Stub::start(vec![(200, "")]);
    let api = Stub::start(vec![(200, "")]);
    let dir = project(&[
        (
            "junction.yaml",
            &format!(
                "routes: [routes/]\ntracing: {{ otlp: \"{}\", service_name: relay-test }}\nconnectors:\n  api: {{ kind: http, base_url: \"{}\" }}\n",
                collector.url, api.url
            ),
        ),
        (
            "routes/relay.yaml",
            "route: relay\nfrom: { http: { method: POST, path: /relay, auth: none } }\nsteps:\n  - log: relaying\n  - request: { connector: api, method: POST, path: /in }\n  - to: { connector: bus, topic: relayed }\n",
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let resp = reqwest::Client::new()
        .post(j.url("/relay?secret=1"))
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap_or_default());

    let spans = wait_for_spans(&collector, Duration::from_secs(10));
    for span in &spans {
        assert_eq!(span["traceId"], TRACE, "every span is in the caller's trace: {span}");
    }
    let route = spans.iter().find(|s| s["name"] == "route relay").expect("a route span");
    assert_eq!(route["kind"], 2, "a request served is a SERVER span: {route}");
    assert_eq!(route["parentSpanId"], CALLER_SPAN, "{route}");
    assert_eq!(attribute(route, "junction.route")["stringValue"], "relay");
    assert_eq!(attribute(route, "junction.outcome")["stringValue"], "completed");
    assert!(attribute(route, "junction.message_id")["stringValue"].is_string(), "{route}");

    let steps: Vec<&Value> =
        spans.iter().filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with("step "))).collect();
    assert_eq!(steps.len(), 3, "{steps:#?}");
    for step in &steps {
        assert_eq!(step["kind"], 1, "{step}");
        assert_eq!(step["parentSpanId"], route["spanId"], "steps nest under their route: {step}");
        assert_eq!(attribute(step, "junction.attempt")["intValue"], "1", "{step}");
    }

    let client = spans.iter().find(|s| s["name"] == "POST api").expect("a client span");
    assert_eq!(client["kind"], 3, "{client}");
    let request_step =
        steps.iter().find(|s| s["name"].as_str().is_some_and(|n| n.contains("request"))).expect("the request step");
    assert_eq!(client["parentSpanId"], request_step["spanId"], "the call nests under its step: {client}");
    assert_eq!(attribute(client, "http.request.method")["stringValue"], "POST");
    assert_eq!(attribute(client, "url.full")["stringValue"], format!("{}/in", api.url));
    assert_eq!(attribute(client, "http.response.status_code")["intValue"], "200");
    let started: u64 = client["startTimeUnixNano"].as_str().and_then(|t| t.parse().ok()).expect("a nanosecond string");
    let ended: u64 = client["endTimeUnixNano"].as_str().and_then(|t| t.parse().ok()).expect("a nanosecond string");
    assert!(started > 0 && ended >= started, "{client}");

    // The engine traces every connector's calls, not only http's: the bus publish as well.
    let publish = spans.iter().find(|s| s["name"] == "send bus").expect("the bus publish's span");
    assert_eq!(publish["kind"], 3, "{publish}");
    let to_step = steps.iter().find(|s| s["name"].as_str().is_some_and(|n| n.ends_with(":to"))).expect("the to step");
    assert_eq!(publish["parentSpanId"], to_step["spanId"], "the publish nests under its step: {publish}");
    assert_eq!(attribute(publish, "junction.connector")["stringValue"], "bus");
    assert_eq!(attribute(client, "junction.connector")["stringValue"], "api");

    let api_head = api.heads.lock().expect("lock")[0].to_ascii_lowercase();
    let client_id = client["spanId"].as_str().expect("a span id");
    assert!(
        api_head.contains(&format!("traceparent: 00-{TRACE}-{client_id}-01")),
        "the called API sees the client span as its parent: {api_head}"
    );

    let export_head = collector.heads.lock().expect("lock")[0].to_ascii_lowercase();
    assert!(export_head.starts_with("post /v1/traces "), "{export_head}");
    assert!(export_head.contains("content-type: application/json"), "{export_head}");
    let body: Value = serde_json::from_str(&collector.requests.lock().expect("lock")[0]).expect("JSON");
    assert_eq!(body["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"], "relay-test");
}

#[test]
fn an_otlp_endpoint_must_be_an_http_url_and_the_environment_overrides_it() {
    let dir = project(&[("junction.yaml", "routes: []\ntracing:\n  otlp: collector:4318\n")]);
    let path = dir.path().to_str().expect("utf-8 path");
    let (code, _, err) = junction(&["check", path], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("junction.yaml:3:9: tracing.otlp `collector:4318` is not an http(s) URL"), "{err}");
    let (code, out, err) = junction(&["check", path], &[("JUNCTION_OTLP", "http://collector:4318")]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
}
