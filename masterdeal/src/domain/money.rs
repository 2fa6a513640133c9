//! `Money`: an exact decimal amount in one currency. Arithmetic refuses to mix currencies
//! instead of converting, because exchange rates belong to billing, not to the rules.

use std::cmp::Ordering;
use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::Currency;

/// An amount of one currency; serialised as `{"amount": "1500.00", "currency": "RUB"}`
/// (the amount is a string so no JSON reader turns it into a float).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: Currency,
}

/// Arithmetic on money that has no exact answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error(
        "cannot combine {left} with {right}: amounts in different currencies must be \
         converted before they are added or compared"
    )]
    CurrencyMismatch { left: Currency, right: Currency },
    #[error("the sum of amounts in {currency} is too large to represent; check for a wrong amount")]
    Overflow { currency: Currency },
}

impl Money {
    pub fn new(amount: Decimal, currency: Currency) -> Self {
        Self { amount, currency }
    }

    pub fn zero(currency: Currency) -> Self {
        Self::new(Decimal::ZERO, currency)
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        self.amount
            .checked_add(other.amount)
            .map(|amount| Money::new(amount, self.currency))
            .ok_or(MoneyError::Overflow { currency: self.currency })
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        self.amount
            .checked_sub(other.amount)
            .map(|amount| Money::new(amount, self.currency))
            .ok_or(MoneyError::Overflow { currency: self.currency })
    }

    /// Compares amounts of one currency; `Ord` is not implemented because 1 USD and 1 RUB
    /// have no order.
    pub fn try_cmp(self, other: Money) -> Result<Ordering, MoneyError> {
        self.same_currency(other)?;
        Ok(self.amount.cmp(&other.amount))
    }

    /// Sums amounts that must all be in `currency`; an empty list sums to zero of it.
    pub fn sum(currency: Currency, items: impl IntoIterator<Item = Money>) -> Result<Money, MoneyError> {
        items.into_iter().try_fold(Money::zero(currency), Money::checked_add)
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch { left: self.currency, right: other.currency })
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_support::{rub, usd};

    #[test]
    fn decimal_sums_are_exact() {
        let sum = rub("0.1").checked_add(rub("0.2")).expect("same currency");
        assert_eq!(sum, rub("0.3"));
        let many = Money::sum(Currency::RUB, std::iter::repeat_n(rub("0.1"), 10)).expect("same");
        assert_eq!(many.amount, Decimal::ONE);
    }

    #[test]
    fn mixing_currencies_is_refused() {
        let err = rub("1").checked_add(usd("1")).expect_err("mixed");
        assert_eq!(err, MoneyError::CurrencyMismatch { left: Currency::RUB, right: Currency::USD });
        assert!(rub("1").checked_sub(usd("1")).is_err());
        assert!(rub("1").try_cmp(usd("1")).is_err());
        assert!(Money::sum(Currency::RUB, [rub("1"), usd("2")]).is_err());
    }

    #[test]
    fn empty_sum_is_zero_in_the_given_currency() {
        assert_eq!(Money::sum(Currency::EUR, []).expect("empty"), Money::zero(Currency::EUR));
    }

    #[test]
    fn subtraction_and_comparison() {
        assert_eq!(rub("10.50").checked_sub(rub("0.50")).expect("same"), rub("10"));
        assert_eq!(rub("2").try_cmp(rub("10")).expect("same"), Ordering::Less);
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        let max = Money::new(Decimal::MAX, Currency::RUB);
        assert_eq!(max.checked_add(rub("1")), Err(MoneyError::Overflow { currency: Currency::RUB }));
    }

    #[test]
    fn serialises_amount_as_a_string() {
        let json = serde_json::to_value(rub("1500.00")).expect("serialises");
        assert_eq!(json, serde_json::json!({"amount": "1500.00", "currency": "RUB"}));
        let back: Money = serde_json::from_value(json).expect("deserialises");
        assert_eq!(back, rub("1500.00"));
        assert!(serde_json::from_str::<Money>(r#"{"amount":"1","currency":"rub"}"#).is_err());
    }
}
