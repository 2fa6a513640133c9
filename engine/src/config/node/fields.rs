//! The field names of a derived struct, so a mapping can be checked for every unknown key.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

use super::NodeError;

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
