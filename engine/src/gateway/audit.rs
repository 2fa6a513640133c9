//! The audit layer and its writer: who called which endpoint, when, and how it ended, kept in
//! the store's append-only `audit` table — never the secret or the body. Records are written
//! in batches by one task, off the request path.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;
use tower::ServiceExt;

use super::auth::Principal;
use super::{EndpointLayer, EndpointService, GatewayRequest, GatewayResponse, RequestCx};
use crate::store::{AuditEntry, Store};

/// Which gateway requests are audited (admin calls always are).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditMode {
    /// Requests to endpoints with an auth scheme, refused ones included (default).
    #[default]
    Authenticated,
    /// Every request, open endpoints too.
    All,
    /// No gateway requests.
    Off,
}

/// Records waiting for the writer; past this, a request waits up to [`SEND_WAIT`] for room.
const QUEUE: usize = 10_000;
const SEND_WAIT: Duration = Duration::from_secs(1);
const BATCH: usize = 500;

/// How long the writer waits after a first record for more to join its batch: one commit
/// per batch is what a busy gateway's audit costs.
const LINGER: Duration = Duration::from_millis(20);

/// Where audit records go. Cheap to clone.
#[derive(Clone)]
pub struct AuditSink {
    mode: AuditMode,
    tx: mpsc::Sender<AuditEntry>,
    /// Records queued and not yet written, so a stop can wait for them.
    pending: Arc<std::sync::atomic::AtomicUsize>,
}

impl AuditSink {
    /// Starts the writer; it stops once every sink clone is dropped and the queue is written.
    pub fn start(store: Store, mode: AuditMode, retention: Option<Duration>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let pending = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tokio::spawn(write(store, rx, retention, pending.clone()));
        Self { mode, tx, pending }
    }

    /// Waits (up to `within`) until every record queued so far is in the store.
    pub async fn flush(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.pending.load(std::sync::atomic::Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Whether requests to an endpoint are audited; `authenticated` when it has a scheme.
    pub fn covers(&self, authenticated: bool) -> bool {
        match self.mode {
            AuditMode::All => true,
            AuditMode::Authenticated => authenticated,
            AuditMode::Off => false,
        }
    }

    /// Queues a record. Should the store fall far behind, a record that finds no room within
    /// a second is dropped and logged, rather than stalling every request behind it.
    pub async fn record(&self, entry: AuditEntry) {
        self.pending.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let entry = match self.tx.try_send(entry) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(e)) => e,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.pending.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                return;
            }
        };
        if tokio::time::timeout(SEND_WAIT, self.tx.send(entry)).await.is_err() {
            self.pending.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            tracing::error!("audit record dropped: the store is not keeping up");
        }
    }
}

async fn write(
    store: Store,
    mut rx: mpsc::Receiver<AuditEntry>,
    retention: Option<Duration>,
    pending: Arc<std::sync::atomic::AtomicUsize>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut purge = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
                if batch.len() < BATCH {
                    tokio::time::sleep(LINGER).await;
                    while batch.len() < BATCH {
                        let Ok(entry) = rx.try_recv() else { break };
                        batch.push(entry);
                    }
                }
                // A store that is down gets a few tries; the records wait in memory meanwhile.
                let mut wait = Duration::from_millis(100);
                while let Err(e) = store.audit_append_many(&batch).await {
                    tracing::warn!(error = %e, records = batch.len(), "audit records not written yet; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                pending.fetch_sub(batch.len(), std::sync::atomic::Ordering::AcqRel);
                batch.clear();
            }
            _ = purge.tick(), if retention.is_some() => {
                let keep = retention.unwrap_or_default();
                let cutoff = chrono::Utc::now() - chrono::Duration::from_std(keep).unwrap_or_default();
                match store.audit_purge_before(cutoff).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "old audit records removed"),
                    Err(e) => tracing::warn!(error = %e, "audit retention could not run"),
                }
            }
        }
    }
}

/// Records each request to an endpoint once its answer is known.
#[derive(Clone)]
pub(super) struct Audit {
    inner: EndpointService,
    sink: AuditSink,
    /// What a route's requests do (`POST /deals`); `None` for a mounted API, whose records
    /// name each request's own method and path.
    action: Option<Arc<str>>,
    route: Arc<str>,
}

impl Audit {
    pub(super) fn new(inner: EndpointService, sink: AuditSink, action: Option<String>, route: Arc<str>) -> Self {
        Self { inner, sink, action: action.map(Into::into), route }
    }
}

impl EndpointLayer for Audit {
    async fn serve(self, req: GatewayRequest) -> GatewayResponse {
        let (inner, sink, action, route) =
            (self.inner.clone(), self.sink.clone(), self.action.clone(), self.route.clone());

        let request_id = req.extensions().get::<RequestCx>().map(|cx| cx.request_id.to_string());
        let action = action.map_or_else(|| format!("{} {}", req.method(), req.uri().path()), |a| a.to_string());
        let Ok(resp) = inner.oneshot(req).await;
        let who = resp.extensions().get::<Principal>().cloned().unwrap_or_else(Principal::anonymous);
        let status = resp.status().as_u16();
        sink.record(AuditEntry {
            actor: who.id,
            actor_kind: who.kind.to_owned(),
            action,
            target: Some(route.to_string()),
            outcome: outcome(status).to_owned(),
            status: Some(status),
            request_id,
            detail: None,
        })
        .await;
        resp
    }
}

/// A status as the audit's outcome.
pub fn outcome(status: u16) -> &'static str {
    match status {
        200..=399 => "ok",
        401 | 403 => "denied",
        429 => "limited",
        400..=499 => "rejected",
        _ => "failed",
    }
}
