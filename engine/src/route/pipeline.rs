//! Runs a message through a list of steps, retrying a failed step per the route's policy.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;

use crate::message::Message;
use crate::steps::{ErrorKind, Outcome, Step, StepError};
use crate::telemetry::StepMetrics;
use crate::telemetry::otlp::{Kind, Span};

/// Steps in order, compiled once.
#[derive(Clone, Default)]
pub struct Pipeline {
    pub steps: Vec<StepEntry>,
}

#[derive(Clone)]
pub struct StepEntry {
    /// How errors and logs name the step: `2:transform`.
    pub label: String,
    pub step: Arc<dyn Step>,
    /// Only steps that call out can fail in a way that passes; the others are not retried,
    /// which also spares cloning every message just in case.
    pub retryable: bool,
    pub metrics: StepMetrics,
}

/// How a failing step is retried before the message is dead-lettered.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial: Duration,
    pub max: Duration,
    /// Doubling delays when true, `initial` every time when false.
    pub exponential: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 1, initial: Duration::from_millis(200), max: Duration::from_secs(30), exponential: true }
    }
}

impl RetryPolicy {
    /// Exponential backoff with "equal jitter": half the delay fixed, half random, so
    /// retries of many messages spread out instead of arriving together.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let factor = if self.exponential { 2u32.saturating_pow(attempt.saturating_sub(1)) } else { 1 };
        let exp = self.initial.saturating_mul(factor);
        let capped = exp.min(self.max);
        let half = capped / 2;
        let jitter = rand::rng().random_range(0..=half.as_millis() as u64);
        let backoff = half + Duration::from_millis(jitter);
        match retry_after {
            Some(after) => after.min(self.max).max(backoff),
            None => backoff,
        }
    }
}

/// Work for when a run's outcome is safe: what came out delivered, or the message stored as a
/// dead letter (an aggregate then forgets the group it released).
pub type Settle = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// What one run of a route carries besides the message.
pub struct RunCx {
    pub route: Arc<str>,
    pub retry: RetryPolicy,
    /// The run's span, which step spans nest under; `None` when spans are not exported.
    pub span: Option<String>,
    on_failure: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    settled: Mutex<Vec<Settle>>,
    /// Set when a step made a new message to carry on with (an aggregate's output).
    origin: Mutex<Option<(Message, usize)>>,
    /// Turns true when the process stops; see [`RunCx::stops_on`].
    stopping: Option<watch::Receiver<bool>>,
    /// Where each step's work is recorded, when this run's is (see `crate::provenance`).
    pub trail: Option<crate::provenance::Trail>,
}

impl RunCx {
    pub fn new(route: Arc<str>, retry: RetryPolicy) -> Self {
        Self {
            route,
            retry,
            span: None,
            on_failure: Mutex::default(),
            settled: Mutex::default(),
            origin: Mutex::default(),
            stopping: None,
            trail: None,
        }
    }

    /// Lets a stop of the process end the run while it waits to retry a step: it fails
    /// [`Failure::left`], neither finished nor dead-lettered, for a source that can leave the
    /// message unacked to be delivered again after the restart (a broker's, the bus's).
    /// Waiting out the backoff instead would hold the stop for up to the whole retry policy.
    #[must_use]
    pub fn stops_on(mut self, stopping: watch::Receiver<bool>) -> Self {
        self.stopping = Some(stopping);
        self
    }

    /// Waits `wait` before a retry; `false` when the process stops first (or had stopped) and
    /// the run may be left. A run that began a message of its own (an aggregate's output)
    /// waits: that message exists nowhere else, so it must end done or dead-lettered.
    async fn wait_to_retry(&self, wait: Duration) -> bool {
        let begun = self.origin.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some();
        match &self.stopping {
            Some(stopping) if !begun => crate::connector::slept(wait, &mut stopping.clone()).await,
            _ => {
                tokio::time::sleep(wait).await;
                true
            }
        }
    }

    fn begins(&self, msg: Message, at: usize) {
        *self.origin.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((msg, at));
    }

    /// The message to dead-letter if the run failed after a step began a new one, and the
    /// step to resume at.
    pub fn take_origin(&self) -> Option<(Message, usize)> {
        self.origin.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    /// Registers an undo for when the run ends in failure (an idempotent step forgets its key
    /// so a replay of the dead letter is not dropped as a duplicate).
    pub fn on_failure(&self, undo: impl FnOnce() + Send + 'static) {
        self.on_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(Box::new(undo));
    }

    /// Registers work for when the run's outcome is safe; see [`Settle`].
    pub fn on_settled(&self, work: Settle) {
        self.settled.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(work);
    }

    /// Does the work registered with [`RunCx::on_settled`]. Call it once what came out of the
    /// run was delivered or its message stored as a dead letter, never before.
    pub async fn settle(&self) {
        let work = std::mem::take(&mut *self.settled.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for w in work {
            w.await;
        }
    }

    pub fn run_failure_hooks(&self) {
        let hooks = std::mem::take(&mut *self.on_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for undo in hooks {
            undo();
        }
    }
}

/// A message that could not get through a step.
#[derive(Debug, Clone)]
pub struct Failure {
    pub step: String,
    pub error: StepError,
    pub attempts: u32,
    /// The process stopped while the step waited to be retried (see [`RunCx::stops_on`]):
    /// the message is to be left for redelivery, not dead-lettered.
    pub left: bool,
}

impl Pipeline {
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs `msg` through every step; returns what came out of the last one (several after a
    /// split, none after a filter).
    pub async fn run(&self, msg: Message, cx: &RunCx) -> Result<Vec<Message>, Failure> {
        self.run_from(0, msg, cx).await
    }

    /// Runs `msg` from step `start` on (an aggregate's timeout resumes after the aggregate).
    pub async fn run_from(&self, start: usize, msg: Message, cx: &RunCx) -> Result<Vec<Message>, Failure> {
        let mut out = Vec::new();
        // Each piece of work knows whether it descends from a message a step began (an
        // aggregate's output), which is then what a failure of it dead-letters. Work is done
        // depth first, so the latest begun message is the one such a piece descends from.
        let mut work = VecDeque::from([(start, msg, false)]);
        while let Some((index, msg, begun)) = work.pop_front() {
            let Some(entry) = self.steps.get(index) else {
                out.push(msg);
                continue;
            };
            let before = cx.trail.as_ref().map(|t| t.before(&msg));
            let result = apply_with_retry(entry, msg, cx).await;
            if let (Some(trail), Some(before)) = (&cx.trail, before) {
                trail.after(&entry.label, before, result.as_ref().map_err(|f| f.error.message.as_str()));
            }
            let outcome = match result {
                Ok(outcome) => outcome,
                Err(failure) => {
                    if !begun {
                        // The run's own message failed after an earlier piece of it began a
                        // message (a split item completed a group): dead-letter the run's.
                        cx.take_origin();
                    }
                    return Err(failure);
                }
            };
            match outcome {
                Outcome::One(m) => work.push_front((index + 1, m, begun)),
                Outcome::Begins(m) => {
                    cx.begins(m.clone(), index + 1);
                    work.push_front((index + 1, m, true));
                }
                Outcome::Many(ms) => {
                    for m in ms.into_iter().rev() {
                        work.push_front((index + 1, m, begun));
                    }
                }
                Outcome::Drop => {}
            }
        }
        Ok(out)
    }
}

async fn apply_with_retry(entry: &StepEntry, mut msg: Message, cx: &RunCx) -> Result<Outcome, Failure> {
    let mut attempt = 1;
    loop {
        msg.meta.attempt = attempt;
        let retry_left = entry.retryable && attempt < cx.retry.attempts;
        let spare = retry_left.then(|| msg.clone());
        let span = step_span(entry, &mut msg, cx);
        let started = std::time::Instant::now();
        let result = entry.step.apply(msg, cx).await;
        entry.metrics.duration.record(started.elapsed());
        if let Some(span) = span {
            span.end(result.as_ref().err().map(|e| e.message.as_str()));
        }
        match result {
            Ok(outcome) => {
                entry.metrics.ok.increment(1);
                return Ok(outcome);
            }
            Err(error) => match spare {
                Some(original) if error.kind == ErrorKind::Retryable => {
                    let wait = cx.retry.delay(attempt, error.retry_after);
                    tracing::warn!(route = %cx.route, step = %entry.label, attempt, error = %error.message, wait_ms = wait.as_millis() as u64, "step failed, retrying");
                    if !cx.wait_to_retry(wait).await {
                        tracing::info!(route = %cx.route, step = %entry.label, message_id = %original.id, "stopping: the message is left to be delivered again, not retried here");
                        return Err(Failure { step: entry.label.clone(), error, attempts: attempt, left: true });
                    }
                    entry.metrics.retried.increment(1);
                    msg = original;
                    attempt += 1;
                }
                _ => {
                    entry.metrics.failed.increment(1);
                    return Err(Failure { step: entry.label.clone(), error, attempts: attempt, left: false });
                }
            },
        }
    }
}

/// The span of one attempt when spans are exported; the message carries its id meanwhile, so
/// the calls the step makes nest under it.
fn step_span(entry: &StepEntry, msg: &mut Message, cx: &RunCx) -> Option<Span> {
    let trace = msg.meta.trace_id.as_deref()?;
    let mut span = Span::start(trace, cx.span.as_deref(), Kind::Internal, format_args!("step {}", entry.label))?;
    span.set("junction.route", &*cx.route);
    span.set("junction.step", entry.label.as_str());
    span.set("junction.attempt", msg.meta.attempt);
    msg.meta.parent_span_id = Some(span.id().to_owned());
    Some(span)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A step made of a function of the message's `n`.
    struct Fn(fn(Message) -> Result<Outcome, StepError>);

    #[async_trait::async_trait]
    impl Step for Fn {
        async fn apply(&self, msg: Message, _cx: &RunCx) -> Result<Outcome, StepError> {
            (self.0)(msg)
        }
    }

    fn pipeline(steps: Vec<fn(Message) -> Result<Outcome, StepError>>) -> Pipeline {
        let steps = steps
            .into_iter()
            .enumerate()
            .map(|(i, f)| StepEntry {
                label: format!("{i}:fn"),
                step: Arc::new(Fn(f)),
                retryable: false,
                metrics: crate::telemetry::StepMetrics::new("r", &format!("{i}:fn")),
            })
            .collect();
        Pipeline { steps }
    }

    fn n(msg: &Message) -> i64 {
        msg.body.to_json()["n"].as_i64().unwrap_or(0)
    }

    /// A split of items 1 and 2, where item 1 begins a message (as an aggregate completing a
    /// group) and the item `fails` fails a step later.
    async fn failing_after_a_begun_message(fails: i64) -> Option<Message> {
        let split: fn(Message) -> Result<Outcome, StepError> =
            |_| Ok(Outcome::Many(vec![Message::json(json!({ "n": 1 })), Message::json(json!({ "n": 2 }))]));
        let begin: fn(Message) -> Result<Outcome, StepError> =
            |m| Ok(if n(&m) == 1 { Outcome::Begins(Message::json(json!({ "n": 10 }))) } else { Outcome::One(m) });
        let fail_10: fn(Message) -> Result<Outcome, StepError> =
            |m| if n(&m) == 10 { Err(StepError::fatal("boom")) } else { Ok(Outcome::One(m)) };
        let fail_2: fn(Message) -> Result<Outcome, StepError> =
            |m| if n(&m) == 2 { Err(StepError::fatal("boom")) } else { Ok(Outcome::One(m)) };
        let p = pipeline(vec![split, begin, if fails == 10 { fail_10 } else { fail_2 }]);
        let cx = RunCx::new("r".into(), RetryPolicy::default());
        assert!(p.run(Message::json(json!({ "n": 0 })), &cx).await.is_err());
        cx.take_origin().map(|(m, _)| m)
    }

    #[tokio::test]
    async fn a_failure_dead_letters_the_message_it_descends_from() {
        let begun = failing_after_a_begun_message(10).await.expect("the begun message failed");
        assert_eq!(n(&begun), 10);
        assert!(
            failing_after_a_begun_message(2).await.is_none(),
            "item 2 is not part of the begun message: the run's own message is dead-lettered"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            attempts: 10,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            exponential: true,
        };
        for _ in 0..50 {
            let d1 = p.delay(1, None);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100), "{d1:?}");
            let d3 = p.delay(3, None);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400), "{d3:?}");
            let d10 = p.delay(10, None);
            assert!(d10 <= Duration::from_secs(1), "{d10:?}");
        }
        assert!(p.delay(1, Some(Duration::from_millis(700))) >= Duration::from_millis(700));
        assert!(p.delay(1, Some(Duration::from_secs(60))) <= Duration::from_secs(1));
    }
}
