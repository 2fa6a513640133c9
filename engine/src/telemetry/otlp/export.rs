//! The background task that POSTs queued spans to the collector in batches. A batch the
//! collector does not take is dropped: tracing must never hold messages back or pile up.

use std::time::Duration;

use metrics::Counter;
use reqwest::header::CONTENT_TYPE;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::span::SpanData;
use super::{Item, SPANS_DROPPED, encode};

/// Spans per POST at most.
const MAX_BATCH: usize = 512;
/// How long a span waits for others to share its POST.
const BATCH_WAIT: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(5);
/// A collector that is down is reported this often, not once per batch.
const WARN_EVERY: Duration = Duration::from_secs(60);

pub(super) struct Exporter {
    client: reqwest::Client,
    url: String,
    service: String,
    failed: Counter,
    last_warned: Option<Instant>,
    /// Spans lost since the last warning, which tells how many.
    unreported: usize,
}

impl Exporter {
    pub(super) fn new(endpoint: &str, service: &str) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: reqwest::Client::builder().timeout(TIMEOUT).build()?,
            url: format!("{}/v1/traces", endpoint.trim_end_matches('/')),
            service: service.to_owned(),
            failed: metrics::counter!(SPANS_DROPPED, "reason" => "export_failed"),
            last_warned: None,
            unreported: 0,
        })
    }

    /// Exports batches until the queue closes.
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Item>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let cut = collect(&mut rx, &mut batch).await;
            if !batch.is_empty() {
                self.post(&batch).await;
                batch.clear();
            }
            match cut {
                Cut::Ready => {}
                Cut::Flush(done) => {
                    let _ = done.send(());
                }
                Cut::Closed => return,
            }
        }
    }

    async fn post(&mut self, spans: &[SpanData]) {
        let body = encode::export_request(&self.service, spans);
        let sent = self.client.post(&self.url).header(CONTENT_TYPE, "application/json").body(body).send().await;
        let error = match sent {
            Ok(resp) if resp.status().is_success() => return,
            Ok(resp) => format!("the collector answered {}", resp.status()),
            Err(e) => e.to_string(),
        };
        self.failed.increment(spans.len() as u64);
        self.unreported += spans.len();
        let now = Instant::now();
        if self.last_warned.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            return;
        }
        self.last_warned = Some(now);
        tracing::warn!(collector = %self.url, error = %error, spans_dropped = self.unreported, "cannot export spans; dropping them (reported at most once a minute)");
        self.unreported = 0;
    }
}

/// Why a batch is ready to go.
#[derive(Debug)]
enum Cut {
    /// Full, or its first span has waited long enough.
    Ready,
    /// Someone waits for everything queued so far to be sent.
    Flush(oneshot::Sender<()>),
    /// Nothing more will come.
    Closed,
}

/// Waits for a first item, then fills `batch` until it is full, [`BATCH_WAIT`] has passed or
/// a flush is asked for.
async fn collect(rx: &mut mpsc::Receiver<Item>, batch: &mut Vec<SpanData>) -> Cut {
    let mut next = rx.recv().await;
    let deadline = Instant::now() + BATCH_WAIT;
    loop {
        match next {
            None => return Cut::Closed,
            Some(Item::Flush(done)) => return Cut::Flush(done),
            Some(Item::Span(span)) => batch.push(span),
        }
        if batch.len() >= MAX_BATCH {
            return Cut::Ready;
        }
        next = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(item) => item,
            Err(_) => return Cut::Ready,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::span;
    use super::*;

    #[tokio::test]
    async fn batches_are_cut_when_full_on_a_flush_and_when_the_queue_closes() {
        let (tx, mut rx) = mpsc::channel(MAX_BATCH * 2);
        for _ in 0..MAX_BATCH + 2 {
            tx.try_send(Item::Span(span())).expect("room in the queue");
        }
        let (done, _) = oneshot::channel();
        tx.try_send(Item::Flush(done)).expect("room in the queue");
        let mut batch = Vec::new();
        assert!(matches!(collect(&mut rx, &mut batch).await, Cut::Ready));
        assert_eq!(batch.len(), MAX_BATCH);
        batch.clear();
        assert!(matches!(collect(&mut rx, &mut batch).await, Cut::Flush(_)));
        assert_eq!(batch.len(), 2, "a flush sends what was queued before it");
        batch.clear();
        drop(tx);
        assert!(matches!(collect(&mut rx, &mut batch).await, Cut::Closed));
    }

    #[tokio::test]
    async fn a_lone_span_waits_about_a_second_for_company() {
        let (tx, mut rx) = mpsc::channel(4);
        tx.try_send(Item::Span(span())).expect("room in the queue");
        let started = Instant::now();
        let mut batch = Vec::new();
        assert!(matches!(collect(&mut rx, &mut batch).await, Cut::Ready));
        assert_eq!(batch.len(), 1);
        let waited = started.elapsed();
        assert!(waited >= BATCH_WAIT && waited < BATCH_WAIT * 3, "{waited:?}");
    }

    #[tokio::test]
    async fn a_failed_export_drops_the_batch_and_warns_once_a_minute() {
        // A port just freed: nothing listens there, so the POST fails fast.
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let mut exporter = Exporter::new(&format!("http://127.0.0.1:{port}"), "junction").expect("client builds");
        exporter.post(&[span(), span()]).await;
        let first = exporter.last_warned.expect("the first failure warns");
        assert_eq!(exporter.unreported, 0);
        exporter.post(&[span()]).await;
        assert_eq!(exporter.last_warned, Some(first), "no second warning within the minute");
        assert_eq!(exporter.unreported, 1, "the next warning says how many were lost meanwhile");
    }
}
