//! `to`: a one-way send; the message goes on unchanged once the sink has taken it.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::endpoint::EndpointSpec;
use super::{BuildStep, Outcome, Step, StepError};
use crate::config::node::Pos;
use crate::connector::{Endpoint, Role};
use crate::message::Message;
use crate::route::compile::CompileCx;
use crate::route::pipeline::RunCx;

/// `to: { connector: bus, topic: masterdeal.deal.upserted }`
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct ToSpec(EndpointSpec);

impl BuildStep for ToSpec {
    fn build(&self, _at: Pos, cx: &mut CompileCx<'_>) -> Option<Arc<dyn Step>> {
        let endpoint = cx.endpoint(Role::Send, &self.0.0, &[])?;
        Some(Arc::new(To { endpoint }))
    }
}

struct To {
    endpoint: Arc<dyn Endpoint>,
}

#[async_trait]
impl Step for To {
    fn calls_out(&self) -> bool {
        true
    }

    async fn apply(&self, msg: Message, _cx: &RunCx) -> Result<Outcome, StepError> {
        self.endpoint.send(&msg).await?;
        Ok(Outcome::One(msg))
    }
}
