//! The proposal: one media plan version as sent to the client, and the client's answer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Lifecycle;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: Uuid,
    pub deal_id: Uuid,
    pub plan_id: Uuid,
    pub plan_version: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
    pub status: ProposalStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    Draft,
    Sent,
    Accepted,
    Declined,
}

impl Lifecycle for ProposalStatus {
    const NAME: &'static str = "proposal";
    const ALL: &'static [Self] = &[Self::Draft, Self::Sent, Self::Accepted, Self::Declined];

    fn allowed_from(self) -> &'static [Self] {
        use ProposalStatus::*;
        match self {
            Draft => &[Sent],
            Sent => &[Accepted, Declined],
            Accepted | Declined => &[],
        }
    }

    fn as_str(self) -> &'static str {
        use ProposalStatus::*;
        match self {
            Draft => "draft",
            Sent => "sent",
            Accepted => "accepted",
            Declined => "declined",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ProposalStatus::*;
    use crate::domain::lifecycle::assert_lifecycle;

    #[test]
    fn proposal_transitions_match_the_issue() {
        assert_lifecycle(&[(Draft, Sent), (Sent, Accepted), (Sent, Declined)]);
    }
}
