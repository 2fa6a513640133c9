//! `request`: call a connector and continue with its reply as the body.

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

/// `request: { connector: masterdeal, op: upsert_deal }`
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct RequestSpec(EndpointSpec);

impl BuildStep for RequestSpec {
    fn build(&self, _at: Pos, cx: &mut CompileCx<'_>) -> Option<Arc<dyn Step>> {
        let endpoint = cx.endpoint(Role::Request, &self.0.0, &[])?;
        Some(Arc::new(Request { endpoint }))
    }
}

struct Request {
    endpoint: Arc<dyn Endpoint>,
}

#[async_trait]
impl Step for Request {
    fn calls_out(&self) -> bool {
        true
    }

    async fn apply(&self, mut msg: Message, _cx: &RunCx) -> Result<Outcome, StepError> {
        let reply = self.endpoint.request(&msg).await?;
        msg.body = reply.body;
        msg.headers.extend(reply.headers);
        Ok(Outcome::One(msg))
    }
}
