//! ISO 4217 currency codes: only the active codes that have minor units are accepted, so a
//! typo or a fund code never reaches a budget.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An active ISO 4217 currency, serialised as its three-letter code (`"RUB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(&'static str);

/// A currency code that is not an active ISO 4217 code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CurrencyError {
    #[error("currency code `{code}` must be upper case: write `{upper}`")]
    NotUpperCase { code: String, upper: String },
    #[error("`{code}` is not an active ISO 4217 currency code (e.g. RUB, USD, EUR, KZT)")]
    Unknown { code: String },
}

/// Active ISO 4217 codes with their minor units (the table's "E" column). Codes without
/// minor units (XAU, XDR, XXX…) are left out: they are not money a deal is budgeted in.
#[rustfmt::skip]
const CODES: &[(&str, u8)] = &[
    ("AED", 2), ("AFN", 2), ("ALL", 2), ("AMD", 2), ("AOA", 2), ("ARS", 2), ("AUD", 2), ("AWG", 2),
    ("AZN", 2), ("BAM", 2), ("BBD", 2), ("BDT", 2), ("BGN", 2), ("BHD", 3), ("BIF", 0), ("BMD", 2),
    ("BND", 2), ("BOB", 2), ("BOV", 2), ("BRL", 2), ("BSD", 2), ("BTN", 2), ("BWP", 2), ("BYN", 2),
    ("BZD", 2), ("CAD", 2), ("CDF", 2), ("CHE", 2), ("CHF", 2), ("CHW", 2), ("CLF", 4), ("CLP", 0),
    ("CNY", 2), ("COP", 2), ("COU", 2), ("CRC", 2), ("CUP", 2), ("CVE", 2), ("CZK", 2), ("DJF", 0),
    ("DKK", 2), ("DOP", 2), ("DZD", 2), ("EGP", 2), ("ERN", 2), ("ETB", 2), ("EUR", 2), ("FJD", 2),
    ("FKP", 2), ("GBP", 2), ("GEL", 2), ("GHS", 2), ("GIP", 2), ("GMD", 2), ("GNF", 0), ("GTQ", 2),
    ("GYD", 2), ("HKD", 2), ("HNL", 2), ("HTG", 2), ("HUF", 2), ("IDR", 2), ("ILS", 2), ("INR", 2),
    ("IQD", 3), ("IRR", 2), ("ISK", 0), ("JMD", 2), ("JOD", 3), ("JPY", 0), ("KES", 2), ("KGS", 2),
    ("KHR", 2), ("KMF", 0), ("KPW", 2), ("KRW", 0), ("KWD", 3), ("KYD", 2), ("KZT", 2), ("LAK", 2),
    ("LBP", 2), ("LKR", 2), ("LRD", 2), ("LSL", 2), ("LYD", 3), ("MAD", 2), ("MDL", 2), ("MGA", 2),
    ("MKD", 2), ("MMK", 2), ("MNT", 2), ("MOP", 2), ("MRU", 2), ("MUR", 2), ("MVR", 2), ("MWK", 2),
    ("MXN", 2), ("MXV", 2), ("MYR", 2), ("MZN", 2), ("NAD", 2), ("NGN", 2), ("NIO", 2), ("NOK", 2),
    ("NPR", 2), ("NZD", 2), ("OMR", 3), ("PAB", 2), ("PEN", 2), ("PGK", 2), ("PHP", 2), ("PKR", 2),
    ("PLN", 2), ("PYG", 0), ("QAR", 2), ("RON", 2), ("RSD", 2), ("RUB", 2), ("RWF", 0), ("SAR", 2),
    ("SBD", 2), ("SCR", 2), ("SDG", 2), ("SEK", 2), ("SGD", 2), ("SHP", 2), ("SLE", 2), ("SOS", 2),
    ("SRD", 2), ("SSP", 2), ("STN", 2), ("SVC", 2), ("SYP", 2), ("SZL", 2), ("THB", 2), ("TJS", 2),
    ("TMT", 2), ("TND", 3), ("TOP", 2), ("TRY", 2), ("TTD", 2), ("TWD", 2), ("TZS", 2), ("UAH", 2),
    ("UGX", 0), ("USD", 2), ("USN", 2), ("UYI", 0), ("UYU", 2), ("UYW", 4), ("UZS", 2), ("VED", 2),
    ("VES", 2), ("VND", 0), ("VUV", 0), ("WST", 2), ("XAF", 0), ("XCD", 2), ("XCG", 2), ("XOF", 0),
    ("XPF", 0), ("YER", 2), ("ZAR", 2), ("ZMW", 2), ("ZWG", 2),
];

impl Currency {
    pub const RUB: Currency = Currency("RUB");
    pub const USD: Currency = Currency("USD");
    pub const EUR: Currency = Currency("EUR");

    /// Accepts an active code as written; lower case is refused rather than fixed so that
    /// the caller's data gets corrected at its source.
    pub fn parse(code: &str) -> Result<Self, CurrencyError> {
        if let Some((known, _)) = CODES.iter().find(|(c, _)| *c == code) {
            return Ok(Currency(known));
        }
        let upper = code.to_ascii_uppercase();
        if upper != code && CODES.iter().any(|(c, _)| *c == upper) {
            return Err(CurrencyError::NotUpperCase { code: code.to_owned(), upper });
        }
        Err(CurrencyError::Unknown { code: code.to_owned() })
    }

    pub fn code(self) -> &'static str {
        self.0
    }

    /// Every code [`Currency::parse`] accepts, in alphabetical order.
    pub fn codes() -> impl Iterator<Item = &'static str> {
        CODES.iter().map(|(code, _)| *code)
    }

    /// Digits after the decimal point in this currency (2 for RUB, 0 for JPY, 3 for KWD).
    pub fn minor_units(self) -> u8 {
        CODES.iter().find(|(c, _)| *c == self.0).map_or(2, |(_, units)| *units)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

// By hand: a derive would tie the `&'static str` field to the deserializer's lifetime.
impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::parse(&code).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_active_codes() {
        for code in ["RUB", "USD", "EUR", "KZT", "BYN", "CNY", "GBP", "JPY", "KWD"] {
            let currency = Currency::parse(code).expect("an active code");
            assert_eq!(currency.code(), code);
        }
        assert_eq!(Currency::parse("JPY").expect("active").minor_units(), 0);
        assert_eq!(Currency::parse("KWD").expect("active").minor_units(), 3);
        assert_eq!(Currency::RUB.minor_units(), 2);
    }

    #[test]
    fn refuses_lower_case_with_the_fix() {
        let err = Currency::parse("rub").expect_err("lower case");
        assert_eq!(err.to_string(), "currency code `rub` must be upper case: write `RUB`");
    }

    #[test]
    fn refuses_unknown_and_retired_codes_naming_them() {
        for code in ["XYZ", "RUR", "", "RUBL", "XAU"] {
            let err = Currency::parse(code).expect_err("not active");
            assert!(err.to_string().contains(&format!("`{code}`")), "{err}");
        }
    }

    #[test]
    fn codes_are_sorted_unique_and_well_formed() {
        assert!(CODES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(CODES.iter().all(|(c, _)| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())));
    }

    #[test]
    fn serde_round_trips_and_refuses_unknown() {
        let json = serde_json::to_string(&Currency::EUR).expect("serialises");
        assert_eq!(json, "\"EUR\"");
        let back: Currency = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, Currency::EUR);
        assert!(serde_json::from_str::<Currency>("\"eur\"").is_err());
    }
}
