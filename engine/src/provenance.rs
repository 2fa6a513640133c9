//! Provenance: what each step of a run did to a message — the body before and after, the
//! headers, how long it took, how it ended — recorded so that one message can be followed by
//! its id, its trace id or a business key its route declares, across the routes it caused
//! over the bus.
//!
//! Recording is off unless a route says `provenance: { record: true }`, or an admin watches
//! one key for some minutes (the console): a run of a watched key is recorded, and so is every
//! run in its trace until the watch ends. When it is off, a run pays one check of an `Option`
//! and of an atomic flag. Recorded steps go to the store off the hot path, through a bounded
//! queue that drops (and counts) rather than hold a message back; bodies are redacted as
//! logs are; the store keeps at most [`KEEP_ROWS`] steps and none older than [`KEEP_FOR`].

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::message::Message;
use crate::redact::Redact;
use crate::steps::Outcome;
use crate::store::{ProvenanceStep, Store};

/// Steps kept in the store at most.
pub const KEEP_ROWS: i64 = 100_000;
/// How long recorded steps are kept.
pub const KEEP_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
/// Steps waiting to be written at most; more are dropped and counted.
const QUEUE: usize = 10_000;
const DROPPED: &str = "junction_provenance_dropped_total";

/// The process's provenance recorder: the write queue and the watched keys.
pub struct Provenance {
    tx: mpsc::Sender<ProvenanceStep>,
    redact: Redact,
    /// True while any watch lasts: the only thing a route without `record` looks at.
    watching: AtomicBool,
    watches: Mutex<Vec<Watch>>,
}

/// A key (or a trace a watched key's message started) recorded until `until`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Watch {
    pub key: String,
    pub until: DateTime<Utc>,
    /// A trace followed because a watched key's message began it (not shown as a watch).
    #[serde(skip)]
    pub trace: bool,
}

impl Provenance {
    /// Starts the writer (and the pruning) on `store`.
    pub fn start(store: Store, redact: Redact) -> Arc<Self> {
        metrics::describe_counter!(DROPPED, "Provenance steps not recorded because the write queue was full.");
        let (tx, mut rx) = mpsc::channel::<ProvenanceStep>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::new();
            let mut last_prune = tokio::time::Instant::now();
            while let Some(first) = rx.recv().await {
                batch.push(first);
                while batch.len() < 256 {
                    match rx.try_recv() {
                        Ok(step) => batch.push(step),
                        Err(_) => break,
                    }
                }
                if let Err(e) = store.put_provenance(&batch).await {
                    tracing::warn!(error = %e, steps = batch.len(), "provenance steps could not be stored");
                }
                batch.clear();
                if last_prune.elapsed() > Duration::from_secs(60) {
                    last_prune = tokio::time::Instant::now();
                    let before = Utc::now() - chrono::Duration::from_std(KEEP_FOR).unwrap_or_default();
                    if let Err(e) = store.prune_provenance(KEEP_ROWS, before).await {
                        tracing::warn!(error = %e, "old provenance steps could not be deleted");
                    }
                }
            }
        });
        Arc::new(Self { tx, redact, watching: AtomicBool::new(false), watches: Mutex::default() })
    }

    /// Records every run of messages whose key is `key` (and the runs they cause) for `minutes`.
    pub fn watch(&self, key: &str, minutes: u32) -> Watch {
        let watch =
            Watch { key: key.to_owned(), until: Utc::now() + chrono::Duration::minutes(minutes.into()), trace: false };
        let mut watches = self.lock();
        watches.retain(|w| w.key != key || w.trace);
        watches.push(watch.clone());
        self.watching.store(true, Ordering::Release);
        watch
    }

    /// The keys watched now.
    pub fn watches(&self) -> Vec<Watch> {
        let now = Utc::now();
        self.lock().iter().filter(|w| !w.trace && w.until > now).cloned().collect()
    }

    /// Until when `key` (or, `trace`, a trace) is watched, if it is.
    fn watched(&self, key: Option<&str>, trace: Option<&str>) -> Option<DateTime<Utc>> {
        let now = Utc::now();
        let mut watches = self.lock();
        watches.retain(|w| w.until > now);
        if watches.is_empty() {
            self.watching.store(false, Ordering::Release);
            return None;
        }
        watches
            .iter()
            .find(|w| if w.trace { trace == Some(w.key.as_str()) } else { key == Some(w.key.as_str()) })
            .map(|w| w.until)
    }

    fn follow_trace(&self, trace: &str, until: DateTime<Utc>) {
        let mut watches = self.lock();
        if !watches.iter().any(|w| w.trace && w.key == trace) {
            watches.push(Watch { key: trace.to_owned(), until, trace: true });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Watch>> {
        self.watches.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a route says about provenance, and the recorder when the project runs with a store.
#[derive(Clone, Default)]
pub struct RouteProvenance {
    /// `provenance: { record: true }`: every run is recorded.
    pub record: bool,
    /// `provenance: { key: body.external_id }`: where the business key is.
    pub key: Option<KeyPath>,
    pub recorder: Option<Arc<Provenance>>,
}

impl RouteProvenance {
    /// The trail of this run of `msg` through `route`, when it is to be recorded (and then
    /// the message is given a trace id if it has none, for the runs it causes to share).
    pub fn begin(&self, route: &Arc<str>, msg: &mut Message) -> Option<Trail> {
        let recorder = self.recorder.as_ref()?;
        if !self.record && !recorder.watching.load(Ordering::Acquire) {
            return None;
        }
        let key = self.key.as_ref().and_then(|k| k.of(msg));
        let watched = recorder.watched(key.as_deref(), msg.meta.trace_id.as_deref());
        if !self.record && watched.is_none() {
            return None;
        }
        let trace = msg.meta.trace_id.get_or_insert_with(|| uuid::Uuid::new_v4().simple().to_string()).clone();
        if let Some(until) = watched {
            recorder.follow_trace(&trace, until);
        }
        Some(Trail {
            recorder: recorder.clone(),
            run: uuid::Uuid::now_v7().to_string(),
            route: route.to_string(),
            message_id: msg.id.clone(),
            trace_id: Some(trace),
            key,
            seq: AtomicI64::new(0),
        })
    }
}

/// `body.a.b` or `headers.name`: where a message keeps its business key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath {
    in_headers: bool,
    path: Vec<String>,
}

impl KeyPath {
    /// Reads `body.a.b` or `headers.name`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let (root, rest) = text.split_once('.')?;
        let path: Vec<String> = rest.split('.').map(str::to_owned).collect();
        if path.iter().any(String::is_empty) {
            return None;
        }
        match root {
            "body" => Some(Self { in_headers: false, path }),
            "headers" if path.len() == 1 => Some(Self { in_headers: true, path }),
            _ => None,
        }
    }

    /// The key's value in `msg`, as text.
    pub fn of(&self, msg: &Message) -> Option<String> {
        let value = if self.in_headers {
            msg.headers.get(&self.path[0])?.clone()
        } else {
            let crate::message::Body::Json(body) = &msg.body else { return None };
            self.path.iter().try_fold(body, |v, k| v.get(k))?.clone()
        };
        match value {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// One recorded run: each step adds a row.
pub struct Trail {
    recorder: Arc<Provenance>,
    run: String,
    route: String,
    message_id: String,
    trace_id: Option<String>,
    key: Option<String>,
    seq: AtomicI64,
}

/// A step's input as the trail keeps it.
pub struct Before {
    headers: Value,
    body: Value,
    at: DateTime<Utc>,
    started: std::time::Instant,
}

impl Trail {
    /// Takes what a step is about to get.
    pub fn before(&self, msg: &Message) -> Before {
        let redact = &self.recorder.redact;
        Before {
            headers: redact.value(&Value::Object(msg.headers.clone())).into_owned(),
            body: redact.value(&msg.body.to_json()).into_owned(),
            at: Utc::now(),
            started: std::time::Instant::now(),
        }
    }

    /// Records what the step made of it.
    pub fn after(&self, step: &str, before: Before, result: Result<&Outcome, &str>) {
        let redact = |m: &Message| self.recorder.redact.value(&m.body.to_json()).into_owned();
        let (outcome, after, error) = match result {
            Ok(Outcome::One(m) | Outcome::Begins(m)) => ("ok", Some(redact(m)), None),
            Ok(Outcome::Many(ms)) => ("ok", Some(Value::Array(ms.iter().map(redact).collect())), None),
            Ok(Outcome::Drop) => ("dropped", None, None),
            Err(e) => ("failed", None, Some(e.to_owned())),
        };
        let row = ProvenanceStep {
            run_id: self.run.clone(),
            route: self.route.clone(),
            message_id: self.message_id.clone(),
            trace_id: self.trace_id.clone(),
            key: self.key.clone(),
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            step: step.to_owned(),
            at: before.at,
            took_us: i64::try_from(before.started.elapsed().as_micros()).unwrap_or(i64::MAX),
            outcome: outcome.to_owned(),
            error,
            headers: before.headers,
            before: before.body,
            after,
        };
        if self.recorder.tx.try_send(row).is_err() {
            metrics::counter!(DROPPED).increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_read_from_the_body_or_a_header() {
        let mut msg = Message::json(serde_json::json!({ "deal": { "external_id": "crm:7", "n": 3 } }));
        msg.headers.insert("x-deal".into(), Value::String("D-9".into()));
        assert_eq!(KeyPath::parse("body.deal.external_id").and_then(|k| k.of(&msg)), Some("crm:7".into()));
        assert_eq!(KeyPath::parse("body.deal.n").and_then(|k| k.of(&msg)), Some("3".into()));
        assert_eq!(KeyPath::parse("headers.x-deal").and_then(|k| k.of(&msg)), Some("D-9".into()));
        assert_eq!(KeyPath::parse("body.nope").and_then(|k| k.of(&msg)), None);
        for bad in ["external_id", "meta.x", "body.", "body..a", "headers.a.b"] {
            assert!(KeyPath::parse(bad).is_none(), "{bad}");
        }
    }
}
