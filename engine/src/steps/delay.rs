//! `delay`: holds each message for a fixed time.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::{BuildStep, Outcome, Step, StepError};
use crate::config::duration::ConfigDuration;
use crate::config::node::Pos;
use crate::message::Message;
use crate::route::compile::CompileCx;
use crate::route::pipeline::RunCx;

/// `delay: 500ms`
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct DelaySpec(ConfigDuration);

impl BuildStep for DelaySpec {
    fn build(&self, _at: Pos, _cx: &mut CompileCx<'_>) -> Option<Arc<dyn Step>> {
        Some(Arc::new(Delay(self.0.0)))
    }
}

struct Delay(Duration);

#[async_trait]
impl Step for Delay {
    async fn apply(&self, msg: Message, _cx: &RunCx) -> Result<Outcome, StepError> {
        tokio::time::sleep(self.0).await;
        Ok(Outcome::One(msg))
    }
}
