//! A span being recorded: started where its work starts, ended (and queued for export) where
//! the work ends. Made only when an exporter is installed.

use std::time::{SystemTime, UNIX_EPOCH};

/// Which side of a call a span stands for (OTLP's `SpanKind` numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}

impl From<u32> for Value {
    fn from(n: u32) -> Self {
        Value::Int(n.into())
    }
}

impl From<u16> for Value {
    fn from(n: u16) -> Self {
        Value::Int(n.into())
    }
}

/// A finished span, as it is exported.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SpanData {
    pub(super) trace_id: String,
    pub(super) span_id: String,
    pub(super) parent_span_id: Option<String>,
    pub(super) name: String,
    pub(super) kind: Kind,
    pub(super) start_ns: u64,
    pub(super) end_ns: u64,
    pub(super) attributes: Vec<(&'static str, Value)>,
    /// Why the work failed, when it did (the span's status is then ERROR).
    pub(super) error: Option<String>,
}

/// The longest error description a span carries: enough to tell what went wrong, not a
/// partner's whole error page.
const MAX_ERROR: usize = 256;

/// A span in progress; [`Span::end`] queues it for export.
#[derive(Debug)]
pub struct Span(SpanData);

impl Span {
    /// Starts a span of trace `trace_id` under `parent`. `None` when no exporter is installed,
    /// so untraced work only pays this check; `name` is formatted only when traced.
    pub fn start(trace_id: &str, parent: Option<&str>, kind: Kind, name: std::fmt::Arguments<'_>) -> Option<Span> {
        if !super::enabled() {
            return None;
        }
        Some(Span(SpanData {
            trace_id: trace_id.to_owned(),
            span_id: crate::trace::new_span_id(),
            parent_span_id: parent.map(str::to_owned),
            name: name.to_string(),
            kind,
            start_ns: now_ns(),
            end_ns: 0,
            attributes: Vec::new(),
            error: None,
        }))
    }

    /// This span's id, for its children and for the `traceparent` of a call it makes.
    pub fn id(&self) -> &str {
        &self.0.span_id
    }

    pub fn rename(&mut self, name: String) {
        self.0.name = name;
    }

    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        self.0.attributes.push((key, value.into()));
    }

    /// Ends the span, failed when `error` says why, and queues it.
    pub fn end(self, error: Option<&str>) {
        super::record(self.finish(error));
    }

    fn finish(mut self, error: Option<&str>) -> SpanData {
        self.0.end_ns = now_ns().max(self.0.start_ns);
        self.0.error = error.map(|e| shortened(e, MAX_ERROR).to_owned());
        self.0
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn shortened(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_cut_at_a_character_boundary() {
        assert_eq!(shortened("héllo", 2), "h");
        assert_eq!(shortened("héllo", 3), "hé");
        assert_eq!(shortened("ok", 10), "ok");
    }
}
