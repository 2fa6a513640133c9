//! The contract signed for a deal: its amount, its lifecycle and what billing knows of it.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Lifecycle, Money};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contract {
    pub id: Uuid,
    pub deal_id: Uuid,
    pub number: String,
    pub date: NaiveDate,
    pub amount: Money,
    /// Why the amount differs from the approved plan's total (a discount, a fee); without
    /// it the two must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_override_reason: Option<String>,
    pub status: ContractStatus,
    /// The contract's ids in billing systems, keyed by system name.
    #[serde(default)]
    pub billing_ids: BTreeMap<String, String>,
    pub payment_status: PaymentStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Unpaid,
    PartiallyPaid,
    Paid,
    Overdue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContractStatus {
    Draft,
    Sent,
    Signed,
    Terminated,
}

impl Lifecycle for ContractStatus {
    const NAME: &'static str = "contract";
    const ALL: &'static [Self] = &[Self::Draft, Self::Sent, Self::Signed, Self::Terminated];

    fn allowed_from(self) -> &'static [Self] {
        use ContractStatus::*;
        match self {
            Draft => &[Sent],
            Sent => &[Signed],
            Signed => &[Terminated],
            Terminated => &[],
        }
    }

    fn as_str(self) -> &'static str {
        use ContractStatus::*;
        match self {
            Draft => "draft",
            Sent => "sent",
            Signed => "signed",
            Terminated => "terminated",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ContractStatus::*;
    use super::*;
    use crate::domain::lifecycle::assert_lifecycle;
    use crate::domain::transition;

    #[test]
    fn contract_transitions_match_the_issue() {
        assert_lifecycle(&[(Draft, Sent), (Sent, Signed), (Signed, Terminated)]);
    }

    #[test]
    fn forbidden_contract_move_lists_the_allowed_ones() {
        let err = transition(Draft, Signed).expect_err("must be sent first");
        assert_eq!(err.allowed, ["sent"]);
        assert_eq!(err.to_string(), "a contract cannot go from `draft` to `signed`; from `draft` it can go to: sent");
    }

    #[test]
    fn payment_status_is_snake_case() {
        let json = serde_json::to_value(PaymentStatus::PartiallyPaid).expect("serialises");
        assert_eq!(json, "partially_paid");
    }
}
