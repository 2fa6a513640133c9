//! The records below a deal and its plans as GraphQL objects: plan lines, proposals,
//! contracts, campaigns with their days, and the deal summary. Same conventions as `types`.

use async_graphql::{ID, Object};
use rust_decimal::Decimal;

use super::types::{SystemId, system_ids, time, wire_name};
use crate::store::{
    CampaignRow, ChannelSummaryRow, ContractRow, DayStatsRow, DealSummary as SummaryRow, PlanLineRow, ProposalRow,
};

fn money(d: &Decimal) -> String {
    d.to_string()
}

fn id(u: uuid::Uuid) -> ID {
    ID(u.to_string())
}

/// One line of a media plan: a channel's budget on one platform and format over a flight.
pub(super) struct PlanLine(pub PlanLineRow);

#[Object]
impl PlanLine {
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    async fn media_plan_id(&self) -> ID {
        id(self.0.media_plan_id)
    }
    async fn position(&self) -> i64 {
        self.0.position
    }
    async fn channel(&self) -> &str {
        &self.0.channel
    }
    async fn platform(&self) -> &str {
        &self.0.platform
    }
    async fn format(&self) -> &str {
        &self.0.format
    }
    async fn flight_from(&self) -> String {
        self.0.flight_from.to_string()
    }
    async fn flight_to(&self) -> String {
        self.0.flight_to.to_string()
    }
    async fn budget(&self) -> String {
        money(&self.0.budget)
    }
    async fn impressions(&self) -> Option<i64> {
        self.0.impressions
    }
    async fn clicks(&self) -> Option<i64> {
        self.0.clicks
    }
    async fn reach(&self) -> Option<i64> {
        self.0.reach
    }
    async fn cpm(&self) -> Option<String> {
        self.0.cpm.as_ref().map(money)
    }
    async fn ctr(&self) -> Option<String> {
        self.0.ctr.as_ref().map(money)
    }
}

/// A commercial proposal (КП) written from one media plan.
pub(super) struct Proposal(pub ProposalRow);

#[Object]
impl Proposal {
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    async fn deal_id(&self) -> ID {
        id(self.0.deal_id)
    }
    async fn media_plan_id(&self) -> ID {
        id(self.0.media_plan_id)
    }
    async fn body_markdown(&self) -> &str {
        &self.0.body_markdown
    }
    async fn body_html(&self) -> &str {
        &self.0.body_html
    }
    async fn status(&self) -> String {
        wire_name(&self.0.status)
    }
    /// `manual:<user>` or `llm:<model>`.
    async fn generated_by(&self) -> &str {
        &self.0.generated_by
    }
    async fn prompt_template_version(&self) -> Option<&str> {
        self.0.prompt_template_version.as_deref()
    }
    async fn version(&self) -> i64 {
        self.0.version
    }
    async fn created_at(&self) -> String {
        time(&self.0.created_at)
    }
    async fn updated_at(&self) -> String {
        time(&self.0.updated_at)
    }
}

/// The contract signed for a deal.
pub(super) struct Contract(pub ContractRow);

#[Object]
impl Contract {
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    async fn deal_id(&self) -> ID {
        id(self.0.deal_id)
    }
    async fn number(&self) -> &str {
        &self.0.number
    }
    async fn date(&self) -> String {
        self.0.date.to_string()
    }
    async fn amount(&self) -> String {
        money(&self.0.amount)
    }
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    async fn amount_override_reason(&self) -> Option<&str> {
        self.0.amount_override_reason.as_deref()
    }
    async fn status(&self) -> String {
        wire_name(&self.0.status)
    }
    async fn billing_ids(&self) -> Vec<SystemId> {
        system_ids(&self.0.billing_ids)
    }
    async fn payment_status(&self) -> String {
        wire_name(&self.0.payment_status)
    }
    async fn version(&self) -> i64 {
        self.0.version
    }
    async fn created_at(&self) -> String {
        time(&self.0.created_at)
    }
    async fn updated_at(&self) -> String {
        time(&self.0.updated_at)
    }
}

/// A campaign on an ad platform, for one plan line.
pub(super) struct Campaign(pub CampaignRow);

#[Object]
impl Campaign {
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    async fn deal_id(&self) -> ID {
        id(self.0.deal_id)
    }
    async fn media_plan_line_id(&self) -> ID {
        id(self.0.media_plan_line_id)
    }
    async fn platform(&self) -> &str {
        &self.0.platform
    }
    async fn platform_campaign_id(&self) -> Option<&str> {
        self.0.platform_campaign_id.as_deref()
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn status(&self) -> String {
        wire_name(&self.0.status)
    }
    async fn flight_from(&self) -> String {
        self.0.flight_from.to_string()
    }
    async fn flight_to(&self) -> String {
        self.0.flight_to.to_string()
    }
    async fn budget(&self) -> String {
        money(&self.0.budget)
    }
    /// The sum of the days' spend.
    async fn spend(&self) -> String {
        money(&self.0.spend)
    }
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    async fn version(&self) -> i64 {
        self.0.version
    }
    async fn created_at(&self) -> String {
        time(&self.0.created_at)
    }
    async fn updated_at(&self) -> String {
        time(&self.0.updated_at)
    }
    /// In day order.
    async fn stats(&self) -> Vec<DayStats> {
        self.0.stats.iter().cloned().map(DayStats).collect()
    }
}

/// One day of a campaign as its platform reported it last.
pub(super) struct DayStats(pub DayStatsRow);

#[Object]
impl DayStats {
    async fn day(&self) -> String {
        self.0.day.to_string()
    }
    async fn impressions(&self) -> i64 {
        self.0.impressions
    }
    async fn clicks(&self) -> i64 {
        self.0.clicks
    }
    async fn spend(&self) -> String {
        money(&self.0.spend)
    }
    async fn conversions(&self) -> i64 {
        self.0.conversions
    }
    async fn updated_at(&self) -> String {
        time(&self.0.updated_at)
    }
}

/// The approved plan's budget against the campaigns' spend, in the plan's currency.
pub(super) struct DealSummary(pub SummaryRow);

#[Object]
impl DealSummary {
    async fn deal_id(&self) -> ID {
        id(self.0.deal_id)
    }
    /// The approved plan the budget comes from.
    async fn media_plan_id(&self) -> ID {
        id(self.0.media_plan_id)
    }
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    async fn budget(&self) -> String {
        money(&self.0.budget)
    }
    async fn spend(&self) -> String {
        money(&self.0.spend)
    }
    /// In the order channels first appear in the plan.
    async fn channels(&self) -> Vec<ChannelSummary> {
        self.0.channels.iter().cloned().map(ChannelSummary).collect()
    }
}

pub(super) struct ChannelSummary(pub ChannelSummaryRow);

#[Object]
impl ChannelSummary {
    async fn channel(&self) -> &str {
        &self.0.channel
    }
    async fn budget(&self) -> String {
        money(&self.0.budget)
    }
    async fn spend(&self) -> String {
        money(&self.0.spend)
    }
}
