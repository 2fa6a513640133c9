//! A message as an AMQP message and back. The body is the payload (JSON as JSON text with
//! `content-type: application/json`, bytes as they are); the id is the `message-id` property;
//! each header is an AMQP header (a string as a long string, any other JSON value as its JSON
//! text); the key travels in `junction-key` and the trace in `traceparent`. Messages are
//! persistent (delivery mode 2).

use bytes::Bytes;
use junction_engine::{Body, Message, trace};
use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use serde_json::Value;

/// The header that carries the message's key (its order lane; RabbitMQ itself has none).
pub(super) const KEY_HEADER: &str = "junction-key";
const TRACEPARENT: &str = "traceparent";
/// The header quorum queues count redeliveries in.
const DELIVERY_COUNT: &str = "x-delivery-count";

/// The payload and properties of a message.
pub(super) fn properties_of(msg: &Message) -> (Bytes, BasicProperties) {
    let mut headers = FieldTable::default();
    if let Some(key) = &msg.meta.key {
        headers.insert(KEY_HEADER.into(), long_string(key));
    }
    if let Some(trace) = &msg.meta.trace_id {
        let span = msg.meta.parent_span_id.clone().unwrap_or_else(trace::new_span_id);
        headers.insert(TRACEPARENT.into(), long_string(&trace::traceparent(trace, &span)));
    }
    for (name, value) in &msg.headers {
        // AMQP names are short strings (255 bytes at most); a longer one cannot travel.
        let Ok(name) = ShortString::try_new(name.as_str()) else { continue };
        if name.as_str() == KEY_HEADER || name.as_str() == TRACEPARENT {
            continue;
        }
        let text = match value {
            Value::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
            other => std::borrow::Cow::Owned(other.to_string()),
        };
        headers.insert(name, long_string(&text));
    }
    let mut properties = BasicProperties::default().with_delivery_mode(2).with_headers(headers);
    if let Ok(id) = ShortString::try_new(msg.id.as_str()) {
        properties = properties.with_message_id(id);
    }
    if matches!(msg.body, Body::Json(_)) {
        properties = properties.with_content_type("application/json".into());
    }
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        properties = properties.with_timestamp(now.as_secs());
    }
    (msg.body.to_bytes(), properties)
}

pub(super) fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text.as_bytes().to_vec()))
}

/// The message a delivery carries, with where it came from in `meta.source`: `queue`,
/// `exchange`, `routing_key`, `redelivered`, and `delivery_count` once a quorum queue
/// redelivered it.
pub(super) fn message_of(queue: &str, delivery: &Delivery) -> Message {
    let body = if delivery.data.is_empty() {
        Body::Json(Value::Null)
    } else {
        Body::from_bytes_lenient(Bytes::copy_from_slice(&delivery.data))
    };
    let props = &delivery.properties;
    let id = props.message_id().as_ref().map(|id| id.as_str().to_owned());
    let mut msg = Message::with_id(String::new(), body);
    let mut delivery_count = None;
    if let Some(headers) = props.headers() {
        for (name, value) in headers.inner() {
            match name.as_str() {
                KEY_HEADER => msg.meta.key = Some(text_of(value)),
                TRACEPARENT => {
                    if let Some((trace, parent)) = trace::ids_of(&text_of(value)) {
                        msg.meta.trace_id = Some(trace);
                        msg.meta.parent_span_id = Some(parent);
                    }
                }
                DELIVERY_COUNT => delivery_count = json_of(value).as_u64(),
                other => {
                    msg.headers.insert(other.to_owned(), json_of(value));
                }
            }
        }
    }
    // A message another client published without an id: only a fresh one can be given.
    msg.id = id.unwrap_or_else(|| format!("{queue}-{}-{}", delivery.delivery_tag, trace::new_span_id()));
    let source = &mut msg.meta.source;
    source.insert("queue".into(), queue.into());
    source.insert("exchange".into(), delivery.exchange.as_str().into());
    source.insert("routing_key".into(), delivery.routing_key.as_str().into());
    source.insert("redelivered".into(), delivery.redelivered.into());
    if let Some(count) = delivery_count {
        source.insert("delivery_count".into(), count.into());
    }
    msg
}

fn text_of(value: &AMQPValue) -> String {
    match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        other => json_of(other).to_string(),
    }
}

/// A header as JSON: strings as strings, numbers and booleans as themselves.
fn json_of(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => (*b).into(),
        AMQPValue::ShortShortInt(n) => (*n).into(),
        AMQPValue::ShortShortUInt(n) => (*n).into(),
        AMQPValue::ShortInt(n) => (*n).into(),
        AMQPValue::ShortUInt(n) => (*n).into(),
        AMQPValue::LongInt(n) => (*n).into(),
        AMQPValue::LongUInt(n) => (*n).into(),
        AMQPValue::LongLongInt(n) => (*n).into(),
        AMQPValue::Timestamp(n) => (*n).into(),
        AMQPValue::Float(n) => (*n).into(),
        AMQPValue::Double(n) => (*n).into(),
        AMQPValue::LongString(_) | AMQPValue::ShortString(_) => text_of(value).into(),
        AMQPValue::FieldArray(items) => items.as_slice().iter().map(json_of).collect(),
        AMQPValue::FieldTable(table) => table
            .inner()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), json_of(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        AMQPValue::Void => Value::Null,
        other => format!("{other:?}").into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn delivered(msg: &Message) -> Delivery {
        let (payload, properties) = properties_of(msg);
        let mut d = Delivery::mock(7, "junction".into(), "deals".into(), false, payload.to_vec());
        d.properties = properties;
        d
    }

    #[test]
    fn a_message_survives_the_trip_with_its_id_key_headers_and_trace() {
        let mut msg = Message::json(json!({ "deal_id": 7 }));
        msg.headers.insert("event_type".into(), json!("deal.won"));
        msg.headers.insert("seq".into(), json!(3));
        msg.meta.key = Some("7".into());
        msg.meta.trace_id = Some("0af7651916cd43dd8448eb211c80319c".into());
        msg.meta.parent_span_id = Some("b7ad6b7169203331".into());
        let (_, props) = properties_of(&msg);
        assert_eq!(props.delivery_mode(), &Some(2), "persistent");
        let back = message_of("deals.g", &delivered(&msg));
        assert_eq!(back.id, msg.id);
        assert_eq!(back.body, msg.body);
        assert_eq!(back.headers["event_type"], json!("deal.won"));
        assert_eq!(back.headers["seq"], json!("3"), "non-string headers arrive as their JSON text");
        assert!(!back.headers.contains_key(KEY_HEADER) && !back.headers.contains_key(TRACEPARENT));
        assert_eq!(back.meta.key.as_deref(), Some("7"));
        assert_eq!(back.meta.trace_id, msg.meta.trace_id);
        assert_eq!(back.meta.parent_span_id, msg.meta.parent_span_id);
        assert_eq!(back.meta.source["queue"], json!("deals.g"));
        assert_eq!(back.meta.source["routing_key"], json!("deals"));
    }

    #[test]
    fn a_foreign_message_gets_an_id_keeps_its_bytes_and_typed_headers() {
        let mut d = Delivery::mock(9, "".into(), "raw".into(), true, b"not json \xff".to_vec());
        let mut headers = FieldTable::default();
        headers.insert("x-delivery-count".into(), AMQPValue::LongLongInt(2));
        headers.insert("retries".into(), AMQPValue::LongInt(4));
        headers.insert("flag".into(), AMQPValue::Boolean(true));
        d.properties = BasicProperties::default().with_headers(headers);
        let msg = message_of("raw", &d);
        assert!(msg.id.starts_with("raw-9-"), "{}", msg.id);
        assert_eq!(msg.body, Body::Bytes(Bytes::from_static(b"not json \xff")));
        assert_eq!(msg.headers["retries"], json!(4));
        assert_eq!(msg.headers["flag"], json!(true));
        assert_eq!(msg.meta.source["delivery_count"], json!(2));
        assert_eq!(msg.meta.source["redelivered"], json!(true));
    }
}
