//! Reading a [`Node`] into any serde type: a `Deserializer` over the tree whose errors carry
//! the position of the innermost node at fault.

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::{Key, Node, NodeError, NodeValue, Pos};

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
