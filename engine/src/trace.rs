//! W3C Trace Context: a `traceparent` header on an incoming request puts its message in the
//! caller's trace (`meta.trace_id`); calls the message makes carry the trace on with a span
//! id of their own. A request without one starts a new trace.

use rand::RngCore;

/// The trace id of a valid `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`); `None` otherwise,
/// as the spec asks of a malformed or all-zero one.
pub fn trace_id_of(traceparent: &str) -> Option<String> {
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
    valid.then(|| trace.to_owned())
}

/// A fresh trace id.
pub fn new_trace_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The `traceparent` for an outgoing call in trace `trace_id`, as a new span (sampled).
pub fn traceparent(trace_id: &str) -> String {
    let mut span = [0u8; 8];
    rand::rng().fill_bytes(&mut span);
    format!("00-{trace_id}-{}-01", hex::encode(span))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_valid_traceparents_only() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(trace_id_of(&format!("00-{id}-00f067aa0ba902b7-01")).as_deref(), Some(id));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(trace_id_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn outgoing_calls_keep_the_trace_with_a_new_span() {
        let id = new_trace_id();
        let header = traceparent(&id);
        assert_eq!(trace_id_of(&header).as_deref(), Some(id.as_str()));
        assert_ne!(traceparent(&id), header);
    }
}
