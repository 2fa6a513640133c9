//! Builders shared by the domain's unit tests, so each test states only what it is about.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::*;

pub(crate) const CHANNELS: [&str; 3] = ["video", "display", "search"];

pub(crate) fn money(amount: &str, currency: Currency) -> Money {
    Money::new(Decimal::from_str(amount).expect("test amounts are decimals"), currency)
}

pub(crate) fn rub(amount: &str) -> Money {
    money(amount, Currency::RUB)
}

pub(crate) fn usd(amount: &str) -> Money {
    money(amount, Currency::USD)
}

pub(crate) fn day(date: &str) -> NaiveDate {
    NaiveDate::from_str(date).expect("test dates are ISO dates")
}

pub(crate) fn period(from: &str, to: &str) -> Period {
    Period::new(day(from), day(to)).expect("test periods are ordered")
}

pub(crate) fn deal(budget: &str) -> MasterDeal {
    MasterDeal {
        id: Uuid::from_u128(1),
        external_ids: BTreeMap::from([("crm".to_owned(), "D-42".to_owned())]),
        advertiser: Advertiser {
            name: "Sberbank".to_owned(),
            inn: Inn::parse("7707083893").expect("valid INN"),
            kpp: Some(Kpp::parse("773601001").expect("valid KPP")),
        },
        owner: "a.petrova".to_owned(),
        title: "Spring launch".to_owned(),
        budget: rub(budget),
        period: period("2025-03-01", "2025-05-31"),
        status: DealStatus::Planning,
        version: 1,
    }
}

/// A plan of the test deal, one line per budget, channels cycling through `CHANNELS`.
pub(crate) fn plan(status: PlanStatus, budgets: &[Money]) -> MediaPlan {
    let lines = budgets
        .iter()
        .zip(0u128..)
        .map(|(budget, i)| PlanLine {
            id: Uuid::from_u128(100 + i),
            channel: CHANNELS[(i % 3) as usize].to_owned(),
            platform: "yandex_direct".to_owned(),
            format: "banner".to_owned(),
            flight: period("2025-03-01", "2025-03-31"),
            budget: *budget,
            kpis: Kpis::default(),
        })
        .collect();
    MediaPlan {
        id: Uuid::from_u128(2),
        deal_id: Uuid::from_u128(1),
        version: 1,
        lines,
        status,
        source: PlanSource::Manual,
    }
}

pub(crate) fn campaign(line: &PlanLine, budget: Money, spend: Money) -> Campaign {
    Campaign {
        id: Uuid::new_v4(),
        deal_id: Uuid::from_u128(1),
        plan_line_id: line.id,
        platform: line.platform.clone(),
        platform_campaign_id: None,
        status: CampaignStatus::Active,
        flight: line.flight,
        budget,
        spend,
    }
}

pub(crate) fn stats(campaign_id: Uuid, date: &str, spend: &str) -> CampaignStats {
    CampaignStats { campaign_id, day: day(date), impressions: 1000, clicks: 10, spend: rub(spend), conversions: 1 }
}
