//! Reading an operation's arguments (the message body): what the adapters' operations share.

use chrono::NaiveDate;
use junction_engine::connector::ConnectorError;
use serde_json::Value;

/// A positive id at `args.id`, a number or a string of one; `what` names it in the refusal.
pub fn id(args: &Value, what: &str) -> Result<i64, ConnectorError> {
    args.get("id")
        .and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
        .filter(|id| *id > 0)
        .ok_or_else(|| ConnectorError::rejected(format!("`id` must be a {what} id")))
}

/// A day at `args.<key>`, `YYYY-MM-DD`.
pub fn date(args: &Value, key: &str) -> Result<NaiveDate, ConnectorError> {
    let text = args.get(key).and_then(Value::as_str).unwrap_or_default();
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| ConnectorError::rejected(format!("`{key}` must be a date, YYYY-MM-DD")))
}

/// The key of a create on a platform without idempotency keys (`args.key`), and the tag an
/// object made for it carries in its name, by which a retried create finds it.
pub fn create_key(args: &Value, op: &str) -> Result<(String, String), ConnectorError> {
    let key = args.get("key").and_then(Value::as_str).filter(|k| !k.is_empty()).ok_or_else(|| {
        ConnectorError::rejected(format!("{op} needs `key` (what it is for, e.g. a media plan line's id)"))
    })?;
    Ok((key.to_owned(), format!("[jn:{key}]")))
}
