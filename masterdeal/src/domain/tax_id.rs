//! Russian taxpayer identifiers: `Inn` (10 digits for organisations, 12 for individuals,
//! with check digits) and `Kpp` (the 9-character registration reason code).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A taxpayer number whose check digits are valid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Inn(String);

/// A registration reason code: 4 digits, 2 digits or capital letters, 3 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Kpp(String);

/// An INN or KPP that is malformed; each message says what a valid one looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaxIdError {
    #[error("INN `{0}` must be 10 digits (organisation) or 12 digits (individual)")]
    InnShape(String),
    #[error("INN `{0}` has a wrong check digit: it is mistyped, check it against the registry")]
    InnChecksum(String),
    #[error("KPP `{0}` must be 9 characters: 4 digits, 2 digits or capital letters, then 3 digits")]
    KppShape(String),
}

const WEIGHTS_10: [u32; 9] = [2, 4, 10, 3, 5, 9, 4, 6, 8];
const WEIGHTS_11: [u32; 10] = [7, 2, 4, 10, 3, 5, 9, 4, 6, 8];
const WEIGHTS_12: [u32; 11] = [3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8];

/// The FNS check digit: weighted sum modulo 11, then modulo 10.
fn check_digit(digits: &[u32], weights: &[u32]) -> u32 {
    let sum: u32 = digits.iter().zip(weights).map(|(d, w)| d * w).sum();
    sum % 11 % 10
}

impl Inn {
    pub fn parse(value: &str) -> Result<Self, TaxIdError> {
        let digits: Vec<u32> = value.chars().filter_map(|c| c.to_digit(10)).collect();
        if digits.len() != value.len() || !matches!(digits.len(), 10 | 12) {
            return Err(TaxIdError::InnShape(value.to_owned()));
        }
        let valid = if digits.len() == 10 {
            check_digit(&digits, &WEIGHTS_10) == digits[9]
        } else {
            check_digit(&digits, &WEIGHTS_11) == digits[10] && check_digit(&digits, &WEIGHTS_12) == digits[11]
        };
        if valid { Ok(Self(value.to_owned())) } else { Err(TaxIdError::InnChecksum(value.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Kpp {
    pub fn parse(value: &str) -> Result<Self, TaxIdError> {
        let bytes = value.as_bytes();
        let shaped = bytes.len() == 9
            && bytes.iter().enumerate().all(|(i, b)| match i {
                4 | 5 => b.is_ascii_digit() || b.is_ascii_uppercase(),
                _ => b.is_ascii_digit(),
            });
        if shaped { Ok(Self(value.to_owned())) } else { Err(TaxIdError::KppShape(value.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_conversions {
    ($ty:ident) => {
        impl TryFrom<String> for $ty {
            type Error = TaxIdError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                $ty::parse(&value)
            }
        }

        impl From<$ty> for String {
            fn from(value: $ty) -> Self {
                value.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_conversions!(Inn);
string_conversions!(Kpp);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_inns_pass() {
        for inn in ["7707083893", "500100732259", "7830002293"] {
            assert_eq!(Inn::parse(inn).expect("valid").as_str(), inn);
        }
    }

    #[test]
    fn wrong_check_digits_are_refused() {
        for inn in ["7707083894", "500100732258", "500100732269"] {
            assert_eq!(Inn::parse(inn), Err(TaxIdError::InnChecksum(inn.to_owned())));
        }
    }

    #[test]
    fn inn_shape_is_checked() {
        for inn in ["", "770708389", "77070838931", "7707O83893", "+707083893", "７707083893"] {
            assert_eq!(Inn::parse(inn), Err(TaxIdError::InnShape(inn.to_owned())));
        }
    }

    #[test]
    fn kpp_shapes() {
        for kpp in ["773601001", "7736AB001", "77360A001"] {
            assert!(Kpp::parse(kpp).is_ok(), "{kpp}");
        }
        for kpp in ["77360100", "7736010011", "7736ab001", "A73601001", "773601A01", ""] {
            assert_eq!(Kpp::parse(kpp), Err(TaxIdError::KppShape(kpp.to_owned())));
        }
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<Inn>("\"7707083893\"").is_ok());
        assert!(serde_json::from_str::<Inn>("\"7707083894\"").is_err());
        assert!(serde_json::from_str::<Kpp>("\"7736-1001\"").is_err());
    }
}
