//! The metrics land under the names and labels the docs promise.

use std::time::Duration;

use http::StatusCode;
use metrics_exporter_prometheus::PrometheusRecorder;

use super::*;

/// Runs `f` against a recorder of its own (tests run in parallel; the global one is shared)
/// and returns what it rendered.
fn rendered(f: impl FnOnce()) -> String {
    let recorder: PrometheusRecorder = builder().build_recorder();
    metrics::with_local_recorder(&recorder, f);
    recorder.handle().render()
}

fn assert_has(text: &str, line: &str) {
    assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
}

#[test]
fn route_metrics_are_named_and_labelled() {
    let text = rendered(|| {
        let m = RouteMetrics::new("orders");
        m.received.increment(2);
        m.completed.increment(1);
        m.failed.increment(1);
        m.dead_lettered.increment(1);
        m.duration.record(Duration::from_millis(3));
    });
    assert_has(&text, r#"junction_route_messages_received_total{route="orders"} 2"#);
    assert_has(&text, r#"junction_route_messages_completed_total{route="orders"} 1"#);
    assert_has(&text, r#"junction_route_messages_failed_total{route="orders"} 1"#);
    assert_has(&text, r#"junction_route_dead_lettered_total{route="orders"} 1"#);
    assert_has(&text, r#"junction_route_duration_seconds_bucket{route="orders",le="0.0025"} 0"#);
    assert_has(&text, r#"junction_route_duration_seconds_bucket{route="orders",le="0.005"} 1"#);
    assert_has(&text, r#"junction_route_duration_seconds_count{route="orders"} 1"#);
}

#[test]
fn step_and_connector_metrics_count_each_outcome() {
    let text = rendered(|| {
        let s = StepMetrics::new("orders", "2:call");
        s.ok.increment(1);
        s.retried.increment(2);
        s.failed.increment(1);
        s.duration.record(Duration::from_secs(40));
        let c = ConnectorMetrics::new("crm");
        c.record(true, Duration::from_millis(20));
        c.record(false, Duration::from_millis(20));
    });
    for (outcome, n) in [("ok", 1), ("failed", 1), ("retried", 2)] {
        assert_has(
            &text,
            &format!(r#"junction_step_messages_total{{route="orders",step="2:call",outcome="{outcome}"}} {n}"#),
        );
    }
    assert_has(&text, r#"junction_step_duration_seconds_bucket{route="orders",step="2:call",le="30"} 0"#);
    assert_has(&text, r#"junction_step_duration_seconds_bucket{route="orders",step="2:call",le="+Inf"} 1"#);
    assert_has(&text, r#"junction_connector_calls_total{connector="crm",outcome="ok"} 1"#);
    assert_has(&text, r#"junction_connector_calls_total{connector="crm",outcome="error"} 1"#);
    assert_has(&text, r#"junction_connector_call_duration_seconds_count{connector="crm"} 2"#);
}

#[test]
fn gateway_counts_exact_statuses_and_reuses_their_counters() {
    let mut cached = 0;
    let text = rendered(|| {
        let g = GatewayMetrics::new("orders");
        for status in [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS, StatusCode::OK] {
            g.answered(status);
        }
        g.rate_limited.increment(1);
        g.shed.increment(1);
        GatewayMetrics::unmatched().answered(StatusCode::NOT_FOUND);
        cached = g.cached_statuses();
    });
    assert_eq!(cached, 2, "one counter per status seen");
    assert_has(&text, r#"junction_gateway_requests_total{route="orders",status="200"} 3"#);
    assert_has(&text, r#"junction_gateway_requests_total{route="orders",status="429"} 1"#);
    assert_has(&text, r#"junction_gateway_requests_total{route="none",status="404"} 1"#);
    assert_has(&text, r#"junction_gateway_rate_limited_total{route="orders"} 1"#);
    assert_has(&text, r#"junction_gateway_shed_total{route="orders"} 1"#);
}

#[test]
fn reloads_are_counted_and_the_last_success_stamped() {
    let before = SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is past 1970").as_secs();
    let text = rendered(|| {
        reload_finished(true);
        reload_finished(false);
        reload_finished(true);
    });
    assert_has(&text, r#"junction_reloads_total{outcome="ok"} 2"#);
    assert_has(&text, r#"junction_reloads_total{outcome="failed"} 1"#);
    let stamp: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("junction_reload_last_success_timestamp_seconds "))
        .and_then(|v| v.parse().ok())
        .expect("the gauge is rendered");
    assert!(stamp >= before as f64, "{stamp} < {before}");
}

#[test]
fn install_returns_one_handle() {
    assert!(std::ptr::eq(install(), install()));
}
