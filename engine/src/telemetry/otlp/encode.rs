//! A batch of spans in the OTLP/HTTP JSON encoding (an `ExportTraceServiceRequest`): ids in
//! hex, times and integers as decimal strings, as the protobuf JSON mapping writes 64-bit
//! numbers.

use serde::Serialize;

use super::span::{SpanData, Value};

/// The body to POST to `/v1/traces` for `spans` of service `service`.
pub(super) fn export_request(service: &str, spans: &[SpanData]) -> Vec<u8> {
    let request = Request {
        resource_spans: [ResourceSpans {
            resource: Resource { attributes: [KeyValue { key: "service.name", value: AnyValue::String(service) }] },
            scope_spans: [ScopeSpans {
                scope: Scope { name: "junction", version: env!("CARGO_PKG_VERSION") },
                spans: spans.iter().map(JsonSpan::from).collect(),
            }],
        }],
    };
    serde_json::to_vec(&request).expect("structs of strings and numbers always serialize")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    resource_spans: [ResourceSpans<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    resource: Resource<'a>,
    scope_spans: [ScopeSpans<'a>; 1],
}

#[derive(Serialize)]
struct Resource<'a> {
    attributes: [KeyValue<'a>; 1],
}

#[derive(Serialize)]
struct ScopeSpans<'a> {
    scope: Scope,
    spans: Vec<JsonSpan<'a>>,
}

#[derive(Serialize)]
struct Scope {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonSpan<'a> {
    trace_id: &'a str,
    span_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<&'a str>,
    name: &'a str,
    kind: u8,
    start_time_unix_nano: String,
    end_time_unix_nano: String,
    attributes: Vec<KeyValue<'a>>,
    status: Status<'a>,
}

#[derive(Serialize)]
struct KeyValue<'a> {
    key: &'a str,
    value: AnyValue<'a>,
}

#[derive(Serialize)]
enum AnyValue<'a> {
    #[serde(rename = "stringValue")]
    String(&'a str),
    #[serde(rename = "intValue")]
    Int(String),
}

/// Code 0 is UNSET (the work went through), 2 is ERROR.
#[derive(Serialize)]
struct Status<'a> {
    code: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

impl<'a> From<&'a SpanData> for JsonSpan<'a> {
    fn from(s: &'a SpanData) -> Self {
        Self {
            trace_id: &s.trace_id,
            span_id: &s.span_id,
            parent_span_id: s.parent_span_id.as_deref(),
            name: &s.name,
            kind: s.kind as u8,
            start_time_unix_nano: s.start_ns.to_string(),
            end_time_unix_nano: s.end_ns.to_string(),
            attributes: s
                .attributes
                .iter()
                .map(|(key, value)| KeyValue {
                    key,
                    value: match value {
                        Value::Str(v) => AnyValue::String(v),
                        Value::Int(n) => AnyValue::Int(n.to_string()),
                    },
                })
                .collect(),
            status: Status { code: if s.error.is_some() { 2 } else { 0 }, message: s.error.as_deref() },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value as Json, json};

    use super::super::span::Kind;
    use super::*;

    fn span(parent: Option<&str>, error: Option<&str>) -> SpanData {
        SpanData {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: "00f067aa0ba902b7".into(),
            parent_span_id: parent.map(str::to_owned),
            name: "POST crm".into(),
            kind: Kind::Client,
            start_ns: 1_700_000_000_000_000_000,
            end_ns: 1_700_000_000_250_000_000,
            attributes: vec![
                ("http.request.method", Value::from("POST")),
                ("http.response.status_code", 503u16.into()),
            ],
            error: error.map(str::to_owned),
        }
    }

    fn encoded(spans: &[SpanData]) -> Json {
        serde_json::from_slice(&export_request("billing", spans)).expect("the body is JSON")
    }

    #[test]
    fn a_batch_is_one_resource_and_scope_with_hex_ids_and_string_times() {
        let body = encoded(&[span(Some("a3ce929d0e0e4736"), Some("POST crm answered 503"))]);
        let resource = &body["resourceSpans"][0];
        assert_eq!(
            resource["resource"]["attributes"],
            json!([{ "key": "service.name", "value": { "stringValue": "billing" } }])
        );
        assert_eq!(resource["scopeSpans"][0]["scope"]["name"], "junction");
        assert_eq!(
            resource["scopeSpans"][0]["spans"][0],
            json!({
                "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
                "spanId": "00f067aa0ba902b7",
                "parentSpanId": "a3ce929d0e0e4736",
                "name": "POST crm",
                "kind": 3,
                "startTimeUnixNano": "1700000000000000000",
                "endTimeUnixNano": "1700000000250000000",
                "attributes": [
                    { "key": "http.request.method", "value": { "stringValue": "POST" } },
                    { "key": "http.response.status_code", "value": { "intValue": "503" } },
                ],
                "status": { "code": 2, "message": "POST crm answered 503" },
            })
        );
    }

    #[test]
    fn a_root_span_has_no_parent_and_success_leaves_the_status_unset() {
        let body = encoded(&[span(None, None), span(None, None)]);
        let spans = &body["resourceSpans"][0]["scopeSpans"][0]["spans"];
        assert_eq!(spans.as_array().map(Vec::len), Some(2));
        assert!(spans[0].get("parentSpanId").is_none(), "{}", spans[0]);
        assert_eq!(spans[0]["status"], json!({ "code": 0 }));
    }
}
