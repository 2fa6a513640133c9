//! The domain's check of a media plan a model drafted, before anything is stored: the
//! answer as written (JSON), against the deal it is for. Every problem is listed, each
//! naming where it is (`/lines/1/budget`), so the model can be asked to repair them all.

use std::cmp::Ordering;
use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::Value;

use super::{MasterDeal, Money, Period};

/// The channels the agency plans.
pub const CHANNELS: &[&str] = &["search", "display", "video", "social", "audio", "tv", "ooh"];

/// The platforms the agency buys on.
pub const PLATFORMS: &[&str] =
    &["yandex_direct", "yandex_display", "vk_ads", "mytarget", "telegram_ads", "youtube", "yandex_music", "google"];

/// What is wrong with `draft` (`{lines: [{channel, platform, format, flight_from, flight_to,
/// budget}], total?}`) as a plan for `deal`; empty when it can be stored.
pub fn check_drafted_plan(deal: &MasterDeal, draft: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(lines) = draft.get("lines").and_then(Value::as_array).filter(|l| !l.is_empty()) else {
        return vec!["/lines: a plan needs at least one line".to_owned()];
    };
    let currency = deal.budget.currency;
    let mut sum = Money::zero(currency);
    for (i, line) in lines.iter().enumerate() {
        let at = |field: &str| format!("/lines/{i}/{field}");
        known(line, "channel", CHANNELS, &at("channel"), &mut errors);
        known(line, "platform", PLATFORMS, &at("platform"), &mut errors);
        if line.get("format").and_then(Value::as_str).is_none_or(|f| f.trim().is_empty()) {
            errors.push(format!("{}: a line names its ad format", at("format")));
        }
        match money(line.get("budget"), &at("budget")) {
            Ok(budget) if budget <= Decimal::ZERO => {
                errors.push(format!("{}: a line's budget is more than zero, not {budget}", at("budget")));
            }
            Ok(budget) => match sum.checked_add(Money::new(budget, currency)) {
                Ok(total) => sum = total,
                Err(e) => errors.push(format!("{}: {e}", at("budget"))),
            },
            Err(e) => errors.push(e),
        }
        let from = date(line.get("flight_from"), &at("flight_from"), &mut errors);
        let to = date(line.get("flight_to"), &at("flight_to"), &mut errors);
        if let (Some(from), Some(to)) = (from, to) {
            match Period::new(from, to) {
                Ok(flight) if !deal.period.contains(flight) => errors.push(format!(
                    "/lines/{i}: the flight {flight} is outside the deal's period {}: keep it within",
                    deal.period
                )),
                Ok(_) => {}
                Err(e) => errors.push(format!("/lines/{i}: {e}")),
            }
        }
    }
    if let Some(total) = draft.get("total") {
        match money(Some(total), "/total") {
            Ok(total) if total != sum.amount => {
                errors.push(format!("/total: {total} is not the sum of the line budgets, {}", sum.amount));
            }
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    if sum.try_cmp(deal.budget) == Ok(Ordering::Greater) {
        errors.push(format!(
            "/lines: the line budgets total {sum}, over the deal's budget {} by {}: cut them to fit",
            deal.budget,
            sum.amount - deal.budget.amount
        ));
    }
    errors
}

fn known(line: &Value, field: &str, known: &[&str], at: &str, errors: &mut Vec<String>) {
    match line.get(field).and_then(Value::as_str) {
        Some(v) if known.contains(&v) => {}
        Some(v) => errors.push(format!("{at}: `{v}` is not a known {field}; use one of {}", known.join(", "))),
        None => errors.push(format!("{at}: a line names its {field}")),
    }
}

/// Money as a decimal string with at most two decimals (a JSON number may have lost digits).
fn money(value: Option<&Value>, at: &str) -> Result<Decimal, String> {
    let Some(Value::String(text)) = value else {
        return Err(format!("{at}: money is a decimal string such as \"1500000.00\""));
    };
    let amount = Decimal::from_str(text).map_err(|_| format!("{at}: `{text}` is not a decimal amount"))?;
    if amount.scale() > 2 {
        return Err(format!("{at}: `{text}` has more than two decimals"));
    }
    Ok(amount)
}

fn date(value: Option<&Value>, at: &str, errors: &mut Vec<String>) -> Option<NaiveDate> {
    let parsed = value.and_then(Value::as_str).and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    if parsed.is_none() {
        errors.push(format!("{at}: a date as YYYY-MM-DD"));
    }
    parsed
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::check_drafted_plan;
    use crate::domain::test_support::deal;

    fn line(channel: &str, budget: &str, from: &str, to: &str) -> serde_json::Value {
        json!({ "channel": channel, "platform": "yandex_direct", "format": "text", "flight_from": from, "flight_to": to, "budget": budget })
    }

    #[test]
    fn a_plan_within_the_deal_passes() {
        let d = deal("1500000.00");
        let (from, to) = (d.period.from().to_string(), d.period.to().to_string());
        let budget = d.budget.amount.to_string();
        let plan = json!({ "lines": [line("search", &budget, &from, &to)], "total": budget });
        assert_eq!(check_drafted_plan(&d, &plan), Vec::<String>::new());
    }

    #[test]
    fn every_broken_rule_is_named_where_it_is() {
        let d = deal("1500000.00");
        let (from, to) = (d.period.from().to_string(), d.period.to().to_string());
        let over = (d.budget.amount + rust_decimal::Decimal::ONE).to_string();
        let late = (d.period.to() + chrono::Days::new(1)).to_string();
        let mut bad_platform = line("search", "1.00", &from, &to);
        bad_platform["platform"] = json!("myspace");
        let plan = json!({
            "lines": [
                line("search", &over, &from, &to),
                line("radio", "1.00", &from, &late),
                bad_platform,
                line("video", "1.005", &from, &to),
                { "channel": "video", "platform": "vk_ads", "format": "instream", "flight_from": from, "flight_to": to, "budget": 5 },
            ],
            "total": "1.00",
        });
        let errors = check_drafted_plan(&d, &plan);
        let has = |needle: &str| assert!(errors.iter().any(|e| e.contains(needle)), "no `{needle}` in {errors:#?}");
        has("/lines/1/channel: `radio` is not a known channel");
        has("/lines/1: the flight");
        has("outside the deal's period");
        has("/lines/2/platform: `myspace` is not a known platform");
        has("/lines/3/budget: `1.005` has more than two decimals");
        has("/lines/4/budget: money is a decimal string");
        has("/total: 1.00 is not the sum of the line budgets");
        has("over the deal's budget");
        assert_eq!(check_drafted_plan(&d, &json!({ "lines": [] })), ["/lines: a plan needs at least one line"]);
    }
}
