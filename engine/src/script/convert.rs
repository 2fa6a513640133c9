//! JSON to rhai values and back, directly. The serde route (`to_dynamic`/`from_dynamic`) goes
//! through a generic serializer and costs several times more; this runs on every message.

use rhai::{Array, Dynamic, FLOAT, INT, ImmutableString, Map as RhaiMap};
use serde_json::{Map, Number, Value};

use super::vars::MAX_JSON_DEPTH;

/// Why a value could not be converted.
pub(super) enum Unconvertible {
    TooDeep,
    Other(String),
}

/// A JSON number as rhai holds it: an INT where it fits, else a FLOAT.
pub(super) fn number(n: &Number) -> Result<INT, FLOAT> {
    n.as_i64().ok_or_else(|| n.as_f64().unwrap_or(FLOAT::NAN))
}

pub(super) fn to_rhai(value: &Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match number(n) {
            Ok(i) => Dynamic::from_int(i),
            Err(f) => Dynamic::from_float(f),
        },
        Value::String(s) => Dynamic::from(ImmutableString::from(s.as_str())),
        Value::Array(items) => Dynamic::from_array(items.iter().map(to_rhai).collect::<Array>()),
        Value::Object(map) => map_to_rhai(map),
    }
}

pub(super) fn map_to_rhai(map: &Map<String, Value>) -> Dynamic {
    // Inserting one by one: `collect` would gather the pairs into a vector and sort it first,
    // which costs more than the map itself for the small objects messages are made of.
    let mut out = RhaiMap::new();
    for (k, v) in map {
        out.insert(k.as_str().into(), to_rhai(v));
    }
    Dynamic::from_map(out)
}

/// A script's value as JSON, moving out of it where it can; unit becomes null.
pub(super) fn to_json(value: Dynamic, depth: usize) -> Result<Value, Unconvertible> {
    if depth > MAX_JSON_DEPTH {
        return Err(Unconvertible::TooDeep);
    }
    // A variable captured by a closure is shared; JSON wants the plain value inside.
    let value = value.flatten();
    // The common types first; `try_cast` rather than `cast`, which names the type up front
    // for a panic message it never needs.
    if value.is_map() {
        let map = value.try_cast::<RhaiMap>().unwrap_or_default();
        let mut out = Map::with_capacity(map.len());
        for (k, v) in map {
            out.insert(k.into(), to_json(v, depth + 1)?);
        }
        return Ok(Value::Object(out));
    }
    if value.is_string() {
        // Copied from the text: most strings a script returns are shared with its input, and
        // taking one out of its shared box would copy it twice.
        let s = value.into_immutable_string().unwrap_or_default();
        return Ok(Value::String(s.as_str().to_owned()));
    }
    if let Ok(i) = value.as_int() {
        return Ok(Value::from(i));
    }
    if let Ok(f) = value.as_float() {
        return Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| Unconvertible::Other(format!("{f} is not a number JSON can hold")));
    }
    if value.is_array() {
        let items = value.try_cast::<Array>().unwrap_or_default();
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(to_json(item, depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    if let Ok(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if value.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(c) = value.as_char() {
        return Ok(Value::String(c.to_string()));
    }
    // Blobs, timestamps and other rare types: the generic route.
    rhai::serde::from_dynamic(&value).map_err(|e| Unconvertible::Other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_json() {
        let v = serde_json::json!({"a": [1, 2.5, "x", null, true, {"b": []}], "c": -7, "big": 1e300});
        let back = to_json(to_rhai(&v), 0).ok().expect("converts back");
        assert_eq!(back, v);
    }

    #[test]
    fn refuses_values_nested_too_deep() {
        let mut d = Dynamic::from_int(1);
        for _ in 0..=MAX_JSON_DEPTH + 1 {
            d = Dynamic::from_array(vec![d]);
        }
        assert!(matches!(to_json(d, 0), Err(Unconvertible::TooDeep)));
    }
}
