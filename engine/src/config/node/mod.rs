//! A YAML tree that remembers where each node came from, and a serde `Deserializer` over it.
//!
//! Most config is read straight into typed structs by serde-saphyr. The parts whose shape
//! depends on something else (a connector's options depend on its `kind`) are kept as a
//! [`Node`] first and read into the kind's own type later, still with exact positions.

use std::fmt;

mod fields;
mod read;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub fn of<T>(s: &Spanned<T>) -> Self {
        Self {
            line: u32::try_from(s.referenced.line()).unwrap_or(u32::MAX),
            col: u32::try_from(s.referenced.column()).unwrap_or(u32::MAX),
        }
    }

    pub fn is_known(self) -> bool {
        self.line > 0
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: NodeValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

impl Node {
    /// The entry `name` of a mapping node.
    pub fn get(&self, name: &str) -> Option<&Node> {
        match &self.value {
            NodeValue::Map(entries) => entries.iter().find(|(k, _)| k.name == name).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The same mapping without the entries named in `names` (e.g. `kind`, `connector`),
    /// so the rest can be read into a type that denies unknown fields.
    #[must_use]
    pub fn without(&self, names: &[&str]) -> Node {
        match &self.value {
            NodeValue::Map(entries) => Node {
                pos: self.pos,
                value: NodeValue::Map(
                    entries.iter().filter(|(k, _)| !names.contains(&k.name.as_str())).cloned().collect(),
                ),
            },
            _ => self.clone(),
        }
    }

    /// Reads this node into `T`; the error carries the position of the offending node.
    pub fn parse<'de, T: Deserialize<'de>>(&'de self) -> Result<T, NodeError> {
        T::deserialize(self).map_err(|e| e.at(self.pos))
    }

    /// The node as plain JSON (positions dropped).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(b) => Value::Bool(*b),
            NodeValue::Int(i) => Value::from(*i),
            NodeValue::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            NodeValue::Str(s) => Value::String(s.clone()),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(entries) => {
                Value::Object(entries.iter().map(|(k, v)| (k.name.clone(), v.to_json())).collect())
            }
        }
    }

    pub(super) fn kind_name(&self) -> &'static str {
        match self.value {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Int(_) => "an integer",
            NodeValue::Float(_) => "a number",
            NodeValue::Str(_) => "a string",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a mapping",
        }
    }
}

pub use fields::struct_fields;

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<NodeValue>::deserialize(d)?;
        Ok(Node { pos: Pos::of(&spanned), value: spanned.value })
    }
}

impl<'de> Deserialize<'de> for NodeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = NodeValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<NodeValue, E> {
        Ok(NodeValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<NodeValue, E> {
        Ok(NodeValue::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeValue, E> {
        i64::try_from(v).map(NodeValue::Int).map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<NodeValue, E> {
        Ok(NodeValue::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<NodeValue, E> {
        Ok(NodeValue::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<NodeValue, E> {
        Ok(NodeValue::Str(v))
    }
    fn visit_unit<E>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }
    fn visit_none<E>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<NodeValue, D::Error> {
        NodeValue::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeValue, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            items.push(n);
        }
        Ok(NodeValue::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeValue, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let pos = Pos::of(&key);
            let value = map.next_value::<Node>()?;
            entries.push((Key { name: key.value.0, pos }, value));
        }
        Ok(NodeValue::Map(entries))
    }
}

/// Mapping keys as text, whatever scalar they were written as.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NodeValue::deserialize(d)? {
            NodeValue::Str(s) => Ok(KeyText(s)),
            NodeValue::Int(i) => Ok(KeyText(i.to_string())),
            NodeValue::Bool(b) => Ok(KeyText(b.to_string())),
            NodeValue::Float(f) => Ok(KeyText(f.to_string())),
            NodeValue::Null => Ok(KeyText("null".into())),
            _ => Err(de::Error::custom("a mapping key must be a scalar")),
        }
    }
}

/// An error while reading a [`Node`] into a type; `pos` is the innermost node at fault.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeError {
    pub message: String,
    pub pos: Option<Pos>,
}

impl NodeError {
    pub(super) fn at(mut self, pos: Pos) -> Self {
        if self.pos.is_none() && pos.is_known() {
            self.pos = Some(pos);
        }
        self
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NodeError {}

impl de::Error for NodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        NodeError { message: msg.to_string(), pos: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Opts {
        #[allow(dead_code)]
        base_url: String,
        #[serde(default)]
        #[allow(dead_code)]
        timeout_ms: u64,
    }

    fn node(yaml: &str) -> Node {
        serde_saphyr::from_str(yaml).expect("test YAML parses")
    }

    #[test]
    fn keeps_positions_of_nested_nodes() {
        let n = node("a:\n  b: [1, 2]\n  c: x\n");
        let c = n.get("a").and_then(|a| a.get("c")).expect("a.c exists");
        assert_eq!(c.pos, Pos { line: 3, col: 6 });
        assert_eq!(c.as_str(), Some("x"));
    }

    #[test]
    fn unknown_field_points_at_the_key() {
        let n = node("c:\n  kind: http\n  base_url: x\n  timout_ms: 5\n");
        let c = n.get("c").expect("c exists").without(&["kind"]);
        let err = c.parse::<Opts>().expect_err("unknown field");
        assert!(err.message.contains("unknown field `timout_ms`"), "{err}");
        assert_eq!(err.pos, Some(Pos { line: 4, col: 3 }));
    }

    #[test]
    fn wrong_type_points_at_the_value() {
        let n = node("base_url: x\ntimeout_ms: soon\n");
        let err = n.parse::<Opts>().expect_err("wrong type");
        assert_eq!(err.pos, Some(Pos { line: 2, col: 13 }));
    }

    #[derive(Debug, Deserialize)]
    struct WithSpans {
        name: Spanned<String>,
    }

    #[test]
    fn spanned_fields_keep_positions_through_nodes() {
        let n = node("outer:\n  name: x\n");
        let parsed: WithSpans = n.get("outer").expect("outer").parse().expect("parses");
        assert_eq!(parsed.name.value, "x");
        assert_eq!(Pos::of(&parsed.name), Pos { line: 2, col: 9 });
    }

    #[test]
    fn lists_struct_fields() {
        assert_eq!(struct_fields::<Opts>(), &["base_url", "timeout_ms"]);
    }

    #[test]
    fn missing_field_points_at_the_mapping() {
        let n = node("x:\n  timeout_ms: 1\n");
        let err = n.get("x").expect("x").parse::<Opts>().expect_err("missing");
        assert!(err.message.contains("missing field `base_url`"), "{err}");
        assert_eq!(err.pos.map(|p| p.line), Some(2));
    }
}
