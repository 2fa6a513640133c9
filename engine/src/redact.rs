//! Secrets kept out of the log: wherever a message is written to the log (the `log` step,
//! the `log` connector), the values of sensitive fields are masked, at any depth; and the
//! passwords in connection URLs are masked wherever a URL is shown.

use std::borrow::Cow;

use serde_json::Value;

use crate::message::{Body, Message};

/// Masked whatever the config says: the names credentials usually go by.
const ALWAYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "access_token",
    "refresh_token",
    "api_key",
    "apikey",
    "authorization",
    "card_number",
    "cvv",
    "cvc",
];

const MASK: &str = "***";

/// The field names to mask (compared ignoring case).
#[derive(Debug, Clone)]
pub struct Redact {
    names: Vec<String>,
}

impl Default for Redact {
    fn default() -> Self {
        Self::new(&[])
    }
}

impl Redact {
    /// The built-in names plus `extra` (from `logging.redact`).
    pub fn new(extra: &[String]) -> Self {
        let mut names: Vec<String> = ALWAYS.iter().map(|s| (*s).to_owned()).collect();
        names.extend(extra.iter().map(|s| s.to_ascii_lowercase()));
        names.sort();
        names.dedup();
        Self { names }
    }

    fn sensitive(&self, key: &str) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(key))
    }

    fn holds_sensitive(&self, value: &Value) -> bool {
        match value {
            Value::Object(m) => m.iter().any(|(k, v)| self.sensitive(k) || self.holds_sensitive(v)),
            Value::Array(items) => items.iter().any(|v| self.holds_sensitive(v)),
            _ => false,
        }
    }

    /// `value` with sensitive fields masked; borrowed when there are none.
    pub fn value<'a>(&self, value: &'a Value) -> Cow<'a, Value> {
        if !self.holds_sensitive(value) {
            return Cow::Borrowed(value);
        }
        let mut copy = value.clone();
        self.mask(&mut copy);
        Cow::Owned(copy)
    }

    fn mask(&self, value: &mut Value) {
        match value {
            Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    if self.sensitive(k) {
                        *v = Value::String(MASK.into());
                    } else {
                        self.mask(v);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.mask(v)),
            _ => {}
        }
    }

    /// `msg` with sensitive body fields and headers masked; borrowed when there are none.
    pub fn message<'a>(&self, msg: &'a Message) -> Cow<'a, Message> {
        let body_hit = matches!(&msg.body, Body::Json(v) if self.holds_sensitive(v));
        let header_hit = msg.headers.keys().any(|k| self.sensitive(k));
        if !body_hit && !header_hit {
            return Cow::Borrowed(msg);
        }
        let mut copy = msg.clone();
        if let Body::Json(v) = &mut copy.body {
            self.mask(v);
        }
        for (k, v) in copy.headers.iter_mut() {
            if self.sensitive(k) {
                *v = Value::String(MASK.into());
            }
        }
        Cow::Owned(copy)
    }
}

/// A connection URL with any password replaced by `***`, fit for errors and logs: the user
/// info's password (which may itself hold `@` or `/`) and a `password=` query parameter.
pub fn url(url: &str) -> String {
    let (head, query) = url.split_once('?').map_or((url, None), |(h, q)| (h, Some(q)));
    let start = head.find("://").map_or(0, |i| i + 3);
    // The last `@` ends the user info.
    let head = match head[start..].rfind('@').map(|i| start + i) {
        Some(at) => match head[start..at].find(':') {
            Some(colon) => format!("{}:***{}", &head[..start + colon], &head[at..]),
            None => head.to_owned(),
        },
        None => head.to_owned(),
    };
    let Some(query) = query else { return head };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn url_passwords_are_masked() {
        assert_eq!(url("postgres://app:s3cr@t@db:5432/junction"), "postgres://app:***@db:5432/junction");
        assert_eq!(
            url("postgres://db/junction?user=app&password=s3cret&sslmode=require"),
            "postgres://db/junction?user=app&password=***&sslmode=require"
        );
        assert_eq!(url("postgres://app@db/junction"), "postgres://app@db/junction");
        assert_eq!(url("sqlite://data/junction.db"), "sqlite://data/junction.db");
        assert_eq!(url("redis://:s3cret@cache:6379/0"), "redis://:***@cache:6379/0");
        assert_eq!(url("rediss://app:s3/cr@t@cache:6379"), "rediss://app:***@cache:6379");
        assert_eq!(url("redis:/:s3cret@cache"), "redis:***@cache");
        assert_eq!(url("redis://app@cache:6379/0"), "redis://app@cache:6379/0");
        assert_eq!(url("redis://cache:6379/0"), "redis://cache:6379/0");
        assert_eq!(url("memory"), "memory");
    }

    use super::*;

    #[test]
    fn masks_named_fields_at_any_depth_and_nothing_else() {
        let r = Redact::new(&["INN".into()]);
        let v = json!({ "user": { "Password": "p", "name": "n" }, "cards": [{ "card_number": "4111" }], "inn": "77" });
        assert_eq!(
            *r.value(&v),
            json!({ "user": { "Password": "***", "name": "n" }, "cards": [{ "card_number": "***" }], "inn": "***" })
        );
        let clean = json!({ "name": "n" });
        assert!(matches!(r.value(&clean), Cow::Borrowed(_)));
    }

    #[test]
    fn masks_message_headers_too() {
        let mut msg = Message::json(json!({ "a": 1 }));
        msg.headers.insert("x-token".into(), json!("t"));
        msg.headers.insert("token".into(), json!("t"));
        let r = Redact::default();
        let masked = r.message(&msg);
        assert_eq!(masked.headers["token"], "***");
        assert_eq!(masked.headers["x-token"], "t");
    }
}
