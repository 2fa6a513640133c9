//! `Period`: an inclusive range of calendar days, used for deal periods and flights.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Days `from` to `to`, both included; `from` is never after `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawPeriod")]
pub struct Period {
    from: NaiveDate,
    to: NaiveDate,
}

/// A period that ends before it starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the period ends on {to}, before it starts on {from}: swap the dates or fix the end")]
pub struct PeriodError {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

#[derive(Deserialize)]
struct RawPeriod {
    from: NaiveDate,
    to: NaiveDate,
}

impl TryFrom<RawPeriod> for Period {
    type Error = PeriodError;

    fn try_from(raw: RawPeriod) -> Result<Self, Self::Error> {
        Period::new(raw.from, raw.to)
    }
}

impl Period {
    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<Self, PeriodError> {
        if from <= to { Ok(Self { from, to }) } else { Err(PeriodError { from, to }) }
    }

    pub fn from(self) -> NaiveDate {
        self.from
    }

    pub fn to(self) -> NaiveDate {
        self.to
    }

    pub fn contains(self, inner: Period) -> bool {
        self.from <= inner.from && inner.to <= self.to
    }

    pub fn contains_day(self, day: NaiveDate) -> bool {
        self.from <= day && day <= self.to
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.from, self.to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_support::{day, period};

    #[test]
    fn a_period_may_be_one_day_but_not_reversed() {
        assert!(Period::new(day("2025-03-01"), day("2025-03-01")).is_ok());
        let err = Period::new(day("2025-03-02"), day("2025-03-01")).expect_err("reversed");
        assert!(err.to_string().contains("before it starts"), "{err}");
    }

    #[test]
    fn containment_includes_both_ends() {
        let outer = period("2025-03-01", "2025-03-31");
        assert!(outer.contains(period("2025-03-01", "2025-03-31")));
        assert!(!outer.contains(period("2025-02-28", "2025-03-10")));
        assert!(!outer.contains(period("2025-03-10", "2025-04-01")));
        assert!(outer.contains_day(day("2025-03-31")));
    }

    #[test]
    fn deserialising_checks_the_order() {
        let ok: Period = serde_json::from_str(r#"{"from":"2025-01-01","to":"2025-01-31"}"#).expect("ordered");
        assert_eq!(ok, period("2025-01-01", "2025-01-31"));
        assert!(serde_json::from_str::<Period>(r#"{"from":"2025-02-01","to":"2025-01-31"}"#).is_err());
    }
}
