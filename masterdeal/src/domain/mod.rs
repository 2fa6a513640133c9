//! The MasterDeal rules in pure Rust: the aggregates, their status lifecycles, money, tax ids
//! and the invariants between them. No I/O here; `store` persists what these rules accept.
//!
//! # Layout
//!
//! - `money`, `currency`: exact amounts that never mix currencies.
//! - `lifecycle`: the state-machine trait and `transition`; each aggregate's file holds its
//!   status enum (`deal`, `plan`, `proposal`, `contract`).
//! - `deal`, `plan`, `proposal`, `contract`, `campaign`: the aggregates as plain structs.
//! - `rules`, `summary`: invariants across aggregates and the per-channel summary.
//! - `draft`, `generation`, `render`: the check of a plan a model drafted, generations and
//!   their states, a proposal's sanitised HTML.
//! - `tax_id`, `period`, `version`: INN/KPP, date ranges, optimistic concurrency.

mod campaign;
mod contract;
mod currency;
mod deal;
mod draft;
mod generation;
mod lifecycle;
mod money;
mod period;
mod plan;
mod proposal;
mod render;
mod rules;
mod summary;
mod tax_id;
#[cfg(test)]
mod test_support;
mod version;

pub use campaign::{Campaign, CampaignStats, CampaignStatus, RollUp, roll_up};
pub use contract::{Contract, ContractStatus, PaymentStatus};
pub use currency::{Currency, CurrencyError};
pub use deal::{Advertiser, DealStatus, MasterDeal};
pub use draft::{CHANNELS, PLATFORMS, check_drafted_plan};
pub use generation::{GenerationKind, GenerationStatus};
pub use lifecycle::{Lifecycle, TransitionError, transition};
pub use money::{Money, MoneyError};
pub use period::{Period, PeriodError};
pub use plan::{Kpis, MediaPlan, PlanLine, PlanSource, PlanStatus};
pub use proposal::{Proposal, ProposalStatus};
pub use render::{proposal_html, sanitised};
pub use rules::{RuleError, campaign_spend_matches, campaign_within_line, contract_matches_plan, plan_within_budget};
pub use summary::{ChannelSummary, deal_summary};
pub use tax_id::{Inn, Kpp, TaxIdError};
pub use version::{Conflict, check_version};
