//! Handles for routes, steps and connectors, registered once where those are compiled so a
//! message only bumps atomics.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

pub(super) const ROUTE_RECEIVED: &str = "junction_route_messages_received_total";
pub(super) const ROUTE_COMPLETED: &str = "junction_route_messages_completed_total";
pub(super) const ROUTE_FAILED: &str = "junction_route_messages_failed_total";
pub(super) const ROUTE_DEAD_LETTERED: &str = "junction_route_dead_lettered_total";
pub(super) const ROUTE_DURATION: &str = "junction_route_duration_seconds";
pub(super) const STEP_MESSAGES: &str = "junction_step_messages_total";
pub(super) const STEP_DURATION: &str = "junction_step_duration_seconds";
pub(super) const CONNECTOR_CALLS: &str = "junction_connector_calls_total";
pub(super) const CONNECTOR_DURATION: &str = "junction_connector_call_duration_seconds";
pub(super) const ROUTE_IN_FLIGHT: &str = "junction_route_in_flight";
pub(super) const CONSUMER_LAG: &str = "junction_consumer_lag";
pub(super) const OUTBOX_PENDING: &str = "junction_outbox_pending";
pub(super) const OUTBOX_AGE: &str = "junction_outbox_oldest_age_seconds";
pub(super) const BREAKER_STATE: &str = "junction_connector_breaker_state";
pub(super) const BREAKER_OPENED: &str = "junction_connector_breaker_opened_total";

/// A route's message counts and run time.
#[derive(Clone)]
pub struct RouteMetrics {
    pub received: Counter,
    pub completed: Counter,
    pub failed: Counter,
    pub dead_lettered: Counter,
    pub duration: Histogram,
    /// Messages in the route now, from every source.
    pub in_flight: Gauge,
}

impl RouteMetrics {
    pub fn new(route: &str) -> Self {
        let route = route.to_owned();
        Self {
            received: counter!(ROUTE_RECEIVED, "route" => route.clone()),
            completed: counter!(ROUTE_COMPLETED, "route" => route.clone()),
            failed: counter!(ROUTE_FAILED, "route" => route.clone()),
            dead_lettered: counter!(ROUTE_DEAD_LETTERED, "route" => route.clone()),
            duration: histogram!(ROUTE_DURATION, "route" => route.clone()),
            in_flight: gauge!(ROUTE_IN_FLIGHT, "route" => route),
        }
    }
}

/// Messages of a topic (and partition) a route's consumer group has yet to process.
pub fn consumer_lag(route: &str, topic: &str, partition: &str) -> Gauge {
    gauge!(CONSUMER_LAG, "route" => route.to_owned(), "topic" => topic.to_owned(), "partition" => partition.to_owned())
}

/// A connector's circuit breaker: 0 closed, 1 half-open, 2 open.
pub fn breaker_state(connector: &str) -> Gauge {
    gauge!(BREAKER_STATE, "connector" => connector.to_owned())
}

/// How often a connector's circuit breaker opened.
pub fn breaker_opened(connector: &str) -> Counter {
    counter!(BREAKER_OPENED, "connector" => connector.to_owned())
}

/// A connector's transactional outbox: events not yet published, and how long the oldest
/// has waited (0 when none waits).
#[derive(Clone)]
pub struct OutboxMetrics {
    pub pending: Gauge,
    pub oldest_age: Gauge,
}

impl OutboxMetrics {
    pub fn new(connector: &str) -> Self {
        Self {
            pending: gauge!(OUTBOX_PENDING, "connector" => connector.to_owned()),
            oldest_age: gauge!(OUTBOX_AGE, "connector" => connector.to_owned()),
        }
    }
}

/// One step's attempts by outcome, and how long each took.
#[derive(Clone)]
pub struct StepMetrics {
    pub ok: Counter,
    /// Attempts that failed for good (the message is dead-lettered).
    pub failed: Counter,
    /// Attempts that failed and are tried again.
    pub retried: Counter,
    pub duration: Histogram,
}

impl StepMetrics {
    /// `step` is the step's label, `2:transform`.
    pub fn new(route: &str, step: &str) -> Self {
        Self {
            ok: step_outcome(route, step, "ok"),
            failed: step_outcome(route, step, "failed"),
            retried: step_outcome(route, step, "retried"),
            duration: histogram!(STEP_DURATION, "route" => route.to_owned(), "step" => step.to_owned()),
        }
    }
}

fn step_outcome(route: &str, step: &str, outcome: &'static str) -> Counter {
    counter!(STEP_MESSAGES, "route" => route.to_owned(), "step" => step.to_owned(), "outcome" => outcome)
}

/// A connector's outbound calls.
#[derive(Clone)]
pub struct ConnectorMetrics {
    pub ok: Counter,
    pub error: Counter,
    pub duration: Histogram,
}

impl ConnectorMetrics {
    pub fn new(connector: &str) -> Self {
        let connector = connector.to_owned();
        Self {
            ok: counter!(CONNECTOR_CALLS, "connector" => connector.clone(), "outcome" => "ok"),
            error: counter!(CONNECTOR_CALLS, "connector" => connector.clone(), "outcome" => "error"),
            duration: histogram!(CONNECTOR_DURATION, "connector" => connector),
        }
    }

    /// Counts one call and its time.
    pub fn record(&self, ok: bool, took: Duration) {
        if ok { &self.ok } else { &self.error }.increment(1);
        self.duration.record(took);
    }
}
