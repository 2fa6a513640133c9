//! What the engine puts around every call to a connector, from options any connector may
//! have whatever its kind (read by the engine, not by the kind):
//!
//! ```yaml
//! crm:
//!   kind: http
//!   limits: { per_second: 7, burst: 7, concurrency: 4 }
//!   breaker: { failures: 5, window: 30s, open_for: 30s }
//! ```
//!
//! - `limits`: calls wait for a token of the connector's bucket (`per_second`, `burst`) and for
//!   one of `concurrency` slots. With `cache: redis://…` the bucket and the slots are in Redis,
//!   shared by every instance, so three instances together stay under a vendor's cap.
//! - `breaker`: `failures` calls failing as an outage (unavailable or retryable: refused
//!   connections, timeouts, 5xx, 429) within `window` open it. Open, calls fail at once as
//!   unavailable with a `Retry-After` of the time left, and the bus sources of the routes that
//!   call the connector take nothing new (an outage becomes a backlog, not dead letters).
//!   After `open_for` one call goes through as a probe: its success closes the breaker, its
//!   failure opens it again. The state is `junction_connector_breaker_state{connector}`
//!   (0 closed, 1 half-open, 2 open), not part of readiness.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ConnectorError;
use crate::cache::{Cache, Decision, Rate};
use crate::config::duration::ConfigDuration;
use crate::config::node::{Node, NodeError};

/// `limits: { per_second: 7, burst: 7, concurrency: 4 }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSpec {
    /// Calls a second at most (a token bucket).
    per_second: Option<f64>,
    /// Calls at once above the rate (default: `per_second` rounded up).
    burst: Option<u32>,
    /// Calls in progress at once, across every instance with a shared cache.
    concurrency: Option<u32>,
}

/// `breaker: { failures: 5, window: 30s, open_for: 30s }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakerSpec {
    /// Failures within `window` that open the breaker (default 5).
    failures: Option<u32>,
    /// Default 30s.
    window: Option<ConfigDuration>,
    /// How long it stays open before a probe (default 30s).
    open_for: Option<ConfigDuration>,
}

/// The options of a connector the engine reads itself; the kind never sees them.
pub(crate) const OPTIONS: &[&str] = &["limits", "breaker"];

/// How long a concurrency slot in a shared cache is held at most: a call that outlives it (or
/// an instance that died holding it) gives the slot back then.
const SLOT_TTL: Duration = Duration::from_secs(120);

/// How often a call waiting for a slot held in a shared cache looks again.
const SLOT_POLL: Duration = Duration::from_millis(10);

/// The limits and breaker of one connector, shared by every endpoint of it.
pub struct Guard {
    connector: String,
    rate: Option<Rate>,
    slots: Option<Slots>,
    cache: Option<Cache>,
    breaker: Option<Breaker>,
}

enum Slots {
    /// In this process.
    Local(Arc<Semaphore>),
    /// In the shared cache: keys `…:0` to `…:n-1`, each claimed by one call.
    Shared(u32),
}

/// How a guarded call went.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// It never went out (no token or slot to be had).
    NotSent,
    Succeeded,
    Failed(&'a ConnectorError),
}

impl<'a> Outcome<'a> {
    pub fn of<T>(result: &'a Result<T, ConnectorError>) -> Self {
        match result {
            Ok(_) => Outcome::Succeeded,
            Err(e) => Outcome::Failed(e),
        }
    }
}

/// What a call holds while it runs.
pub struct Permit {
    guard: Arc<Guard>,
    local: Option<OwnedSemaphorePermit>,
    shared: Option<String>,
    probe: bool,
    /// Whether [`Guard::leave`] took it back; a permit dropped without (its call panicked or
    /// was cancelled) gives back its slot and leaves the probe to the next call on drop.
    left: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.left {
            return;
        }
        if let (Some(key), Some(cache)) = (self.shared.take(), self.guard.cache.clone())
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move { cache.release(&key).await });
        }
        if let Some(b) = &self.guard.breaker {
            b.record(self.probe, Outcome::NotSent);
        }
    }
}

impl Guard {
    /// The guard a connector's `limits` and `breaker` options ask for, if any. `cache` is the
    /// running engine's (none while only checking).
    pub fn from_options(connector: &str, options: &Node, cache: Option<&Cache>) -> Result<Option<Guard>, NodeError> {
        let limits: Option<LimitsSpec> = options.get("limits").map(Node::parse).transpose()?;
        let breaker: Option<BreakerSpec> = options.get("breaker").map(Node::parse).transpose()?;
        if limits.is_none() && breaker.is_none() {
            return Ok(None);
        }
        let at = |key: &str| options.get(key).map(|n| n.pos);
        let mut rate = None;
        let mut slots = None;
        if let Some(l) = limits {
            if let Some(per_second) = l.per_second {
                if !(per_second > 0.0 && per_second.is_finite()) {
                    return Err(NodeError { message: "`limits.per_second` must be above 0".into(), pos: at("limits") });
                }
                let burst = l.burst.unwrap_or(per_second.ceil() as u32).max(1);
                rate = Some(Rate { per_second, burst });
            } else if l.burst.is_some() {
                return Err(NodeError { message: "`limits.burst` needs `per_second`".into(), pos: at("limits") });
            }
            if let Some(n) = l.concurrency {
                if n == 0 {
                    return Err(NodeError {
                        message: "`limits.concurrency` must be at least 1".into(),
                        pos: at("limits"),
                    });
                }
                let shared = cache.is_some_and(Cache::is_shared);
                slots =
                    Some(if shared { Slots::Shared(n) } else { Slots::Local(Arc::new(Semaphore::new(n as usize))) });
            }
        }
        let breaker = match breaker {
            None => None,
            Some(b) => {
                let failures = b.failures.unwrap_or(5);
                if failures == 0 {
                    return Err(NodeError {
                        message: "`breaker.failures` must be at least 1".into(),
                        pos: at("breaker"),
                    });
                }
                Some(Breaker::new(
                    connector,
                    failures,
                    b.window.map_or(Duration::from_secs(30), |d| d.0),
                    b.open_for.map_or(Duration::from_secs(30), |d| d.0),
                ))
            }
        };
        Ok(Some(Guard { connector: connector.to_owned(), rate, slots, cache: cache.cloned(), breaker }))
    }

    /// Whether the breaker is open now (and no probe is due), or its probe is out: the routes
    /// calling the connector take nothing new from their bus sources meanwhile.
    pub fn is_open(&self) -> bool {
        self.breaker.as_ref().is_some_and(Breaker::is_open)
    }

    /// Waits until the call may go: the breaker lets it through, a token and a slot are free.
    pub async fn enter(self: &Arc<Self>) -> Result<Permit, ConnectorError> {
        let probe = match &self.breaker {
            Some(b) => b.admit()?,
            None => false,
        };
        let mut permit = Permit { guard: self.clone(), local: None, shared: None, probe, left: false };
        if let Err(e) = self.wait_for_token().await {
            self.leave(permit, Outcome::NotSent).await;
            return Err(e);
        }
        match &self.slots {
            None => {}
            Some(Slots::Local(semaphore)) => permit.local = semaphore.clone().acquire_owned().await.ok(),
            Some(Slots::Shared(n)) => match self.claim_slot(*n).await {
                Ok(key) => permit.shared = Some(key),
                Err(e) => {
                    self.leave(permit, Outcome::NotSent).await;
                    return Err(e);
                }
            },
        }
        Ok(permit)
    }

    /// Gives back what the call held, and tells the breaker how it went.
    pub async fn leave(&self, mut permit: Permit, outcome: Outcome<'_>) {
        permit.left = true;
        if let (Some(key), Some(cache)) = (permit.shared.take(), &self.cache)
            && let Err(e) = cache.release(&key).await
        {
            tracing::warn!(connector = %self.connector, error = %e, "cannot give back a concurrency slot; it frees itself within {SLOT_TTL:?}");
        }
        drop(permit.local.take());
        if let Some(b) = &self.breaker {
            b.record(permit.probe, outcome);
        }
    }

    async fn wait_for_token(&self) -> Result<(), ConnectorError> {
        let (Some(rate), Some(cache)) = (self.rate, &self.cache) else { return Ok(()) };
        let key = format!("junction:connector:{}:rate", self.connector);
        loop {
            match cache.take(&key, rate).await {
                Ok(Decision::Allowed { .. }) => return Ok(()),
                Ok(Decision::Limited { retry_after }) => tokio::time::sleep(retry_after).await,
                // Without the shared bucket the cap cannot be kept: better late than banned.
                Err(e) => {
                    return Err(ConnectorError::unavailable(format!(
                        "connector `{}`: cannot take from its rate limit: {e}",
                        self.connector
                    )));
                }
            }
        }
    }

    async fn claim_slot(&self, n: u32) -> Result<String, ConnectorError> {
        let Some(cache) = &self.cache else { return Ok(String::new()) };
        loop {
            for i in 0..n {
                let key = format!("junction:connector:{}:slot:{i}", self.connector);
                match cache.claim(&key, SLOT_TTL).await {
                    Ok(true) => return Ok(key),
                    Ok(false) => {}
                    Err(e) => {
                        return Err(ConnectorError::unavailable(format!(
                            "connector `{}`: cannot take a concurrency slot: {e}",
                            self.connector
                        )));
                    }
                }
            }
            tokio::time::sleep(SLOT_POLL).await;
        }
    }
}

/// The guards of a running engine's connectors by name, each with the version of the options
/// it was built from: a reload that keeps a connector's options keeps its guard (an open
/// breaker stays open), one that changes them starts a new one.
#[derive(Default)]
pub struct Guards {
    by_name: Mutex<HashMap<String, Versioned>>,
}

/// A connector's guard (none when its options ask for none) and the options' version.
type Versioned = (String, Option<Arc<Guard>>);

impl Guards {
    /// The guard of connector `name` whose options (`version`) are `options`.
    pub(crate) fn resolve(
        &self,
        name: &str,
        version: &str,
        options: &Node,
        cache: Option<&Cache>,
    ) -> Result<Option<Arc<Guard>>, NodeError> {
        let mut by_name = self.by_name.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((v, guard)) = by_name.get(name)
            && v == version
        {
            return Ok(guard.clone());
        }
        let guard = Guard::from_options(name, options, cache)?.map(Arc::new);
        by_name.insert(name.to_owned(), (version.to_owned(), guard.clone()));
        Ok(guard)
    }

    /// The guard of connector `name`, if it has one.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Guard>> {
        self.by_name.lock().unwrap_or_else(PoisonError::into_inner).get(name).and_then(|(_, g)| g.clone())
    }
}

/// A circuit breaker's state.
#[derive(Debug)]
enum State {
    Closed {
        failures: VecDeque<Instant>,
    },
    Open {
        until: Instant,
    },
    /// After `open_for`: one probe call is out (or about to be).
    HalfOpen {
        probing: bool,
    },
}

struct Breaker {
    connector: String,
    failures: u32,
    window: Duration,
    open_for: Duration,
    state: Mutex<State>,
    gauge: Gauge,
    opened: Counter,
}

impl Breaker {
    fn new(connector: &str, failures: u32, window: Duration, open_for: Duration) -> Self {
        let gauge = crate::telemetry::breaker_state(connector);
        gauge.set(0.0);
        Self {
            connector: connector.to_owned(),
            failures,
            window,
            open_for,
            state: Mutex::new(State::Closed { failures: VecDeque::new() }),
            gauge,
            opened: crate::telemetry::breaker_opened(connector),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Open, or half-open with its probe out: calls now would fail at once.
    fn is_open(&self) -> bool {
        match *self.state() {
            State::Open { until } => until > Instant::now(),
            State::HalfOpen { probing } => probing,
            State::Closed { .. } => false,
        }
    }

    /// Whether a call may go now: `Ok(true)` when it is the probe of a half-open breaker.
    fn admit(&self) -> Result<bool, ConnectorError> {
        let mut state = self.state();
        let now = Instant::now();
        match &mut *state {
            State::Closed { .. } => Ok(false),
            State::Open { until } if *until > now => Err(self.refusal(*until - now)),
            State::Open { .. } => {
                *state = State::HalfOpen { probing: true };
                self.gauge.set(1.0);
                tracing::info!(connector = %self.connector, "circuit breaker half-open: one call goes through as a probe");
                Ok(true)
            }
            State::HalfOpen { probing } if *probing => Err(self.refusal(Duration::from_secs(1))),
            State::HalfOpen { probing } => {
                *probing = true;
                Ok(true)
            }
        }
    }

    fn refusal(&self, left: Duration) -> ConnectorError {
        ConnectorError::unavailable(format!(
            "connector `{}`: circuit breaker open after repeated failures; calls resume in {}s",
            self.connector,
            left.as_secs_f64().ceil()
        ))
        .with_retry_after(Some(left.max(Duration::from_millis(1))))
    }

    /// How a call went. Failures as an outage (unavailable, retryable) count towards opening;
    /// any answer of the other side to the probe, even a refusal, shows it is back.
    fn record(&self, probe: bool, outcome: Outcome<'_>) {
        let outage =
            matches!(outcome, Outcome::Failed(ConnectorError::Unavailable { .. } | ConnectorError::Retryable { .. }));
        let mut state = self.state();
        let now = Instant::now();
        match &mut *state {
            State::Closed { failures } if outage => {
                failures.push_back(now);
                while failures.front().is_some_and(|t| now.duration_since(*t) > self.window) {
                    failures.pop_front();
                }
                if failures.len() >= self.failures as usize {
                    self.open(&mut state, now);
                }
            }
            State::HalfOpen { .. } if probe && outage => self.open(&mut state, now),
            // The probe never went out: the next call probes instead.
            State::HalfOpen { probing } if probe && matches!(outcome, Outcome::NotSent) => *probing = false,
            State::HalfOpen { .. } if probe => {
                *state = State::Closed { failures: VecDeque::new() };
                self.gauge.set(0.0);
                tracing::info!(connector = %self.connector, "circuit breaker closed: the probe call was answered");
            }
            _ => {}
        }
    }

    fn open(&self, state: &mut State, now: Instant) {
        *state = State::Open { until: now + self.open_for };
        self.gauge.set(2.0);
        self.opened.increment(1);
        tracing::warn!(connector = %self.connector, open_for_ms = self.open_for.as_millis() as u64, "circuit breaker open: calls fail at once and the routes calling it pause their bus sources");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outage() -> ConnectorError {
        ConnectorError::unavailable("down")
    }

    #[test]
    fn opens_after_failures_in_the_window_fails_fast_then_probes_once() {
        let b = Breaker::new("t-breaker", 3, Duration::from_secs(10), Duration::from_millis(50));
        for _ in 0..2 {
            assert_eq!(b.admit().ok(), Some(false));
            b.record(false, Outcome::Failed(&outage()));
        }
        assert!(!b.is_open(), "two failures of three");
        // A refusal of the other side is not an outage.
        b.record(false, Outcome::Failed(&ConnectorError::rejected("bad input")));
        assert!(!b.is_open());
        b.record(false, Outcome::Failed(&outage()));
        assert!(b.is_open());
        let refused = b.admit().expect_err("open: fails fast");
        assert!(refused.retry_after().is_some_and(|d| d <= Duration::from_millis(50)), "{refused:?}");
        std::thread::sleep(Duration::from_millis(60));
        assert!(!b.is_open(), "due for a probe");
        assert_eq!(b.admit().ok(), Some(true), "the probe goes");
        assert!(b.admit().is_err(), "one probe at a time");
        assert!(b.is_open(), "sources hold back while the probe is out");
        b.record(true, Outcome::Failed(&outage()));
        assert!(b.is_open(), "a failed probe opens it again");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.admit().ok(), Some(true));
        b.record(true, Outcome::NotSent);
        assert_eq!(b.admit().ok(), Some(true), "a probe that never went out leaves the probe to the next call");
        b.record(true, Outcome::Succeeded);
        assert_eq!(b.admit().ok(), Some(false), "closed by the probe's success");
    }

    /// At most `concurrency` calls at once, whether the slots are in this process or claimed in
    /// a cache (here the in-process one, which answers claims as Redis does).
    async fn at_most(slots: Slots, cache: Option<Cache>) -> usize {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let guard = Arc::new(Guard {
            connector: format!("t-slots-{}", crate::trace::new_span_id()),
            rate: None,
            slots: Some(slots),
            cache,
            breaker: None,
        });
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (guard, now, most) = (guard.clone(), now.clone(), most.clone());
            calls.spawn(async move {
                let permit = guard.enter().await.expect("enter");
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                guard.leave(permit, Outcome::Succeeded).await;
            });
        }
        while calls.join_next().await.is_some() {}
        most.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn concurrency_is_bounded_in_process_and_through_a_shared_cache() {
        assert_eq!(at_most(Slots::Local(Arc::new(Semaphore::new(2))), None).await, 2);
        let cache = Cache::open("memory").await.expect("the in-process cache");
        assert_eq!(at_most(Slots::Shared(3), Some(cache)).await, 3);
    }

    #[tokio::test]
    async fn calls_wait_for_the_rate() {
        let cache = Cache::open("memory").await.expect("the in-process cache");
        let guard = Arc::new(Guard {
            connector: "t-rate".into(),
            rate: Some(Rate { per_second: 50.0, burst: 1 }),
            slots: None,
            cache: Some(cache),
            breaker: None,
        });
        let started = tokio::time::Instant::now();
        for _ in 0..6 {
            let permit = guard.enter().await.expect("enter");
            guard.leave(permit, Outcome::Succeeded).await;
        }
        // One at once, five more at 20 ms each.
        assert!(started.elapsed() >= Duration::from_millis(95), "{:?}", started.elapsed());
    }

    /// A call dropped half-way (cancelled, or its task panicked) gives its slot back and leaves
    /// the probe to the next call, rather than holding the breaker half-open for good.
    #[tokio::test]
    async fn a_dropped_call_gives_back_its_slot_and_its_probe() {
        let guard = Arc::new(Guard {
            connector: "t-drop".into(),
            rate: None,
            slots: Some(Slots::Local(Arc::new(Semaphore::new(1)))),
            cache: None,
            breaker: Some(Breaker::new("t-drop", 1, Duration::from_secs(10), Duration::from_millis(1))),
        });
        let first = guard.enter().await.expect("enter");
        guard.leave(first, Outcome::Failed(&outage())).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let probe = guard.enter().await.expect("the probe");
        assert!(guard.is_open(), "the probe is out");
        drop(probe);
        assert!(!guard.is_open(), "the probe was dropped: the next call probes");
        let next = tokio::time::timeout(Duration::from_secs(1), guard.enter()).await.expect("the slot came back");
        guard.leave(next.expect("enter"), Outcome::Succeeded).await;
        assert!(!guard.is_open());
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let b = Breaker::new("t-window", 2, Duration::from_millis(30), Duration::from_secs(10));
        b.record(false, Outcome::Failed(&outage()));
        std::thread::sleep(Duration::from_millis(40));
        b.record(false, Outcome::Failed(&outage()));
        assert!(!b.is_open());
        b.record(false, Outcome::Failed(&outage()));
        assert!(b.is_open());
    }
}
