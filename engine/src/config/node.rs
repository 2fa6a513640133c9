//! A YAML tree that remembers where each node came from, and a serde `Deserializer` over it.
//!
//! Most config is read straight into typed structs by serde-saphyr. The parts whose shape
//! depends on something else (a connector's options depend on its `kind`) are kept as a
//! [`Node`] first and read into the kind's own type later, still with exact positions.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
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

    fn kind_name(&self) -> &'static str {
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

/// The field names of a struct `T` derives `Deserialize` for (empty for other types), so a
/// mapping can be checked for every unknown key at once, not only the first.
pub fn struct_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Capture(Option<&'static [&'static str]>);
    impl<'de> Deserializer<'de> for &mut Capture {
        type Error = NodeError;
        fn deserialize_any<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, NodeError> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _v: V,
        ) -> Result<V::Value, NodeError> {
            self.0 = Some(fields);
            Err(de::Error::custom("captured"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string option newtype_struct
            enum bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier ignored_any
        }
    }
    let mut capture = Capture(None);
    let _ = T::deserialize(&mut capture);
    capture.0.unwrap_or(&[])
}

/// An error while reading a [`Node`] into a type; `pos` is the innermost node at fault.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeError {
    pub message: String,
    pub pos: Option<Pos>,
}

impl NodeError {
    fn at(mut self, pos: Pos) -> Self {
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

impl<'de> Deserializer<'de> for &'de Node {
    type Error = NodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        let result = match &self.value {
            NodeValue::Null => visitor.visit_unit(),
            NodeValue::Bool(b) => visitor.visit_bool(*b),
            NodeValue::Int(i) => visitor.visit_i64(*i),
            NodeValue::Float(f) => visitor.visit_f64(*f),
            NodeValue::Str(s) => visitor.visit_borrowed_str(s),
            NodeValue::Seq(items) => visitor.visit_seq(NodeSeq { items: items.iter() }),
            NodeValue::Map(entries) => visitor.visit_map(NodeMap { entries: entries.iter(), value: None }),
        };
        result.map_err(|e| e.at(self.pos))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        match self.value {
            NodeValue::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
        .map_err(|e| e.at(self.pos))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        match &self.value {
            NodeValue::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            NodeValue::Map(entries) if entries.len() == 1 => {
                let (key, value) = &entries[0];
                visitor.visit_enum(NodeEnum { key, value }).map_err(|e| e.at(key.pos))
            }
            NodeValue::Map(entries) => {
                let keys: Vec<&str> = entries.iter().map(|(k, _)| k.name.as_str()).collect();
                Err(de::Error::custom(format_args!(
                    "expected a mapping with one key (its kind), found {} keys: {}",
                    keys.len(),
                    keys.join(", ")
                )))
            }
            _ => Err(de::Error::custom(format_args!(
                "expected a name or a mapping with one key, found {}",
                self.kind_name()
            ))),
        }
        .map_err(|e| e.at(self.pos))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        if name == SPANNED_NEWTYPE {
            return visitor
                .visit_newtype_struct(SpannedValue { pos: self.pos, value: self })
                .map_err(|e| e.at(self.pos));
        }
        visitor.visit_newtype_struct(self).map_err(|e| e.at(self.pos))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

// serde-saphyr's `Spanned<T>` asks for this newtype, then reads a map whose first key is the
// marker, followed by `value`, `referenced` and `defined`. Speaking that protocol lets typed
// config read from a `Node` keep its positions exactly as if read from the file.
const SPANNED_NEWTYPE: &str = "__yaml_spanned";
const SPANNED_MARKER: &str = "__serde_saphyr_private_spanned";

/// Answers serde-saphyr's `Spanned` protocol for a value at `pos` read by `D`.
struct SpannedValue<D> {
    pos: Pos,
    value: D,
}

impl<'de, D: Deserializer<'de, Error = NodeError>> Deserializer<'de> for SpannedValue<D> {
    type Error = NodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        visitor.visit_map(SpannedFields { pos: self.pos, value: Some(self.value), next: 0 })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string option newtype_struct enum
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

struct SpannedFields<D> {
    pos: Pos,
    value: Option<D>,
    next: usize,
}

impl<'de, D: Deserializer<'de, Error = NodeError>> MapAccess<'de> for SpannedFields<D> {
    type Error = NodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, NodeError> {
        let key = match self.next {
            0 => SPANNED_MARKER,
            1 => "value",
            2 => "referenced",
            3 => "defined",
            _ => return Ok(None),
        };
        seed.deserialize(de::value::BorrowedStrDeserializer::new(key)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, NodeError> {
        self.next += 1;
        match self.next {
            1 => seed.deserialize(de::value::UnitDeserializer::new()),
            2 => {
                let value = self.value.take().ok_or_else(|| de::Error::custom("a spanned value is read once"))?;
                seed.deserialize(value)
            }
            _ => {
                let Pos { line, col } = self.pos;
                let fields = [("line", line), ("column", col)];
                seed.deserialize(de::value::MapDeserializer::new(fields.into_iter()))
            }
        }
    }
}

/// A mapping key: a string that also answers the `Spanned` protocol with its position.
struct KeyDeserializer<'de>(&'de Key);

impl<'de> Deserializer<'de> for KeyDeserializer<'de> {
    type Error = NodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        visitor.visit_borrowed_str(&self.0.name)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        if name == SPANNED_NEWTYPE {
            let value = de::value::BorrowedStrDeserializer::<NodeError>::new(&self.0.name);
            return visitor.visit_newtype_struct(SpannedValue { pos: self.0.pos, value });
        }
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string option enum
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

struct NodeSeq<'de> {
    items: std::slice::Iter<'de, Node>,
}

impl<'de> SeqAccess<'de> for NodeSeq<'de> {
    type Error = NodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, NodeError> {
        match self.items.next() {
            Some(node) => seed.deserialize(node).map(Some).map_err(|e| e.at(node.pos)),
            None => Ok(None),
        }
    }
}

struct NodeMap<'de> {
    entries: std::slice::Iter<'de, (Key, Node)>,
    value: Option<&'de Node>,
}

impl<'de> MapAccess<'de> for NodeMap<'de> {
    type Error = NodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, NodeError> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(KeyDeserializer(key)).map(Some).map_err(|e| e.at(key.pos))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, NodeError> {
        let node = self.value.take().ok_or_else(|| de::Error::custom("a value without a key"))?;
        seed.deserialize(node).map_err(|e| e.at(node.pos))
    }
}

struct NodeEnum<'de> {
    key: &'de Key,
    value: &'de Node,
}

impl<'de> de::EnumAccess<'de> for NodeEnum<'de> {
    type Error = NodeError;
    type Variant = &'de Node;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, &'de Node), NodeError> {
        let de: de::value::BorrowedStrDeserializer<'de, NodeError> =
            de::value::BorrowedStrDeserializer::new(&self.key.name);
        let variant = seed.deserialize(de).map_err(|e| e.at(self.key.pos))?;
        Ok((variant, self.value))
    }
}

impl<'de> de::VariantAccess<'de> for &'de Node {
    type Error = NodeError;

    fn unit_variant(self) -> Result<(), NodeError> {
        match self.value {
            NodeValue::Null => Ok(()),
            _ => Err(NodeError { message: "this option takes no value".into(), pos: Some(self.pos) }),
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, NodeError> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, NodeError> {
        self.deserialize_any(visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        self.deserialize_any(visitor)
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
