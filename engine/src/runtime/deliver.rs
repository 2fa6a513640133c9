//! One message through one route, to the end: steps, retries, and the dead letter when they
//! give up. A source acks only after this returns `Ok`.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use crate::message::Message;
use crate::route::pipeline::{Failure, RunCx};
use crate::route::{Route, Source};
use crate::store::{NewDeadLetter, Store};
use crate::telemetry::otlp::{self, Kind, Span};

/// How a delivered message ended.
#[derive(Debug)]
pub enum Delivered {
    /// The route finished; these came out of its last step.
    Done(Vec<Message>),
    /// The route gave up; the original message is stored as a dead letter and can be replayed.
    DeadLettered { failure: Failure, dead_letter_id: String },
}

/// Runs `msg` through `route`. `Err` only when a failed message could not even be stored as a
/// dead letter: then the source must not ack it (it will be redelivered or the caller told).
pub async fn deliver(route: &Route, msg: Message, store: &Store) -> Result<Delivered, crate::store::StoreError> {
    deliver_from(route, 0, msg, store).await
}

/// Like [`deliver`], from step `start` on (what an aggregate's timeout releases).
pub async fn deliver_from(
    route: &Route,
    start: usize,
    mut msg: Message,
    store: &Store,
) -> Result<Delivered, crate::store::StoreError> {
    msg.meta.route = route.id.to_string();
    let copy = msg.clone();
    deliver_with(route, start, msg, move || copy, store).await
}

/// Like [`deliver_from`], for a source that can rebuild the original message should the
/// route fail (the gateway re-reads the request), sparing a copy of every message.
pub async fn deliver_with(
    route: &Route,
    start: usize,
    msg: Message,
    original: impl FnOnce() -> Message + Send,
    store: &Store,
) -> Result<Delivered, crate::store::StoreError> {
    let (run, result) = Run::go(route, start, msg, RunCx::new(route.id.clone(), route.retry.clone())).await;
    run.conclude(result, original, store).await
}

/// Like [`deliver_from`], for a source that can leave a message unacked (a consumer's): a stop
/// of the process (`stopping` turning true) while a step waits to be retried ends the run at
/// once, `Ok(None)`, neither finished nor dead-lettered, for the source to leave the message
/// to be delivered again after the restart. See [`RunCx::stops_on`].
pub async fn deliver_or_leave(
    route: &Route,
    start: usize,
    mut msg: Message,
    store: &Store,
    stopping: &watch::Receiver<bool>,
) -> Result<Option<Delivered>, crate::store::StoreError> {
    msg.meta.route = route.id.to_string();
    let copy = msg.clone();
    let cx = RunCx::new(route.id.clone(), route.retry.clone()).stops_on(stopping.clone());
    let (run, result) = Run::go(route, start, msg, cx).await;
    if let Err(failure) = &result
        && failure.left
    {
        run.leave();
        return Ok(None);
    }
    run.conclude(result, move || copy, store).await.map(Some)
}

/// One run of a message through a route, between its steps and its outcome.
struct Run<'a> {
    route: &'a Route,
    start: usize,
    cx: RunCx,
    span: Option<Span>,
    _in_flight: InFlight<'a>,
}

/// The route's in-flight gauge, down again however the run ends, early returns and panics
/// included.
struct InFlight<'a>(&'a Route);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.metrics.in_flight.decrement(1.0);
    }
}

impl<'a> Run<'a> {
    /// Counts the message in, runs the steps from `start`.
    async fn go(
        route: &'a Route,
        start: usize,
        mut msg: Message,
        mut cx: RunCx,
    ) -> (Self, Result<Vec<Message>, Failure>) {
        cx.trail = route.provenance.begin(&route.id, &mut msg);
        let span = route_span(route, &mut msg);
        cx.span = span.as_ref().map(|s| s.id().to_owned());
        route.counters.received();
        route.metrics.received.increment(1);
        route.metrics.in_flight.increment(1.0);
        let in_flight = InFlight(route);
        let started = std::time::Instant::now();
        let result = route.pipeline.run_from(start, msg, &cx).await;
        let took = started.elapsed();
        route.metrics.duration.record(took);
        route.counters.took(took);
        (Run { route, start, cx, span, _in_flight: in_flight }, result)
    }

    /// Done, or the failed message stored as a dead letter (`Err` only when it cannot be).
    async fn conclude(
        self,
        result: Result<Vec<Message>, Failure>,
        original: impl FnOnce() -> Message + Send,
        store: &Store,
    ) -> Result<Delivered, crate::store::StoreError> {
        let Run { route, start, cx, span, _in_flight } = self;
        let failure = match result {
            Ok(out) => {
                route.counters.completed();
                route.metrics.completed.increment(1);
                end_span(span, "completed", None);
                cx.settle().await;
                return Ok(Delivered::Done(out));
            }
            Err(f) => f,
        };
        route.metrics.failed.increment(1);
        let (mut original, resume_at) = cx.take_origin().unwrap_or_else(|| (original(), start));
        original.meta.route = route.id.to_string();
        original.meta.resume_at = resume_at;
        cx.run_failure_hooks();
        tracing::warn!(route = %route.id, message_id = %original.id, trace_id = original.meta.trace_id.as_deref(), step = %failure.step, attempts = failure.attempts, error = %failure.error.message, "message failed; dead-lettering");
        let stored = dead_letter(route, original, &failure, store).await;
        end_span(span, if stored.is_ok() { "dead_lettered" } else { "failed" }, Some(&failure.error.message));
        let dead_letter_id = stored?;
        cx.settle().await;
        route.counters.dead_lettered();
        route.metrics.dead_lettered.increment(1);
        Ok(Delivered::DeadLettered { failure, dead_letter_id })
    }

    /// Ends a run the stop cut short: what it claimed is given back (an idempotent step's key,
    /// so the redelivery is not dropped as a duplicate), nothing settled.
    fn leave(self) {
        self.cx.run_failure_hooks();
        end_span(self.span, "left", Some("stopping"));
    }
}

/// The span of this run when spans are exported: in the message's trace (a new one if it has
/// none, which the calls it makes then carry on), under the span it came with.
fn route_span(route: &Route, msg: &mut Message) -> Option<Span> {
    if !otlp::enabled() {
        return None;
    }
    let trace = msg.meta.trace_id.get_or_insert_with(crate::trace::new_trace_id);
    let kind = if matches!(route.source, Source::Http(_)) { Kind::Server } else { Kind::Internal };
    let mut span = Span::start(trace, msg.meta.parent_span_id.as_deref(), kind, format_args!("route {}", route.id))?;
    span.set("junction.route", &*route.id);
    span.set("junction.message_id", msg.id.as_str());
    Some(span)
}

fn end_span(span: Option<Span>, outcome: &'static str, error: Option<&str>) {
    if let Some(mut span) = span {
        span.set("junction.outcome", outcome);
        span.end(error);
    }
}

/// Stores the dead letter (the replayable record), then sends it to the route's
/// `dead_letter` endpoint if it has one. A failing endpoint is logged, not fatal: the stored
/// record already keeps the message.
async fn dead_letter(
    route: &Route,
    original: Message,
    failure: &Failure,
    store: &Store,
) -> Result<String, crate::store::StoreError> {
    let record = NewDeadLetter {
        route: route.id.to_string(),
        step: Some(failure.step.clone()),
        error: failure.error.message.clone(),
        attempts: failure.attempts,
        message: original,
    };
    let id = store_with_retry(store, &record).await?;
    if let Some(endpoint) = &route.dead_letter
        && let Err(e) = endpoint.send(&envelope(&route.id, Some(&id), failure, &record.message)).await
    {
        tracing::error!(route = %route.id, dead_letter_id = %id, error = %e, sink = %endpoint.describe(), "dead-letter sink failed; the message is kept in the store");
    }
    Ok(id)
}

/// What a route's `dead_letter` endpoint is sent: the failure, and the original message whole.
pub fn envelope(route: &str, dead_letter_id: Option<&str>, failure: &Failure, original: &Message) -> Message {
    let mut envelope = Message::json(serde_json::json!({
        "dead_letter_id": dead_letter_id,
        "route": route,
        "step": failure.step,
        "error": failure.error.message,
        "attempts": failure.attempts,
        "message": serde_json::to_value(original).unwrap_or(Value::Null),
    }));
    envelope.meta.route = route.to_owned();
    // On a partitioned dead-letter topic one key's failures stay in order, as its messages did.
    envelope.meta.key.clone_from(&original.meta.key);
    envelope
}

/// A store that hiccups should not turn a failure into a loss: a few quick tries first.
async fn store_with_retry(store: &Store, record: &NewDeadLetter) -> Result<String, crate::store::StoreError> {
    let mut wait = Duration::from_millis(50);
    for _ in 0..4 {
        match store.put_dead_letter(record).await {
            Ok(id) => return Ok(id),
            Err(e) => {
                tracing::warn!(route = %record.route, error = %e, "cannot store dead letter yet; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
    store.put_dead_letter(record).await
}
