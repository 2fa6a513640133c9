//! Reading JSON bodies into [`Value`]s: what `serde_json::from_slice` does, with a nesting
//! limit and fewer allocations.
//!
//! Every request body is parsed, so this is on the gateway's hot path. Most bodies are read
//! by `fast`, straight from the bytes; it gives up on anything unusual (an error, a float, a
//! surrogate escape, nesting past the limit), and the document is then read by serde_json's
//! parser, whose answer (value or error, with its line and column) is the one returned.
//!
//! Both build each object's map and each array's vector at its final size: members and items
//! wait on one scratch stack shared by the whole document (serde_json's own `Value` visitor
//! grows them one insert at a time, rehashing maps as they grow). The result is the same
//! `Value` serde_json builds, member order and repeated keys (the last value wins, in the
//! first one's place) included.

mod fast;

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why a body is not a JSON value we accept.
#[derive(Debug)]
pub enum ReadError {
    /// Not JSON: the parser's error, with its line and column.
    Syntax(serde_json::Error),
    /// Arrays and objects nest deeper than the limit given.
    TooDeep,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Syntax(e) => e.fmt(f),
            ReadError::TooDeep => f.write_str("arrays and objects nest too deeply"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Parses `bytes` as one JSON value whose arrays and objects nest at most `max_depth` levels.
pub fn from_slice(bytes: &[u8], max_depth: usize) -> Result<Value, ReadError> {
    match fast::read(bytes, max_depth) {
        Some(value) => Ok(value),
        None => careful(bytes, max_depth),
    }
}

/// serde_json's parser, for what `fast` leaves alone.
fn careful(bytes: &[u8], max_depth: usize) -> Result<Value, ReadError> {
    let mut scratch = Scratch { members: Vec::with_capacity(16), items: Vec::with_capacity(16), too_deep: false };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Node { depth: max_depth, scratch: &mut scratch }.deserialize(&mut de);
    let value = value.and_then(|v| de.end().map(|()| v));
    match value {
        Ok(v) => Ok(v),
        Err(_) if scratch.too_deep => Err(ReadError::TooDeep),
        Err(e) => Err(ReadError::Syntax(e)),
    }
}

/// The stacks members and items wait on until their object or array is complete.
struct Scratch {
    members: Vec<(String, Value)>,
    items: Vec<Value>,
    too_deep: bool,
}

/// One value of the document, `depth` levels of nesting still allowed.
struct Node<'s> {
    depth: usize,
    scratch: &'s mut Scratch,
}

impl Node<'_> {
    fn nested<E: de::Error>(&mut self) -> Result<Node<'_>, E> {
        if self.depth == 0 {
            self.scratch.too_deep = true;
            return Err(E::custom("arrays and objects nest too deeply"));
        }
        Ok(Node { depth: self.depth - 1, scratch: self.scratch })
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let start = inner.scratch.items.len();
        while let Some(item) = seq.next_element_seed(Node { depth: inner.depth, scratch: &mut *inner.scratch })? {
            inner.scratch.items.push(item);
        }
        Ok(Value::Array(inner.scratch.items.drain(start..).collect()))
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let start = inner.scratch.members.len();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(Node { depth: inner.depth, scratch: &mut *inner.scratch })?;
            inner.scratch.members.push((key, value));
        }
        Ok(object_of(inner.scratch.members.drain(start..)))
    }
}

/// An object of `members`, in their order; a repeated key keeps its first place and takes the
/// last value, as in serde_json.
fn object_of(members: impl ExactSizeIterator<Item = (String, Value)>) -> Value {
    let mut object = Map::with_capacity(members.len());
    for (key, value) in members {
        object.insert(key, value);
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same_as_serde_json(text: &str) {
        let ours = from_slice(text.as_bytes(), 128).expect("parses");
        let theirs: Value = serde_json::from_str(text).expect("serde_json parses");
        assert_eq!(ours, theirs, "{text}");
        // Equal maps may still differ in order; the text must come out the same.
        assert_eq!(ours.to_string(), theirs.to_string(), "{text}");
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            r#"{"b":1,"a":[1,-2,3.5,1e300,null,true,"x\u00e9\n"],"c":{"z":{},"y":[]},"d":18446744073709551615}"#,
            r#"[{"k":1,"j":[{"i":[]}]},{"k":2}]"#,
            "  \"text\"  ",
            "-0",
            "12345678901234567890123",
        ] {
            same_as_serde_json(text);
        }
    }

    #[test]
    fn a_repeated_key_keeps_its_first_place_and_last_value() {
        same_as_serde_json(r#"{"a":1,"b":2,"a":3}"#);
        let v = from_slice(br#"{"a":1,"b":2,"a":3}"#, 8).expect("parses");
        assert_eq!(v.to_string(), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn errors_are_serde_jsons_with_their_position() {
        for text in ["{\n  \"a\": tru\n}", "[1, 2,]", "{} {}", "", "1e400", "{\"a\" 1}"] {
            let Err(ReadError::Syntax(ours)) = from_slice(text.as_bytes(), 8) else { panic!("accepted {text:?}") };
            let theirs = serde_json::from_str::<Value>(text).expect_err("serde_json refuses it too");
            assert_eq!(ours.to_string(), theirs.to_string(), "{text:?}");
        }
    }

    /// Texts near valid JSON, mangled a few bytes at a time, read exactly as serde_json reads
    /// them: the same value, or the same error at the same line and column.
    #[test]
    fn mangled_texts_read_as_serde_json_reads_them() {
        let seeds: [&[u8]; 5] = [
            include_bytes!("../../../examples/crm-deal.json"),
            br#"{"a":[1,-2,3.5e-3,null,true,false,"x\u00e9\n\"q\""],"b":{"c":[],"d":{}},"n":-0}"#,
            "[\"кириллица ✓\", 18446744073709551615, -9223372036854775808, 1e300, {\"k\":[]}]".as_bytes(),
            br#"  {"dup":1, "dup":{"x":[2,3]} , "s":"\/\b\f\r\t\\"} "#,
            br#"["\ud83d\ude00", "\u0041\u00e9\u20ac"]"#,
        ];
        let alphabet = b"{}[]\":,\\-+.0123456789eEtrufalsn \n\tu\x01\xc3\xa9\xff";
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % bound as u64).expect("below a usize bound")
        };
        let (mut accepted, mut refused) = (0, 0);
        for round in 0..4000 {
            let mut text = seeds[round % seeds.len()].to_vec();
            for _ in 0..1 + next(3) {
                let at = next(text.len() + 1);
                match next(3) {
                    0 if at < text.len() => drop(text.remove(at)),
                    1 if at < text.len() => text[at] = alphabet[next(alphabet.len())],
                    _ => text.insert(at, alphabet[next(alphabet.len())]),
                }
            }
            let shown = String::from_utf8_lossy(&text).into_owned();
            match (from_slice(&text, 128), serde_json::from_slice::<Value>(&text)) {
                (Ok(ours), Ok(theirs)) => {
                    assert_eq!(ours.to_string(), theirs.to_string(), "{shown}");
                    accepted += 1;
                }
                (Err(ReadError::Syntax(ours)), Err(theirs)) => {
                    assert_eq!(ours.to_string(), theirs.to_string(), "{shown}");
                    refused += 1;
                }
                (ours, theirs) => panic!("{shown}: ours {ours:?}, serde_json {theirs:?}"),
            }
        }
        // Both outcomes must be well represented, or the test checks little.
        assert!(accepted > 400 && refused > 400, "accepted {accepted}, refused {refused}");
    }

    #[test]
    fn nesting_is_limited() {
        let nested = |levels: usize| format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
        assert!(from_slice(nested(3).as_bytes(), 3).is_ok());
        assert!(matches!(from_slice(nested(4).as_bytes(), 3), Err(ReadError::TooDeep)));
        assert!(matches!(from_slice(br#"{"a":{"b":{"c":{}}}}"#, 3), Err(ReadError::TooDeep)));
        // Beyond serde_json's own recursion limit it is still "too deep", not a syntax error.
        assert!(matches!(from_slice(nested(500).as_bytes(), 100), Err(ReadError::TooDeep)));
    }
}
