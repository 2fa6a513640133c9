//! The functions every script can call besides rhai's own: time, ids, hashing, encodings and
//! JSON. Each function's `///` comment is its reference documentation, written for route
//! authors; the rhai signature comes first.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use rhai::serde::{from_dynamic, to_dynamic};
use rhai::{Dynamic, Engine, EvalAltResult, INT};
use sha2::{Digest, Sha256};

use super::vars::{MAX_JSON_DEPTH, nested_deeper_than};

type FnResult<T> = Result<T, Box<EvalAltResult>>;

pub(super) fn register(engine: &mut Engine) {
    engine
        .register_fn("now", now)
        .register_fn("now_ms", now_ms)
        .register_fn("uuid", uuid)
        .register_fn("uuid_v7", uuid_v7)
        .register_fn("parse_date", parse_date)
        .register_fn("parse_date", parse_date_with)
        .register_fn("format_date", format_date)
        .register_fn("sha256", sha256)
        .register_fn("hmac_sha256", hmac_sha256)
        .register_fn("base64_encode", base64_encode)
        .register_fn("base64_decode", base64_decode)
        .register_fn("json_parse", json_parse)
        .register_fn("json_stringify", json_stringify)
        .register_fn("unique", unique);
}

/// `unique(array) -> array`: the array without repeated elements, first occurrences kept in
/// order, e.g. `unique(["a", "b", "a"]) == ["a", "b"]`. Elements are equal when they have the
/// same type and value (strings, numbers, booleans, chars, `()`); other values compare by
/// their printed form. Linear for short arrays, so cheaper than `if x !in seen` in a loop.
fn unique(items: rhai::Array) -> rhai::Array {
    let mut out: rhai::Array = Vec::with_capacity(items.len());
    for item in items {
        if !out.iter().any(|seen| same(seen, &item)) {
            out.push(item);
        }
    }
    out
}

fn same(a: &Dynamic, b: &Dynamic) -> bool {
    if a.type_id() != b.type_id() {
        return false;
    }
    if let (Ok(x), Ok(y)) = (a.as_immutable_string_ref(), b.as_immutable_string_ref()) {
        return *x == *y;
    }
    if let (Ok(x), Ok(y)) = (a.as_int(), b.as_int()) {
        return x == y;
    }
    if let (Ok(x), Ok(y)) = (a.as_float(), b.as_float()) {
        return x == y;
    }
    if let (Ok(x), Ok(y)) = (a.as_bool(), b.as_bool()) {
        return x == y;
    }
    if let (Ok(x), Ok(y)) = (a.as_char(), b.as_char()) {
        return x == y;
    }
    a.is_unit() && b.is_unit() || a.to_string() == b.to_string()
}

/// A library function's failure, reported as a `Runtime` error that `try`/`catch` can catch.
///
/// Not `ErrorRuntime`: that is what `throw` raises, and it is reported as `Thrown`, which
/// means "the route author rejected this message" — a bad date is not that.
pub(super) fn fail(message: String) -> Box<EvalAltResult> {
    EvalAltResult::ErrorArithmetic(message, rhai::Position::NONE).into()
}

/// `now() -> string`: the current time in UTC as RFC 3339 with milliseconds,
/// e.g. `"2025-03-01T09:30:00.125Z"`.
fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `now_ms() -> int`: the current time as milliseconds since the Unix epoch.
fn now_ms() -> INT {
    Utc::now().timestamp_millis()
}

/// `uuid() -> string`: a random (version 4) UUID, e.g. `"0b7c…-4…"`.
fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `uuid_v7() -> string`: a time-ordered (version 7) UUID; ids made later sort later.
fn uuid_v7() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// `parse_date(s) -> int`: milliseconds since the Unix epoch for an RFC 3339 date-time
/// (`"2025-03-01T09:30:00+01:00"`, `"2025-03-01T08:30:00.5Z"`) or a date `"YYYY-MM-DD"`
/// (midnight UTC). Anything else is an error.
fn parse_date(s: &str) -> FnResult<INT> {
    if let Ok(date_time) = DateTime::parse_from_rfc3339(s) {
        return Ok(date_time.timestamp_millis());
    }
    if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(date.and_time(chrono::NaiveTime::MIN).and_utc().timestamp_millis());
    }
    Err(fail(format!("parse_date: {s:?} is neither an RFC 3339 date-time nor a YYYY-MM-DD date")))
}

/// `parse_date(s, fmt) -> int`: milliseconds since the Unix epoch for `s` written in the
/// chrono strftime format `fmt`, e.g. `parse_date("01/03/2025 09:30", "%d/%m/%Y %H:%M")`.
/// A format with an offset (`%z`) is honoured; without one the time is taken as UTC; a format
/// with only a date gives midnight UTC.
fn parse_date_with(s: &str, fmt: &str) -> FnResult<INT> {
    let with_offset = DateTime::parse_from_str(s, fmt).map(|d| d.timestamp_millis());
    let utc = || NaiveDateTime::parse_from_str(s, fmt).map(|d| d.and_utc().timestamp_millis());
    let date =
        || NaiveDate::parse_from_str(s, fmt).map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc().timestamp_millis());
    // The first error is the most telling: it comes from the most complete reading.
    with_offset
        .or_else(|err| utc().or_else(|_| date()).map_err(|_| err))
        .map_err(|err| fail(format!("parse_date: {s:?} does not match {fmt:?}: {err}")))
}

/// `format_date(ms, fmt) -> string`: the instant `ms` (milliseconds since the Unix epoch)
/// in UTC, written with the chrono strftime format `fmt`, e.g.
/// `format_date(0, "%Y-%m-%d %H:%M") == "1970-01-01 00:00"`.
fn format_date(ms: INT, fmt: &str) -> FnResult<String> {
    let date_time = DateTime::<Utc>::from_timestamp_millis(ms)
        .ok_or_else(|| fail(format!("format_date: {ms} is out of the range of dates")))?;
    let mut out = String::new();
    // `to_string()` would panic on a bad format; `write!` reports it instead.
    write!(out, "{}", date_time.format(fmt))
        .map_err(|_| fail(format!("format_date: {fmt:?} is not a valid strftime format")))?;
    Ok(out)
}

/// `sha256(s) -> string`: the SHA-256 of the UTF-8 bytes of `s`, as lowercase hex.
fn sha256(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// `hmac_sha256(key, s) -> string`: the HMAC-SHA256 of `s` with `key` (both UTF-8), as
/// lowercase hex; what most webhook signatures use.
fn hmac_sha256(key: &str, s: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(s.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `base64_encode(s) -> string`: the standard (padded) Base64 of the UTF-8 bytes of `s`.
fn base64_encode(s: &str) -> String {
    BASE64.encode(s)
}

/// `base64_decode(s) -> string`: the text whose standard (padded) Base64 is `s`. An error if
/// `s` is not Base64 or the decoded bytes are not UTF-8 text.
fn base64_decode(s: &str) -> FnResult<String> {
    let bytes = BASE64.decode(s).map_err(|err| fail(format!("base64_decode: not valid Base64: {err}")))?;
    String::from_utf8(bytes).map_err(|_| fail("base64_decode: the decoded bytes are not UTF-8 text".to_owned()))
}

/// `json_parse(s) -> any`: the value written in the JSON text `s` (objects become maps,
/// arrays arrays, whole numbers ints). An error, with line and column, if `s` is not JSON.
fn json_parse(s: &str) -> FnResult<Dynamic> {
    let value: serde_json::Value = serde_json::from_str(s).map_err(|err| fail(format!("json_parse: {err}")))?;
    to_dynamic(value)
}

/// `json_stringify(v) -> string`: `v` as compact JSON text. `()` becomes `null`; an error
/// for values JSON cannot hold, such as function pointers, or nested over 128 levels deep.
fn json_stringify(value: Dynamic) -> FnResult<String> {
    let value = value.flatten();
    if nested_deeper_than(&value, MAX_JSON_DEPTH) {
        return Err(fail(format!("json_stringify: the value is nested deeper than {MAX_JSON_DEPTH} levels")));
    }
    let value: serde_json::Value = from_dynamic(&value).map_err(|err| fail(format!("json_stringify: {err}")))?;
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_in_both_default_shapes() {
        assert_eq!(parse_date("1970-01-02").ok(), Some(86_400_000));
        assert_eq!(parse_date("2025-03-01T09:30:00.250+01:00").ok(), Some(1_740_817_800_250));
        assert_eq!(parse_date("2025-03-01T08:30:00.250Z").ok(), Some(1_740_817_800_250));
    }

    #[test]
    fn bad_dates_say_what_was_wrong() {
        let err = parse_date("01/03/2025").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("parse_date: \"01/03/2025\" is neither an RFC 3339 date-time nor a YYYY-MM-DD date")
        );
        assert!(parse_date_with("2025-13-01", "%Y-%m-%d").is_err());
        assert!(parse_date_with("x", "%Y").is_err());
    }

    #[test]
    fn dates_parse_with_a_format() {
        assert_eq!(parse_date_with("01/03/2025 09:30", "%d/%m/%Y %H:%M").ok(), Some(1_740_821_400_000));
        assert_eq!(parse_date_with("01/03/2025 09:30 +0100", "%d/%m/%Y %H:%M %z").ok(), Some(1_740_817_800_000));
        assert_eq!(parse_date_with("02.01.1970", "%d.%m.%Y").ok(), Some(86_400_000));
    }

    #[test]
    fn dates_format_in_utc_and_reject_bad_formats() {
        assert_eq!(
            format_date(1_740_817_800_250, "%Y-%m-%dT%H:%M:%S%.3fZ").ok().as_deref(),
            Some("2025-03-01T08:30:00.250Z")
        );
        assert!(format_date(0, "%Q").is_err());
        assert!(format_date(INT::MAX, "%Y").is_err());
    }

    #[test]
    fn now_is_rfc3339_with_millis() {
        let now = now();
        assert_eq!(now.len(), "2025-03-01T08:30:00.250Z".len(), "{now}");
        assert!(now.ends_with('Z'));
        let ms = parse_date(&now).unwrap_or_default();
        assert!((now_ms() - ms).abs() < 5_000);
    }

    #[test]
    fn uuids_have_their_versions() {
        let v4 = uuid::Uuid::parse_str(&uuid()).map(|u| u.get_version_num());
        let v7 = uuid::Uuid::parse_str(&uuid_v7()).map(|u| u.get_version_num());
        assert_eq!((v4.ok(), v7.ok()), (Some(4), Some(7)));
    }

    #[test]
    fn hashes_match_known_vectors() {
        assert_eq!(sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_sha256("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn base64_round_trips_and_rejects_garbage() {
        assert_eq!(base64_encode("héllo"), "aMOpbGxv");
        assert_eq!(base64_decode("aMOpbGxv").ok().as_deref(), Some("héllo"));
        assert!(base64_decode("not base64!").is_err());
        // 0xFF 0xFE is valid Base64 but not UTF-8.
        let err = base64_decode("//4=").err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("base64_decode: the decoded bytes are not UTF-8 text"));
    }

    #[test]
    fn json_round_trips_keeping_ints_and_floats() {
        let parsed = json_parse(r#"{"a":1,"b":1.5,"c":[true,null,"x"]}"#).unwrap_or_default();
        assert_eq!(parsed.clone().cast::<rhai::Map>()["a"].as_int(), Ok(1));
        assert_eq!(json_stringify(parsed).ok().as_deref(), Some(r#"{"a":1,"b":1.5,"c":[true,null,"x"]}"#));
        let err = json_parse("{").err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("json_parse: EOF while parsing an object at line 1 column 1"));
    }
}
