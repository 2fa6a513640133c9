//! A generation: a media plan or a commercial proposal that a route drafts with a model.
//! The API asks for one and answers at once (a model can take longer than a caller waits);
//! the caller follows it until it is `done`, with the id of what was stored, or `failed`.

use serde::{Deserialize, Serialize};

use super::Lifecycle;

/// What is drafted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenerationKind {
    /// A media plan for a deal.
    MediaPlan,
    /// A commercial proposal (КП) for an approved media plan.
    Proposal,
}

impl GenerationKind {
    pub const ALL: [GenerationKind; 2] = [GenerationKind::MediaPlan, GenerationKind::Proposal];

    /// The name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            GenerationKind::MediaPlan => "media_plan",
            GenerationKind::Proposal => "proposal",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenerationStatus {
    Pending,
    Done,
    Failed,
}

impl Lifecycle for GenerationStatus {
    const NAME: &'static str = "generation";
    const ALL: &'static [Self] = &[Self::Pending, Self::Done, Self::Failed];

    fn allowed_from(self) -> &'static [Self] {
        use GenerationStatus::*;
        match self {
            Pending => &[Done, Failed],
            // A failed generation's dead letter replayed and drafted after all.
            Failed => &[Done],
            Done => &[],
        }
    }

    fn as_str(self) -> &'static str {
        use GenerationStatus::*;
        match self {
            Pending => "pending",
            Done => "done",
            Failed => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::GenerationStatus::*;
    use crate::domain::lifecycle::assert_lifecycle;

    #[test]
    fn a_generation_ends_once_unless_a_replay_drafts_a_failed_one() {
        assert_lifecycle(&[(Pending, Done), (Pending, Failed), (Failed, Done)]);
    }
}
