//! Prometheus metrics: the process-wide recorder, its text rendering for `GET /metrics`, and
//! handles registered once per route, step, connector and endpoint so the hot path only bumps
//! atomics.
//!
//! Handles made before [`install`] are no-ops (that is how the `metrics` crate works), so
//! `junction run` installs the recorder before the project loads. Traces are in [`otlp`].

mod gateway;
mod handles;
pub mod otlp;
#[cfg(test)]
mod tests;

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use gateway::GatewayMetrics;
pub use handles::{
    ConnectorMetrics, OutboxMetrics, RouteMetrics, StepMetrics, breaker_opened, breaker_state, consumer_lag,
};

/// Latency buckets from 0.5 ms (an in-process step) to 30 s (a slow partner API at its
/// timeout), roughly ×2–2.5 apart.
const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How often recorded histogram samples are folded into their buckets when nobody scrapes;
/// without it they would pile up in memory.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

const RELOADS: &str = "junction_reloads_total";
const RELOAD_LAST_SUCCESS: &str = "junction_reload_last_success_timestamp_seconds";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder once; later calls return the same handle. Should another
/// recorder already be installed, the returned handle renders nothing.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        match metrics::set_global_recorder(recorder) {
            Ok(()) => {
                describe();
                upkeep(handle.clone());
                handle
            }
            Err(_) => {
                tracing::warn!("another metrics recorder is already installed; Junction's metrics stay empty");
                PrometheusBuilder::new().build_recorder().handle()
            }
        }
    })
}

/// The metrics in the Prometheus text format; empty when [`install`] was never called.
pub fn render() -> String {
    HANDLE.get().map(PrometheusHandle::render).unwrap_or_default()
}

/// Counts a finished reload (not a dry run) and, on success, stamps when it happened.
pub fn reload_finished(ok: bool) {
    let outcome = if ok { "ok" } else { "failed" };
    metrics::counter!(RELOADS, "outcome" => outcome).increment(1);
    if ok {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        metrics::gauge!(RELOAD_LAST_SUCCESS).set(now);
    }
}

/// The recorder's settings: every `…_seconds` histogram gets the latency buckets.
fn builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .expect("the latency buckets are not empty")
}

fn upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
        loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the metrics upkeep thread; histograms are folded only when scraped");
    }
}

/// The `# HELP` lines.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(handles::ROUTE_RECEIVED, "Messages a route started to run.");
    describe_counter!(handles::ROUTE_COMPLETED, "Messages that went through a route to its end.");
    describe_counter!(handles::ROUTE_FAILED, "Messages a route gave up on after its retries.");
    describe_counter!(handles::ROUTE_DEAD_LETTERED, "Failed messages stored as dead letters.");
    describe_histogram!(handles::ROUTE_DURATION, metrics::Unit::Seconds, "Time to run a message through a route.");
    describe_counter!(handles::STEP_MESSAGES, "Step attempts by outcome: ok, failed (given up), retried.");
    describe_histogram!(handles::STEP_DURATION, metrics::Unit::Seconds, "Time of one attempt of a step.");
    describe_counter!(handles::CONNECTOR_CALLS, "Outbound connector calls by outcome: ok or error.");
    describe_histogram!(handles::CONNECTOR_DURATION, metrics::Unit::Seconds, "Time of one outbound connector call.");
    describe_gauge!(handles::ROUTE_IN_FLIGHT, "Messages in a route now, from any source.");
    describe_gauge!(
        handles::CONSUMER_LAG,
        "Messages of a topic partition a route's consumer group has yet to process."
    );
    describe_gauge!(handles::OUTBOX_PENDING, "Events of a connector's outbox not yet published to the bus.");
    describe_gauge!(
        handles::OUTBOX_AGE,
        metrics::Unit::Seconds,
        "How long the oldest unpublished outbox event has waited."
    );
    describe_gauge!(handles::BREAKER_STATE, "A connector's circuit breaker: 0 closed, 1 half-open, 2 open.");
    describe_counter!(handles::BREAKER_OPENED, "How often a connector's circuit breaker opened.");
    describe_counter!(gateway::REQUESTS, "Gateway answers by route (`none` when no route matched) and status.");
    describe_counter!(gateway::RATE_LIMITED, "Requests answered 429 by a route's rate limit.");
    describe_counter!(gateway::SHED, "Requests answered 503 because the route was at max_in_flight.");
    describe_counter!(RELOADS, "Reloads by outcome: ok or failed.");
    describe_gauge!(RELOAD_LAST_SUCCESS, metrics::Unit::Seconds, "Unix time of the last successful reload.");
    describe_counter!(otlp::SPANS_DROPPED, "Spans not exported: queue_full (the collector is slow) or export_failed.");
}

/// One sample of a gauge as the Prometheus page shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GaugeSample {
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

/// The gauges the console shows (consumer lag, outbox backlog, breakers, LLM budgets), read
/// back from this process's own Prometheus page, by metric name.
pub fn gauges() -> std::collections::BTreeMap<&'static str, Vec<GaugeSample>> {
    const SHOWN: [(&str, &str); 5] = [
        ("lag", handles::CONSUMER_LAG),
        ("outbox", handles::OUTBOX_PENDING),
        ("outbox_age", handles::OUTBOX_AGE),
        ("breakers", handles::BREAKER_STATE),
        ("llm_budgets", "junction_llm_budget_remaining"),
    ];
    let page = render();
    SHOWN.iter().map(|(key, name)| (*key, samples(&page, name))).collect()
}

/// One step of a route as this process counted it: runs by outcome and mean time.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct StepStats {
    pub ok: u64,
    pub failed: u64,
    pub retried: u64,
    /// Mean time of one attempt, in milliseconds; `None` before the first.
    pub mean_ms: Option<f64>,
}

/// Each step of `route` by its label, read back from this process's Prometheus page.
pub fn step_stats(route: &str) -> std::collections::BTreeMap<String, StepStats> {
    let page = render();
    let mut out: std::collections::BTreeMap<String, StepStats> = std::collections::BTreeMap::new();
    let mine = |s: &GaugeSample| s.labels.get("route").is_some_and(|r| r == route);
    for s in samples(&page, handles::STEP_MESSAGES).iter().filter(|s| mine(s)) {
        let (Some(step), Some(outcome)) = (s.labels.get("step"), s.labels.get("outcome")) else { continue };
        let stats = out.entry(step.clone()).or_default();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a counter's value")]
        let n = s.value as u64;
        match outcome.as_str() {
            "ok" => stats.ok = n,
            "failed" => stats.failed = n,
            "retried" => stats.retried = n,
            _ => {}
        }
    }
    let sums = samples(&page, &format!("{}_sum", handles::STEP_DURATION));
    let counts = samples(&page, &format!("{}_count", handles::STEP_DURATION));
    for sum in sums.iter().filter(|s| mine(s)) {
        let Some(step) = sum.labels.get("step") else { continue };
        let count = counts.iter().find(|c| c.labels == sum.labels).map_or(0.0, |c| c.value);
        if count > 0.0 {
            out.entry(step.clone()).or_default().mean_ms = Some(sum.value / count * 1000.0);
        }
    }
    out
}

/// The samples of metric `name` in a Prometheus text page (labels without escapes, as ours are).
fn samples(page: &str, name: &str) -> Vec<GaugeSample> {
    page.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => r.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            let labels = labels
                .split("\",")
                .filter_map(|pair| {
                    let (k, v) = pair.split_once("=\"")?;
                    Some((k.trim().to_owned(), v.trim_end_matches('"').to_owned()))
                })
                .collect();
            Some(GaugeSample { labels, value: value.trim().parse().ok()? })
        })
        .collect()
}

#[cfg(test)]
mod gauge_tests {
    #[test]
    fn samples_are_read_back_from_the_page_by_name() {
        let page = "# TYPE junction_consumer_lag gauge\njunction_consumer_lag{route=\"a\",topic=\"deals\",partition=\"0\"} 12\njunction_consumer_lag_other 3\njunction_outbox_pending 4\n";
        let lag = super::samples(page, "junction_consumer_lag");
        assert_eq!(lag.len(), 1);
        assert_eq!(lag[0].labels["topic"], "deals");
        assert_eq!(lag[0].labels["partition"], "0");
        assert!((lag[0].value - 12.0).abs() < f64::EPSILON);
        assert_eq!(super::samples(page, "junction_outbox_pending")[0].labels.len(), 0);
    }
}
