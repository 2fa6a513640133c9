//! Media plans: versioned proposals of how a deal's budget is spent, line by line, and the
//! lifecycle each version goes through.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Currency, Lifecycle, Money, MoneyError, Period};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaPlan {
    pub id: Uuid,
    pub deal_id: Uuid,
    /// 1 for the first plan of a deal; a rejected plan is followed by a new version.
    pub version: i32,
    pub lines: Vec<PlanLine>,
    pub status: PlanStatus,
    pub source: PlanSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanLine {
    pub id: Uuid,
    pub channel: String,
    pub platform: String,
    pub format: String,
    pub flight: Period,
    pub budget: Money,
    #[serde(default)]
    pub kpis: Kpis,
}

/// Targets the line promises; each is optional because not every format sells on all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kpis {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impressions: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clicks: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "rust_decimal::serde::str_option")]
    pub cpm: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "rust_decimal::serde::str_option")]
    pub ctr: Option<Decimal>,
}

/// Who wrote the plan; an LLM draft records its prompt template so it can be reproduced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlanSource {
    Manual,
    Llm { prompt_template_version: String },
}

impl MediaPlan {
    /// The sum of the line budgets, which must all be in `currency` (the deal's).
    pub fn total(&self, currency: Currency) -> Result<Money, MoneyError> {
        Money::sum(currency, self.lines.iter().map(|line| line.budget))
    }

    pub fn line(&self, id: Uuid) -> Option<&PlanLine> {
        self.lines.iter().find(|line| line.id == id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    Draft,
    Proposed,
    Approved,
    Rejected,
}

impl Lifecycle for PlanStatus {
    const NAME: &'static str = "media plan";
    const ALL: &'static [Self] = &[Self::Draft, Self::Proposed, Self::Approved, Self::Rejected];

    fn allowed_from(self) -> &'static [Self] {
        use PlanStatus::*;
        match self {
            Draft => &[Proposed],
            Proposed => &[Approved, Rejected],
            Approved => &[],
            // The rejected version is reworked into a new draft.
            Rejected => &[Draft],
        }
    }

    fn as_str(self) -> &'static str {
        use PlanStatus::*;
        match self {
            Draft => "draft",
            Proposed => "proposed",
            Approved => "approved",
            Rejected => "rejected",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PlanStatus::*;
    use super::*;
    use crate::domain::lifecycle::assert_lifecycle;
    use crate::domain::test_support::{plan, rub, usd};
    use crate::domain::transition;

    #[test]
    fn plan_transitions_match_the_issue() {
        assert_lifecycle(&[(Draft, Proposed), (Proposed, Approved), (Proposed, Rejected), (Rejected, Draft)]);
    }

    #[test]
    fn forbidden_plan_move_lists_the_allowed_ones() {
        let err = transition(Draft, Approved).expect_err("must be proposed first");
        assert_eq!(err.allowed, ["proposed"]);
        assert!(transition(Approved, Draft).is_err());
    }

    #[test]
    fn total_sums_lines_exactly_and_refuses_other_currencies() {
        let mut p = plan(Approved, &[rub("0.1"), rub("0.2")]);
        assert_eq!(p.total(Currency::RUB).expect("all RUB"), rub("0.3"));
        p.lines[1].budget = usd("0.2");
        assert!(p.total(Currency::RUB).is_err());
    }

    #[test]
    fn source_and_kpis_serialise_compactly() {
        let source = PlanSource::Llm { prompt_template_version: "v3".into() };
        assert_eq!(
            serde_json::to_value(&source).expect("serialises"),
            serde_json::json!({"kind": "llm", "prompt_template_version": "v3"})
        );
        let kpis = Kpis { cpm: Some(Decimal::new(1505, 1)), ..Kpis::default() };
        assert_eq!(serde_json::to_value(&kpis).expect("serialises"), serde_json::json!({"cpm": "150.5"}));
        let back: Kpis = serde_json::from_str(r#"{"cpm":"150.5"}"#).expect("deserialises");
        assert_eq!(back, kpis);
    }
}
