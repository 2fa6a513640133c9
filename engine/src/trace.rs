//! W3C Trace Context: a `traceparent` header on an incoming request puts its message in the
//! caller's trace (`meta.trace_id`, under the caller's span `meta.parent_span_id`); calls the
//! message makes carry the trace on with a span id of their own. A request without one starts
//! a new trace.

use rand::RngCore;

/// The trace id and the caller's span id of a valid `traceparent` (`00-<32 hex>-<16 hex>-<2
/// hex>`); `None` otherwise, as the spec asks of a malformed or all-zero one.
pub fn ids_of(traceparent: &str) -> Option<(String, String)> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let valid = hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    valid.then(|| (trace.to_owned(), parent.to_owned()))
}

/// A fresh trace id.
pub fn new_trace_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A fresh span id.
pub fn new_span_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The trace a request puts its work in, and the caller's span it nests under: the caller's
/// (its valid `traceparent`), or a new trace without a parent.
pub fn of_request(headers: &http::HeaderMap) -> (String, Option<String>) {
    match headers.get("traceparent").and_then(|v| v.to_str().ok()).and_then(ids_of) {
        Some((trace, span)) => (trace, Some(span)),
        None => (new_trace_id(), None),
    }
}

/// The `traceparent` for an outgoing call in trace `trace_id`, made as span `span_id` (sampled),
/// so the called system's spans nest under that span.
pub fn traceparent(trace_id: &str, span_id: &str) -> String {
    format!("00-{trace_id}-{span_id}-01")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_valid_traceparents_only() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let ids = ids_of(&format!("00-{id}-00f067aa0ba902b7-01"));
        assert_eq!(ids, Some((id.to_owned(), "00f067aa0ba902b7".to_owned())));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(ids_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn outgoing_calls_keep_the_trace_under_their_own_span() {
        let (id, span) = (new_trace_id(), new_span_id());
        assert_eq!(ids_of(&traceparent(&id, &span)), Some((id, span.clone())));
        assert_ne!(new_span_id(), span);
    }
}
