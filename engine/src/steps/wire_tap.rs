//! `wire_tap`: a copy goes to another endpoint in the background; the message goes on at once.
//! At most 64 copies per step are in flight; beyond that the route waits (bounded, not lost).

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::endpoint::EndpointSpec;
use super::{BuildStep, Outcome, Step, StepError};
use crate::config::node::Pos;
use crate::connector::{Endpoint, Role};
use crate::message::Message;
use crate::route::compile::CompileCx;
use crate::route::pipeline::RunCx;

const MAX_TAPS_IN_FLIGHT: usize = 64;

/// `wire_tap: { connector: audit_log }`
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct WireTapSpec(EndpointSpec);

impl BuildStep for WireTapSpec {
    fn build(&self, _at: Pos, cx: &mut CompileCx<'_>) -> Option<Arc<dyn Step>> {
        let endpoint = cx.endpoint(Role::Send, &self.0.0, &[])?;
        Some(Arc::new(WireTap { endpoint, permits: Arc::new(Semaphore::new(MAX_TAPS_IN_FLIGHT)) }))
    }
}

struct WireTap {
    endpoint: Arc<dyn Endpoint>,
    permits: Arc<Semaphore>,
}

#[async_trait]
impl Step for WireTap {
    fn calls_out(&self) -> bool {
        true
    }

    async fn apply(&self, msg: Message, cx: &RunCx) -> Result<Outcome, StepError> {
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| StepError::fatal("wire tap closed"))?;
        let endpoint = self.endpoint.clone();
        let copy = msg.clone();
        let route = cx.route.clone();
        tokio::spawn(async move {
            if let Err(e) = endpoint.send(&copy).await {
                tracing::warn!(route = %route, message_id = %copy.id, error = %e, tap = %endpoint.describe(), "wire tap failed");
            }
            drop(permit);
        });
        Ok(Outcome::One(msg))
    }
}
