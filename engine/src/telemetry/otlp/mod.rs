//! OpenTelemetry traces over OTLP/HTTP with JSON, without the OpenTelemetry SDK (it would
//! bring gRPC and a second HTTP stack): spans of route runs, step attempts and connector calls
//! go into a bounded queue without ever blocking a message, and one task POSTs them in batches.
//!
//! Nothing is made or sent unless [`install`] was called (`tracing.otlp` in junction.yaml).

pub mod call;
mod encode;
mod export;
mod span;

use std::sync::OnceLock;
use std::time::Duration;

use metrics::Counter;
use tokio::sync::{mpsc, oneshot};

use span::SpanData;
pub use span::{Kind, Span, Value};

/// Spans waiting for export at most; beyond that they are dropped (and counted).
const QUEUE_CAPACITY: usize = 8192;

pub(super) const SPANS_DROPPED: &str = "junction_otlp_spans_dropped_total";

static QUEUE: OnceLock<Queue> = OnceLock::new();

/// Starts exporting spans to the OTLP/HTTP collector at `endpoint` (`http://collector:4318`)
/// as service `service`. Once per process (a later call is ignored); within a Tokio runtime,
/// which runs the exporting task.
pub fn install(endpoint: &str, service: &str) {
    if QUEUE.get().is_some() {
        tracing::warn!("spans are already exported; the OTLP endpoint changes on a restart");
        return;
    }
    let exporter = match export::Exporter::new(endpoint, service) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the OTLP exporter; no spans are exported");
            return;
        }
    };
    let (queue, rx) = Queue::new(QUEUE_CAPACITY);
    if QUEUE.set(queue).is_ok() {
        tokio::spawn(exporter.run(rx));
        tracing::info!(endpoint, service, "exporting spans over OTLP/HTTP");
    }
}

/// Whether spans are exported; everything that makes spans asks this first.
pub fn enabled() -> bool {
    QUEUE.get().is_some()
}

/// Sends the spans queued so far, waiting at most `within`: the last spans of a clean stop.
pub async fn flush(within: Duration) {
    let Some(queue) = QUEUE.get() else { return };
    let (done, sent) = oneshot::channel();
    let _ = tokio::time::timeout(within, async {
        if queue.tx.send(Item::Flush(done)).await.is_ok() {
            let _ = sent.await;
        }
    })
    .await;
}

fn record(span: SpanData) {
    if let Some(queue) = QUEUE.get() {
        queue.push(span);
    }
}

/// What the exporting task is handed.
enum Item {
    Span(SpanData),
    /// Send everything before this, then answer.
    Flush(oneshot::Sender<()>),
}

/// The spans waiting for export. Bounded: when the collector cannot keep up, new spans are
/// dropped and counted rather than waited for.
struct Queue {
    tx: mpsc::Sender<Item>,
    dropped: Counter,
}

impl Queue {
    fn new(capacity: usize) -> (Self, mpsc::Receiver<Item>) {
        let (tx, rx) = mpsc::channel(capacity);
        let dropped = metrics::counter!(SPANS_DROPPED, "reason" => "queue_full");
        (Self { tx, dropped }, rx)
    }

    fn push(&self, span: SpanData) {
        if self.tx.try_send(Item::Span(span)).is_err() {
            self.dropped.increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use metrics_exporter_prometheus::PrometheusBuilder;

    use super::*;

    pub(super) fn span() -> SpanData {
        SpanData {
            trace_id: crate::trace::new_trace_id(),
            span_id: crate::trace::new_span_id(),
            parent_span_id: None,
            name: "route orders".into(),
            kind: Kind::Server,
            start_ns: 1,
            end_ns: 2,
            attributes: Vec::new(),
            error: None,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let (queue, mut rx) = metrics::with_local_recorder(&recorder, || Queue::new(2));
        for _ in 0..5 {
            queue.push(span());
        }
        let mut kept = 0;
        while let Ok(Item::Span(_)) = rx.try_recv() {
            kept += 1;
        }
        assert_eq!(kept, 2);
        queue.push(span());
        let text = recorder.handle().render();
        let line = r#"junction_otlp_spans_dropped_total{reason="queue_full"} 3"#;
        assert!(text.lines().any(|l| l == line), "room again once the exporter took some; want `{line}` in:\n{text}");
    }
}
