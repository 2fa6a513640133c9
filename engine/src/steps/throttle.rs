//! `throttle`: at most `rate` messages per `per`; faster messages wait their turn (a token
//! bucket), so a slow downstream is paced rather than flooded.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;

use super::{BuildStep, Outcome, Step, StepError};
use crate::config::duration::ConfigDuration;
use crate::config::node::Pos;
use crate::message::Message;
use crate::route::compile::CompileCx;
use crate::route::pipeline::RunCx;

/// `throttle: { rate: 10, per: 1s }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleSpec {
    rate: u32,
    #[serde(default = "one_second")]
    per: ConfigDuration,
}

fn one_second() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(1))
}

impl BuildStep for ThrottleSpec {
    fn build(&self, at: Pos, cx: &mut CompileCx<'_>) -> Option<Arc<dyn Step>> {
        if self.rate == 0 || self.per.0.is_zero() {
            cx.error(at, "throttle needs a rate above 0 per a period above 0");
            return None;
        }
        let interval = self.per.0 / self.rate;
        Some(Arc::new(Throttle { interval, burst: self.rate, next: Mutex::new(Instant::now()) }))
    }
}

struct Throttle {
    /// Time between two messages at the steady rate.
    interval: Duration,
    /// How many may pass at once after a quiet spell.
    burst: u32,
    /// When the next message may pass; never further back than one burst.
    next: Mutex<Instant>,
}

impl Throttle {
    fn reserve(&self) -> Duration {
        let now = Instant::now();
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        let earliest = now.checked_sub(self.interval * self.burst).unwrap_or(now);
        let slot = (*next).max(earliest);
        *next = slot + self.interval;
        slot.saturating_duration_since(now)
    }
}

#[async_trait]
impl Step for Throttle {
    async fn apply(&self, msg: Message, _cx: &RunCx) -> Result<Outcome, StepError> {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(Outcome::One(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_after_the_burst() {
        let t = Throttle { interval: Duration::from_millis(100), burst: 2, next: Mutex::new(Instant::now()) };
        let waits: Vec<Duration> = (0..4).map(|_| t.reserve()).collect();
        assert!(waits[0].is_zero() && waits[1] < Duration::from_millis(100), "{waits:?}");
        assert!(waits[3] > Duration::from_millis(150), "{waits:?}");
    }
}
