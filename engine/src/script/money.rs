//! Decimal arithmetic for amounts of money, so scripts never add or round binary floats.
//!
//! Amounts may come in as ints, floats or decimal strings and always go out as decimal
//! strings, which keep every digit through JSON.

use std::str::FromStr;

use rhai::{Array, Dynamic, Engine, INT};
use rust_decimal::{Decimal, RoundingStrategy};

use super::library::fail;

type FnResult<T> = Result<T, Box<rhai::EvalAltResult>>;

pub(super) fn register(engine: &mut Engine) {
    engine
        .register_fn("money_round", money_round)
        .register_fn("money_add", money_add)
        .register_fn("money_sum", money_sum);
}

/// `money_round(x, scale) -> string`: `x` rounded to `scale` decimals (0 to 28), half away
/// from zero as accountants round, written with exactly `scale` decimals:
/// `money_round(1250000.505, 2) == "1250000.51"`, `money_round("2.5", 0) == "3"`,
/// `money_round(-0.125, 2) == "-0.13"`, `money_round(7, 2) == "7.00"`.
/// `x` is an int, a float or a decimal string; a float counts as the shortest decimal that
/// prints as it, so `1250000.505` is rounded as written, not as its binary approximation.
fn money_round(x: Dynamic, scale: INT) -> FnResult<String> {
    let scale = u32::try_from(scale)
        .ok()
        .filter(|s| *s <= Decimal::MAX_SCALE)
        .ok_or_else(|| fail(format!("money_round: scale must be 0 to 28, got {scale}")))?;
    let mut rounded = decimal("money_round", &x)?.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero);
    // Rounding never adds decimals; rescaling pads "7" to "7.00".
    rounded.rescale(scale);
    if rounded.scale() != scale {
        return Err(fail(format!("money_round: {x} is too large to write with {scale} decimals")));
    }
    Ok(text(rounded))
}

/// `money_add(a, b) -> string`: the exact sum of two amounts (ints, floats or decimal
/// strings), keeping the larger number of decimals: `money_add(0.1, 0.2) == "0.3"`,
/// `money_add("1.50", "2.50") == "4.00"`.
fn money_add(a: Dynamic, b: Dynamic) -> FnResult<String> {
    let sum = decimal("money_add", &a)?
        .checked_add(decimal("money_add", &b)?)
        .ok_or_else(|| fail(format!("money_add: {a} + {b} overflows")))?;
    Ok(text(sum))
}

/// `money_sum(amounts) -> string`: the exact sum of an array of amounts (ints, floats or
/// decimal strings); `"0"` for an empty array: `money_sum([0.1, 0.2, "0.30"]) == "0.60"`.
fn money_sum(amounts: &mut Array) -> FnResult<String> {
    let mut sum = Decimal::ZERO;
    for amount in amounts.iter() {
        sum = sum
            .checked_add(decimal("money_sum", amount)?)
            .ok_or_else(|| fail("money_sum: the sum overflows".to_owned()))?;
    }
    Ok(text(sum))
}

/// `value` as a decimal, or an error naming the function it was given to.
fn decimal(function: &str, value: &Dynamic) -> FnResult<Decimal> {
    let parsed = if let Ok(int) = value.as_int() {
        Ok(Decimal::from(int))
    } else if let Ok(float) = value.as_float() {
        // `{}` prints the shortest decimal that reads back as the same float: what was written.
        Decimal::from_str(&format!("{float}"))
    } else if let Ok(s) = value.as_immutable_string_ref() {
        let s = s.trim();
        Decimal::from_str(s).or_else(|_| Decimal::from_scientific(s))
    } else {
        return Err(fail(format!(
            "{function}: expected an amount (int, float or decimal string), got {}",
            value.type_name()
        )));
    };
    parsed.map_err(|_| fail(format!("{function}: {value:?} is not an amount")))
}

/// The decimal as text; never "-0.00", which would read as a debit of nothing.
fn text(mut value: Decimal) -> String {
    if value.is_zero() {
        value.set_sign_positive(true);
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(x: impl Into<Dynamic>, scale: INT) -> String {
        money_round(x.into(), scale).unwrap_or_else(|err| format!("error: {err}"))
    }

    #[test]
    fn rounds_half_away_from_zero_as_written() {
        assert_eq!(round(1_250_000.505_f64, 2), "1250000.51");
        assert_eq!(round("1250000.505", 2), "1250000.51");
        assert_eq!(round(-0.125_f64, 2), "-0.13");
        assert_eq!(round("2.5", 0), "3");
        assert_eq!(round("0.045", 2), "0.05");
        assert_eq!(round(7_i64, 2), "7.00");
        assert_eq!(round("-0.001", 2), "0.00");
        assert_eq!(round(" 12.3 ", 3), "12.300");
        assert_eq!(round("1.5e2", 1), "150.0");
    }

    #[test]
    fn rejects_what_is_not_an_amount() {
        assert_eq!(round("12,50", 2), r#"error: money_round: "12,50" is not an amount"#);
        assert_eq!(round(true, 2), "error: money_round: expected an amount (int, float or decimal string), got bool");
        assert_eq!(round(1_i64, 29), "error: money_round: scale must be 0 to 28, got 29");
        assert_eq!(round(1_i64, -1), "error: money_round: scale must be 0 to 28, got -1");
        assert_eq!(round(f64::NAN, 2), "error: money_round: NaN is not an amount");
        assert_eq!(
            round("79228162514264337593543950335", 2),
            "error: money_round: 79228162514264337593543950335 is too large to write with 2 decimals"
        );
    }

    #[test]
    fn adds_without_float_error() {
        let add = |a: Dynamic, b: Dynamic| money_add(a, b).unwrap_or_else(|e| e.to_string());
        assert_eq!(add(0.1_f64.into(), 0.2_f64.into()), "0.3");
        assert_eq!(add("1.50".into(), "2.50".into()), "4.00");
        assert_eq!(add(10_i64.into(), "-0.01".into()), "9.99");
        assert_eq!(add("x".into(), 1_i64.into()), r#"money_add: "x" is not an amount"#);
    }

    #[test]
    fn sums_arrays_exactly() {
        let mut amounts: Array = vec![0.1_f64.into(), 0.2_f64.into(), "0.30".into(), 1_i64.into()];
        assert_eq!(money_sum(&mut amounts).ok().as_deref(), Some("1.60"));
        assert_eq!(money_sum(&mut Array::new()).ok().as_deref(), Some("0"));
        let mut bad: Array = vec![1_i64.into(), Dynamic::UNIT];
        assert!(money_sum(&mut bad).is_err());
    }
}
