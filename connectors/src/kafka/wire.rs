//! A message as a Kafka record and back. The body is the record's value (JSON as JSON text,
//! bytes as they are); each header is a record header (a string as its text, any other JSON
//! value as its JSON text, so it arrives as that text); the message id travels in
//! `junction-id` and the trace in `traceparent`. The key is the message's `meta.key`.

use bytes::Bytes;
use junction_engine::{Body, Message, trace};
use rdkafka::Message as _;
use rdkafka::message::{Header, Headers as _, OwnedHeaders, OwnedMessage};
use serde_json::Value;

/// The record header that carries the message id.
pub(super) const ID_HEADER: &str = "junction-id";
const TRACEPARENT: &str = "traceparent";

/// The record headers of a message.
pub(super) fn headers_of(msg: &Message) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new_with_capacity(msg.headers.len() + 2);
    headers = headers.insert(Header { key: ID_HEADER, value: Some(msg.id.as_bytes()) });
    if let Some(trace) = &msg.meta.trace_id {
        let span = msg.meta.parent_span_id.clone().unwrap_or_else(trace::new_span_id);
        let value = trace::traceparent(trace, &span);
        headers = headers.insert(Header { key: TRACEPARENT, value: Some(value.as_bytes()) });
    }
    for (name, value) in &msg.headers {
        if name == ID_HEADER || name == TRACEPARENT {
            continue;
        }
        let text = match value {
            Value::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
            other => std::borrow::Cow::Owned(other.to_string()),
        };
        headers = headers.insert(Header { key: name, value: Some(text.as_bytes()) });
    }
    headers
}

/// The message a record carries, with where it came from in `meta.source`: `topic`,
/// `partition`, `offset` and `timestamp` (milliseconds since the epoch, when the record has one).
pub(super) fn message_of(record: &OwnedMessage) -> Message {
    let body = match record.payload() {
        Some(bytes) => Body::from_bytes_lenient(Bytes::copy_from_slice(bytes)),
        None => Body::Json(Value::Null),
    };
    let mut id = None;
    let mut msg = Message::with_id(String::new(), body);
    if let Some(headers) = record.headers() {
        for header in headers.iter() {
            let text = header.value.map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
            match header.key {
                ID_HEADER => id = Some(text),
                TRACEPARENT => {
                    if let Some((trace, parent)) = trace::ids_of(&text) {
                        msg.meta.trace_id = Some(trace);
                        msg.meta.parent_span_id = Some(parent);
                    }
                }
                key => {
                    msg.headers.insert(key.to_owned(), Value::String(text));
                }
            }
        }
    }
    msg.id = id.unwrap_or_else(|| format!("{}-{}-{}", record.topic(), record.partition(), record.offset()));
    msg.meta.key = record.key().map(|k| String::from_utf8_lossy(k).into_owned());
    let source = &mut msg.meta.source;
    source.insert("topic".into(), record.topic().into());
    source.insert("partition".into(), record.partition().into());
    source.insert("offset".into(), record.offset().into());
    if let Some(ms) = record.timestamp().to_millis() {
        source.insert("timestamp".into(), ms.into());
    }
    msg
}

#[cfg(test)]
mod tests {
    use rdkafka::Timestamp;
    use serde_json::json;

    use super::*;

    fn record(msg: &Message, key: Option<&str>) -> OwnedMessage {
        OwnedMessage::new(
            Some(msg.body.to_bytes().to_vec()),
            key.map(|k| k.as_bytes().to_vec()),
            "deals".into(),
            Timestamp::CreateTime(1_700_000_000_000),
            3,
            42,
            Some(headers_of(msg)),
        )
    }

    #[test]
    fn a_message_survives_the_trip_with_its_id_key_headers_and_trace() {
        let mut msg = Message::json(json!({ "deal_id": 7, "name": "Acme" }));
        msg.headers.insert("event_type".into(), json!("deal.won"));
        msg.headers.insert("seq".into(), json!(3));
        msg.meta.trace_id = Some("0af7651916cd43dd8448eb211c80319c".into());
        msg.meta.parent_span_id = Some("b7ad6b7169203331".into());
        let back = message_of(&record(&msg, Some("7")));
        assert_eq!(back.id, msg.id);
        assert_eq!(back.body, msg.body);
        assert_eq!(back.headers["event_type"], json!("deal.won"));
        assert_eq!(back.headers["seq"], json!("3"), "non-string headers arrive as their JSON text");
        assert!(!back.headers.contains_key(ID_HEADER) && !back.headers.contains_key(TRACEPARENT));
        assert_eq!(back.meta.key.as_deref(), Some("7"));
        assert_eq!(back.meta.trace_id, msg.meta.trace_id);
        assert_eq!(back.meta.parent_span_id, msg.meta.parent_span_id);
        assert_eq!(back.meta.source["partition"], json!(3));
        assert_eq!(back.meta.source["offset"], json!(42));
        assert_eq!(back.meta.source["timestamp"], json!(1_700_000_000_000_i64));
    }

    #[test]
    fn a_foreign_record_gets_an_id_from_its_place_and_keeps_bytes_that_are_not_json() {
        let raw =
            OwnedMessage::new(Some(b"not json \xff".to_vec()), None, "raw".into(), Timestamp::NotAvailable, 0, 9, None);
        let msg = message_of(&raw);
        assert_eq!(msg.id, "raw-0-9");
        assert_eq!(msg.body, Body::Bytes(Bytes::from_static(b"not json \xff")));
        assert_eq!(msg.meta.key, None);
        assert!(!msg.meta.source.contains_key("timestamp"));
    }
}
