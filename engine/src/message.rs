//! The one type that flows through a route: from the source, through every step, to a sink.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Headers are string keys to JSON values, so transforms can set structured metadata.
pub type Headers = Map<String, Value>;

/// A message: what a source produced and steps transform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    #[serde(default)]
    pub headers: Headers,
    #[serde(default)]
    pub body: Body,
    #[serde(default)]
    pub meta: Meta,
}

/// A body is JSON when it parsed as JSON, raw bytes otherwise.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Json(Value),
    Bytes(Bytes),
}

/// Where a message is in its journey; set by the runtime, readable by scripts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(default)]
    pub route: String,
    /// The delivery attempt of the current step, starting at 1.
    #[serde(default)]
    pub attempt: u32,
    /// The partition key: a partitioned bus (Kafka) keeps the messages with one key on one
    /// partition, in order, and a consumer of it processes them in order. Set by the source
    /// (a Kafka record's key) or by the producer (the outbox relay's aggregate id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The span work on this message nests under: the caller's (from its `traceparent`) when
    /// it arrives; while a step runs, that step's, so the calls the step makes are its children.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    /// The step this message entered its route at: 0, or the step after an aggregate for the
    /// messages an aggregate made. A replay starts there.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resume_at: usize,
    /// Source-specific facts (HTTP method and path parameters, bus topic and offset, ...).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub source: Map<String, Value>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Message {
    /// A new message with a fresh time-ordered id.
    pub fn new(body: Body) -> Self {
        Self::with_id(uuid::Uuid::now_v7().to_string(), body)
    }

    /// A new message under an id the caller already has (an HTTP request's id, say).
    pub fn with_id(id: String, body: Body) -> Self {
        Self { id, headers: Headers::new(), body, meta: Meta::default() }
    }

    pub fn json(body: Value) -> Self {
        Self::new(Body::Json(body))
    }

    /// The same message with another body: headers, id and meta travel on.
    #[must_use]
    pub fn with_body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::Json(Value::Null)
    }
}

impl Body {
    /// The body as JSON: bytes become a UTF-8 string when they are text, base64 otherwise.
    pub fn to_json(&self) -> Value {
        match self {
            Body::Json(v) => v.clone(),
            Body::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => Value::String(s.to_owned()),
                Err(_) => Value::String(BASE64.encode(b)),
            },
        }
    }

    /// The body as JSON, borrowed when it already is JSON (validation reads, it need not copy).
    pub fn json(&self) -> std::borrow::Cow<'_, Value> {
        match self {
            Body::Json(v) => std::borrow::Cow::Borrowed(v),
            Body::Bytes(_) => std::borrow::Cow::Owned(self.to_json()),
        }
    }

    /// The body as bytes to put on a wire.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Body::Json(v) => Bytes::from(serde_json::to_vec(v).expect("a JSON value always serializes")),
            Body::Bytes(b) => b.clone(),
        }
    }

    /// Reads bytes as JSON when they parse, keeps them as bytes otherwise.
    pub fn from_bytes_lenient(bytes: Bytes) -> Self {
        // As deep as serde_json itself reads.
        match crate::json::from_slice(&bytes, 128) {
            Ok(v) => Body::Json(v),
            Err(_) => Body::Bytes(bytes),
        }
    }
}

/// Bytes bodies are stored as `{"$bytes": "<base64>"}` so a stored message round-trips.
impl Serialize for Body {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Body::Json(v) => v.serialize(s),
            Body::Bytes(b) => {
                let mut m = Map::new();
                m.insert("$bytes".into(), Value::String(BASE64.encode(b)));
                Value::Object(m).serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        if let Value::Object(m) = &v
            && m.len() == 1
            && let Some(Value::String(b64)) = m.get("$bytes")
        {
            return BASE64.decode(b64).map(|b| Body::Bytes(Bytes::from(b))).map_err(serde::de::Error::custom);
        }
        Ok(Body::Json(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_body_round_trips_through_json() {
        let mut m = Message::new(Body::Bytes(Bytes::from_static(&[0, 159, 146, 150])));
        m.headers.insert("k".into(), Value::from(1));
        let text = serde_json::to_string(&m).expect("serializes");
        let back: Message = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, m);
    }

    #[test]
    fn text_bytes_read_as_a_string() {
        let b = Body::from_bytes_lenient(Bytes::from_static(b"not json"));
        assert_eq!(b.to_json(), Value::String("not json".into()));
        let j = Body::from_bytes_lenient(Bytes::from_static(b"{\"a\":1}"));
        assert_eq!(j, Body::Json(serde_json::json!({"a": 1})));
    }
}
