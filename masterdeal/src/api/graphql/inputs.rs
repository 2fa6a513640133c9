//! The mutations' input objects and their conversion to the store's `New*` structs, checked
//! with the domain's rules the way the connector's operations check theirs (INN/KPP,
//! currency, periods, exact money).

use std::collections::BTreeMap;

use async_graphql::{ID, InputObject, Result};
use uuid::Uuid;

use super::error::invalid;
use super::parse;
use crate::domain::{Currency, DealStatus, Inn, Kpis, Kpp};
use crate::store::{NewContract, NewDayStats, NewDeal, NewPlanLine, NewProposal};

/// Stands in for a missing owner: the column is required, the CRM field is not.
const NO_OWNER: &str = "unassigned";

/// An id in another system (CRM, billing).
#[derive(InputObject)]
pub(super) struct SystemIdInput {
    pub system: String,
    pub id: String,
}

fn system_ids(ids: Vec<SystemIdInput>) -> BTreeMap<String, String> {
    ids.into_iter().map(|i| (i.system, i.id)).collect()
}

#[derive(InputObject)]
pub(super) struct AdvertiserInput {
    pub name: String,
    /// 10 digits (organisation) or 12 (individual entrepreneur), checksummed.
    pub inn: String,
    pub kpp: Option<String>,
}

/// A master deal, as REST's `DealInput`: upserted by the CRM id of `externalId`.
#[derive(InputObject)]
pub(super) struct DealInput {
    /// `<system>:<id>`, e.g. `crm:D-100245`: the id is the deal's CRM id, the upsert's key.
    pub external_id: String,
    pub name: String,
    pub advertiser: AdvertiserInput,
    pub owner: Option<String>,
    /// An exact decimal string.
    pub budget: String,
    /// ISO 4217.
    pub currency: String,
    /// A deal status (`draft`, `planning`, …).
    pub status: String,
    /// `YYYY-MM-DD`; today when absent, like REST.
    pub period_from: Option<String>,
    pub period_to: Option<String>,
}

impl DealInput {
    pub(super) fn into_new(self) -> Result<NewDeal> {
        let (system, crm_id) = self
            .external_id
            .split_once(':')
            .filter(|(s, id)| !s.is_empty() && !id.is_empty())
            .ok_or_else(|| invalid(format!("externalId `{}` is not `<system>:<id>`", self.external_id)))?;
        let currency = parse::currency(&self.currency)?;
        let inn = Inn::parse(&self.advertiser.inn).map_err(invalid)?;
        let kpp = self.advertiser.kpp.as_deref().map(Kpp::parse).transpose().map_err(invalid)?;
        let status: DealStatus = parse::status("status", &self.status)?;
        let today = chrono::Utc::now().date_naive().to_string();
        let from = self.period_from.as_deref().unwrap_or(&today);
        let to = self.period_to.as_deref().unwrap_or(&today);
        let period = parse::period("period", from, to)?;
        Ok(NewDeal {
            crm_id: crm_id.to_owned(),
            external_ids: BTreeMap::from([(system.to_owned(), crm_id.to_owned())]),
            advertiser_name: self.advertiser.name,
            advertiser_inn: inn.as_str().to_owned(),
            advertiser_kpp: kpp.map(|k| k.as_str().to_owned()),
            owner: self.owner.unwrap_or_else(|| NO_OWNER.to_owned()),
            title: self.name,
            budget: parse::decimal("budget", &self.budget)?,
            currency: currency.code().to_owned(),
            period_from: period.from(),
            period_to: period.to(),
            status: Some(status),
        })
    }
}

#[derive(InputObject)]
pub(super) struct MediaPlanInput {
    /// `manual` (the default) or `llm`, which needs `promptTemplateVersion`.
    #[graphql(default_with = "String::from(\"manual\")")]
    pub source: String,
    pub prompt_template_version: Option<String>,
    pub model: Option<String>,
    /// The lines' currency; the deal's when absent.
    pub currency: Option<String>,
    pub lines: Vec<PlanLineInput>,
}

#[derive(InputObject)]
pub(super) struct PlanLineInput {
    pub channel: String,
    pub platform: String,
    pub format: String,
    pub flight_from: String,
    pub flight_to: String,
    pub budget: String,
    pub impressions: Option<u64>,
    pub clicks: Option<u64>,
    pub reach: Option<u64>,
    pub cpm: Option<String>,
    pub ctr: Option<String>,
}

impl PlanLineInput {
    pub(super) fn into_new(self, currency: Currency) -> Result<NewPlanLine> {
        Ok(NewPlanLine {
            flight: parse::period("flight", &self.flight_from, &self.flight_to)?,
            budget: parse::money("budget", &self.budget, currency)?,
            kpis: Kpis {
                impressions: self.impressions,
                clicks: self.clicks,
                reach: self.reach,
                cpm: parse::decimal_opt("cpm", self.cpm.as_deref())?,
                ctr: parse::decimal_opt("ctr", self.ctr.as_deref())?,
            },
            channel: self.channel,
            platform: self.platform,
            format: self.format,
        })
    }
}

#[derive(InputObject)]
pub(super) struct ProposalInput {
    pub body_markdown: String,
    /// Sanitised; rendered from the Markdown when absent.
    pub body_html: Option<String>,
    /// `manual:<user>` or `llm:<model>`.
    pub generated_by: String,
    pub prompt_template_version: Option<String>,
}

impl ProposalInput {
    pub(super) fn into_new(self, media_plan_id: Uuid) -> NewProposal {
        NewProposal {
            media_plan_id,
            body_markdown: self.body_markdown,
            body_html: self.body_html,
            generated_by: self.generated_by,
            prompt_template_version: self.prompt_template_version,
        }
    }
}

/// A contract, upserted by its number.
#[derive(InputObject)]
pub(super) struct ContractInput {
    pub number: String,
    pub date: String,
    pub amount: String,
    pub currency: String,
    /// Required when the amount differs from the approved plan's total.
    pub amount_override_reason: Option<String>,
    #[graphql(default)]
    pub billing_ids: Vec<SystemIdInput>,
    /// `unpaid` (the default), `partially_paid`, `paid` or `overdue`.
    #[graphql(default_with = "String::from(\"unpaid\")")]
    pub payment_status: String,
}

impl ContractInput {
    pub(super) fn into_new(self, deal_id: Uuid) -> Result<NewContract> {
        let currency = parse::currency(&self.currency)?;
        Ok(NewContract {
            deal_id,
            date: parse::date("date", &self.date)?,
            amount: parse::money("amount", &self.amount, currency)?,
            payment_status: parse::status("paymentStatus", &self.payment_status)?,
            number: self.number,
            amount_override_reason: self.amount_override_reason,
            billing_ids: system_ids(self.billing_ids),
        })
    }
}

/// A campaign; with `platformCampaignId` it is upserted by (platform, that id).
#[derive(InputObject)]
pub(super) struct CampaignInput {
    pub media_plan_line_id: ID,
    pub platform: String,
    pub platform_campaign_id: Option<String>,
    pub name: String,
    /// `draft` (the default), `active`, `paused`, `completed` or `cancelled`.
    #[graphql(default_with = "String::from(\"draft\")")]
    pub status: String,
    pub flight_from: String,
    pub flight_to: String,
    pub budget: String,
    /// The budget's currency; the plan's when absent.
    pub currency: Option<String>,
}

/// One day of a campaign as its platform reports it.
#[derive(InputObject)]
pub(super) struct DayStatsInput {
    pub day: String,
    #[graphql(default)]
    pub impressions: u64,
    #[graphql(default)]
    pub clicks: u64,
    pub spend: String,
    #[graphql(default)]
    pub conversions: u64,
}

impl DayStatsInput {
    pub(super) fn into_new(self, currency: Currency) -> Result<NewDayStats> {
        Ok(NewDayStats {
            day: parse::date("day", &self.day)?,
            impressions: self.impressions,
            clicks: self.clicks,
            spend: parse::money("spend", &self.spend, currency)?,
            conversions: self.conversions,
        })
    }
}
