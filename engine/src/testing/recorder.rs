//! Recorders: stand-ins for connectors in route tests. Each checks its step's options with
//! the real connector (so a test fails on a config the real one would refuse), records what it
//! is sent, and answers with the test's canned replies or failures.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::node::{Node, NodeError};
use crate::connector::{BuildCx, Bus, Connector, ConnectorError, Consumer, Endpoint, Role};
use crate::message::{Body, Message};

/// A canned answer for one operation (or `default` for any).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    /// The reply body; `reply: null` is a null body, an absent `reply` echoes what was sent.
    #[serde(default, deserialize_with = "present")]
    pub reply: Option<Value>,
    /// Fail with this message instead.
    #[serde(default)]
    pub fail: Option<String>,
    #[serde(default)]
    pub retryable: bool,
    /// Fail only the first `times` calls, then reply (default: always).
    #[serde(default)]
    pub times: Option<u32>,
}

/// One call a recorder received.
pub type Call = Map<String, Value>;

/// The calls of one case, shared by every recorder.
#[derive(Default, Clone)]
pub struct Journal(Arc<Mutex<Vec<Call>>>);

impl Journal {
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn push(&self, call: Call) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(call);
    }
}

pub struct Recorder {
    pub name: String,
    pub real: Arc<dyn Connector>,
    pub replies: HashMap<String, Reply>,
    pub journal: Journal,
}

impl Connector for Recorder {
    fn kind(&self) -> &'static str {
        self.real.kind()
    }

    fn endpoint(&self, role: Role, options: &Node, cx: &BuildCx<'_>) -> Result<Arc<dyn Endpoint>, NodeError> {
        let real = self.real.endpoint(role, options, cx)?;
        let op = options.get("op").and_then(Node::as_str).map_or_else(|| "default".to_owned(), str::to_owned);
        let reply = self.replies.get(&op).or_else(|| self.replies.get("default")).cloned();
        let options = match options.to_json() {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        Ok(Arc::new(Recording {
            connector: self.name.clone(),
            description: real.describe(),
            options,
            reply,
            calls: AtomicU32::new(0),
            journal: self.journal.clone(),
        }))
    }

    /// A route test runs the steps only: the source is checked by the real connector.
    fn consumer(&self, route: &str, options: &Node, cx: &BuildCx<'_>) -> Result<Arc<dyn Consumer>, NodeError> {
        self.real.consumer(route, options, cx)
    }

    fn bus(&self) -> Option<Arc<dyn Bus>> {
        self.real.bus()
    }
}

struct Recording {
    connector: String,
    description: String,
    options: Map<String, Value>,
    reply: Option<Reply>,
    calls: AtomicU32,
    journal: Journal,
}

impl Recording {
    fn answer(&self, msg: &Message) -> Result<Message, ConnectorError> {
        let mut call = Map::new();
        call.insert("connector".into(), Value::String(self.connector.clone()));
        call.extend(self.options.clone());
        call.insert("body".into(), msg.body.to_json());
        if !msg.headers.is_empty() {
            call.insert("headers".into(), Value::Object(msg.headers.clone()));
        }
        self.journal.push(call);
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let Some(reply) = &self.reply else {
            return Ok(msg.clone());
        };
        if let Some(fail) = &reply.fail
            && reply.times.is_none_or(|t| n <= t)
        {
            return Err(if reply.retryable {
                ConnectorError::retryable(fail.clone())
            } else {
                ConnectorError::permanent(fail.clone())
            });
        }
        Ok(match &reply.reply {
            Some(v) => msg.clone().with_body(Body::Json(v.clone())),
            None => msg.clone(),
        })
    }
}

#[async_trait]
impl Endpoint for Recording {
    async fn send(&self, msg: &Message) -> Result<(), ConnectorError> {
        self.answer(msg).map(|_| ())
    }

    async fn request(&self, msg: &Message) -> Result<Message, ConnectorError> {
        self.answer(msg)
    }

    fn describe(&self) -> String {
        format!("recorder for {}", self.description)
    }
}

/// A field that is there, `null` included (serde's `Option` takes `null` for absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}
