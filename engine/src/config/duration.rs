//! Durations and sizes as people write them in config: `200ms`, `30s`, `5m`, `1MiB`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, de};

/// A duration read from `"250ms"`, `"30s"`, `"5m"`, `"1h"`, `"1d"` or a number of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigDuration(pub Duration);

/// Why a text is not a duration: each says how to write one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// No number before the unit: write one, as in `30s`.
    #[error("`{text}` is not a duration; write e.g. 200ms, 30s, 5m, 1h")]
    NotANumber { text: String },
    /// A unit other than ms, s, m (or min), h and d.
    #[error("unknown duration unit `{unit}`; use ms, s, m, h or d")]
    Unit { unit: String },
}

impl ConfigDuration {
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let text = text.trim();
        let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let n: f64 = number.parse().map_err(|_| DurationError::NotANumber { text: text.to_owned() })?;
        let millis = match unit.trim() {
            "ms" | "" => 1.0,
            "s" => 1e3,
            "m" | "min" => 60e3,
            "h" => 3_600e3,
            "d" => 86_400e3,
            other => return Err(DurationError::Unit { unit: other.to_owned() }),
        };
        Ok(Self(Duration::from_micros((n * millis * 1e3) as u64)))
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0.as_millis())
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationVisitor)
    }
}

struct DurationVisitor;

impl de::Visitor<'_> for DurationVisitor {
    type Value = ConfigDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as 200ms, 30s or 5m")
    }
    fn visit_u64<E>(self, v: u64) -> Result<ConfigDuration, E> {
        Ok(ConfigDuration(Duration::from_millis(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ConfigDuration, E> {
        u64::try_from(v)
            .map(|v| ConfigDuration(Duration::from_millis(v)))
            .map_err(|_| E::custom("a duration cannot be negative"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ConfigDuration, E> {
        ConfigDuration::parse(v).map_err(E::custom)
    }
}

/// A byte size read from `"1MiB"`, `"512KiB"`, `"10MB"` or a number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ByteSizeVisitor)
    }
}

struct ByteSizeVisitor;

impl de::Visitor<'_> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size such as 512KiB or 1MiB")
    }
    fn visit_u64<E>(self, v: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
        u64::try_from(v).map(ByteSize).map_err(|_| E::custom("a size cannot be negative"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
        let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
        let (number, unit) = v.split_at(split);
        let n: u64 = number.parse().map_err(|_| E::custom(format!("`{v}` is not a size")))?;
        let factor = match unit.trim() {
            "" | "B" => 1,
            "KB" => 1_000,
            "KiB" => 1 << 10,
            "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            other => return Err(E::custom(format!("unknown size unit `{other}`; use B, KiB, MiB, GiB"))),
        };
        Ok(ByteSize(n * factor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(ConfigDuration::parse("200ms").map(|d| d.0), Ok(Duration::from_millis(200)));
        assert_eq!(ConfigDuration::parse("30s").map(|d| d.0), Ok(Duration::from_secs(30)));
        assert_eq!(ConfigDuration::parse("1.5s").map(|d| d.0), Ok(Duration::from_millis(1500)));
        assert_eq!(ConfigDuration::parse("5m").map(|d| d.0), Ok(Duration::from_secs(300)));
        assert_eq!(ConfigDuration::parse("5 fortnights"), Err(DurationError::Unit { unit: "fortnights".into() }));
        assert_eq!(ConfigDuration::parse("soon"), Err(DurationError::NotANumber { text: "soon".into() }));
    }
}
