//! The master deal: one advertiser's budget over a period, from the CRM's won deal to the
//! finished campaigns, and the lifecycle it moves through.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Inn, Kpp, Lifecycle, Money, Period};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterDeal {
    pub id: Uuid,
    /// The deal's id in each outside system, keyed by system name (`"crm"` → its deal id).
    pub external_ids: BTreeMap<String, String>,
    pub advertiser: Advertiser,
    pub owner: String,
    pub title: String,
    pub budget: Money,
    pub period: Period,
    pub status: DealStatus,
    /// Bumped on every write; see `check_version`.
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advertiser {
    pub name: String,
    pub inn: Inn,
    /// Organisations have one; individual entrepreneurs (12-digit INN) do not.
    pub kpp: Option<Kpp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealStatus {
    Draft,
    Planning,
    ProposalSent,
    Negotiation,
    Signed,
    InFlight,
    Completed,
    Cancelled,
}

impl Lifecycle for DealStatus {
    const NAME: &'static str = "master deal";
    const ALL: &'static [Self] = &[
        Self::Draft,
        Self::Planning,
        Self::ProposalSent,
        Self::Negotiation,
        Self::Signed,
        Self::InFlight,
        Self::Completed,
        Self::Cancelled,
    ];

    fn allowed_from(self) -> &'static [Self] {
        use DealStatus::*;
        match self {
            Draft => &[Planning, Cancelled],
            Planning => &[ProposalSent, Cancelled],
            ProposalSent => &[Negotiation, Cancelled],
            // Back to planning: the client asked for a different plan.
            Negotiation => &[Signed, Planning, Cancelled],
            Signed => &[InFlight, Cancelled],
            InFlight => &[Completed, Cancelled],
            Completed | Cancelled => &[],
        }
    }

    fn as_str(self) -> &'static str {
        use DealStatus::*;
        match self {
            Draft => "draft",
            Planning => "planning",
            ProposalSent => "proposal_sent",
            Negotiation => "negotiation",
            Signed => "signed",
            InFlight => "in_flight",
            Completed => "completed",
            Cancelled => "cancelled",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DealStatus::*;
    use super::*;
    use crate::domain::lifecycle::assert_lifecycle;
    use crate::domain::transition;

    #[test]
    fn deal_transitions_match_the_issue() {
        assert_lifecycle(&[
            (Draft, Planning),
            (Draft, Cancelled),
            (Planning, ProposalSent),
            (Planning, Cancelled),
            (ProposalSent, Negotiation),
            (ProposalSent, Cancelled),
            (Negotiation, Signed),
            (Negotiation, Planning),
            (Negotiation, Cancelled),
            (Signed, InFlight),
            (Signed, Cancelled),
            (InFlight, Completed),
            (InFlight, Cancelled),
        ]);
    }

    #[test]
    fn forbidden_deal_move_lists_the_allowed_ones() {
        let err = transition(Signed, Draft).expect_err("no way back to draft");
        assert_eq!(err.allowed, ["in_flight", "cancelled"]);
        assert_eq!(
            err.to_string(),
            "a master deal cannot go from `signed` to `draft`; \
             from `signed` it can go to: in_flight, cancelled"
        );
        let err = transition(Completed, Cancelled).expect_err("final");
        assert!(err.to_string().ends_with("`completed` is final"), "{err}");
        assert!(!Cancelled.can_go_to(Cancelled));
    }

    #[test]
    fn deal_round_trips_through_json() {
        let deal = crate::domain::test_support::deal("100000");
        let json = serde_json::to_value(&deal).expect("serialises");
        assert_eq!(json["status"], "planning");
        assert_eq!(json["advertiser"]["inn"], "7707083893");
        let back: MasterDeal = serde_json::from_value(json).expect("deserialises");
        assert_eq!(back, deal);
    }
}
