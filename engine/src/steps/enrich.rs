//! `enrich`: call a connector and merge its reply into the message (content enricher).

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use super::endpoint::EndpointSpec;
use super::{BuildStep, Outcome, Step, StepError};
use crate::config::node::Pos;
use crate::connector::{Endpoint, Role};
use crate::message::{Body, Message};
use crate::route::compile::CompileCx;
use crate::route::pipeline::RunCx;
use crate::script::{Script, ScriptEngine, ScriptInput};

/// `enrich: { connector: crm, op: get_company, input: "#{ id: body.company_id }", merge: "body.company = reply; body" }`.
/// `input` (a script over `body`, `headers` and `meta`) makes what is sent, the message's body
/// when absent. The merge script sees `body`, `headers`, `meta` and `reply` (the reply's
/// body); without `merge`, an object reply's fields are merged into an object body.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct EnrichSpec(EndpointSpec);

impl BuildStep for EnrichSpec {
    fn build(&self, _at: Pos, cx: &mut CompileCx<'_>) -> Option<Arc<dyn Step>> {
        let node = &self.0.0;
        let merge = match node.get("merge") {
            Some(m) => Some(super::transform::script_source(m, m.pos, cx)?),
            None => None,
        };
        let input = match node.get("input") {
            Some(i) => Some(super::transform::script_source(i, i.pos, cx)?),
            None => None,
        };
        let endpoint = cx.endpoint(Role::Request, node, &["merge", "input"])?;
        Some(Arc::new(Enrich { engine: cx.scripts.clone(), endpoint, input, merge }))
    }
}

struct Enrich {
    engine: Arc<ScriptEngine>,
    endpoint: Arc<dyn Endpoint>,
    input: Option<Script>,
    merge: Option<Script>,
}

#[async_trait]
impl Step for Enrich {
    fn calls_out(&self) -> bool {
        true
    }

    async fn apply(&self, mut msg: Message, _cx: &RunCx) -> Result<Outcome, StepError> {
        let body = msg.body.to_json();
        let reply = match &self.input {
            Some(script) => {
                let input = ScriptInput { body: &body, headers: &msg.headers, meta: &msg.meta, vars: &[] };
                let sent = msg.clone().with_body(Body::Json(self.engine.run(script, input)?.body));
                self.endpoint.request(&sent).await?
            }
            None => self.endpoint.request(&msg).await?,
        };
        let reply = reply.body.to_json();
        let merged = match &self.merge {
            Some(script) => {
                let vars = [("reply", &reply)];
                let out = self
                    .engine
                    .run(script, ScriptInput { body: &body, headers: &msg.headers, meta: &msg.meta, vars: &vars })?;
                if let Some(headers) = out.headers {
                    msg.headers = headers;
                }
                out.body
            }
            None => shallow_merge(body, reply),
        };
        msg.body = Body::Json(merged);
        Ok(Outcome::One(msg))
    }
}

fn shallow_merge(body: Value, reply: Value) -> Value {
    match (body, reply) {
        (Value::Object(mut b), Value::Object(r)) => {
            b.extend(r);
            Value::Object(b)
        }
        (Value::Null, r) => r,
        (b, _) => b,
    }
}
