//! Stored rows as the domain's aggregates, so the domain's rules check what is stored. A
//! row the domain refuses was written around the rules: it is reported as corrupt.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::{CampaignRow, DealRow, MasterDealStoreError, PlanRow};
use crate::domain::{
    Advertiser, Campaign, Currency, Inn, Kpis, Kpp, MasterDeal, MediaPlan, Money, Period, PlanLine, PlanSource,
};

pub(super) fn currency(what: &'static str, id: &str, code: &str) -> Result<Currency, MasterDealStoreError> {
    Currency::parse(code).map_err(|e| MasterDealStoreError::corrupt(what, id, e))
}

pub(super) fn deal(row: &DealRow) -> Result<MasterDeal, MasterDealStoreError> {
    let id = row.id.to_string();
    let corrupt = |reason: String| MasterDealStoreError::corrupt("master deal", &id, reason);
    let currency = currency("master deal", &id, &row.currency)?;
    Ok(MasterDeal {
        id: row.id,
        external_ids: row.external_ids.clone(),
        advertiser: Advertiser {
            name: row.advertiser_name.clone(),
            inn: Inn::parse(&row.advertiser_inn).map_err(|e| corrupt(e.to_string()))?,
            kpp: row.advertiser_kpp.as_deref().map(Kpp::parse).transpose().map_err(|e| corrupt(e.to_string()))?,
        },
        owner: row.owner.clone(),
        title: row.title.clone(),
        budget: Money::new(row.budget, currency),
        period: Period::new(row.period_from, row.period_to).map_err(|e| corrupt(e.to_string()))?,
        status: row.status,
        version: row.version,
    })
}

pub(super) fn plan(row: &PlanRow) -> Result<MediaPlan, MasterDealStoreError> {
    let id = row.id.to_string();
    let corrupt = |reason: String| MasterDealStoreError::corrupt("media plan", &id, reason);
    let currency = currency("media plan", &id, &row.currency)?;
    let count = |n: Option<i64>| n.map(|n| u64::try_from(n).map_err(|e| corrupt(format!("KPI {n}: {e}")))).transpose();
    let lines = row
        .lines
        .iter()
        .map(|line| {
            Ok(PlanLine {
                id: line.id,
                channel: line.channel.clone(),
                platform: line.platform.clone(),
                format: line.format.clone(),
                flight: Period::new(line.flight_from, line.flight_to).map_err(|e| corrupt(e.to_string()))?,
                budget: Money::new(line.budget, currency),
                kpis: Kpis {
                    impressions: count(line.impressions)?,
                    clicks: count(line.clicks)?,
                    reach: count(line.reach)?,
                    cpm: line.cpm,
                    ctr: line.ctr,
                },
            })
        })
        .collect::<Result<_, MasterDealStoreError>>()?;
    let source = match row.source.as_str() {
        "llm" => PlanSource::Llm { prompt_template_version: row.prompt_template_version.clone().unwrap_or_default() },
        _ => PlanSource::Manual,
    };
    Ok(MediaPlan {
        id: row.id,
        deal_id: row.deal_id,
        version: i32::try_from(row.number).map_err(|e| corrupt(format!("number {}: {e}", row.number)))?,
        lines,
        status: row.status,
        source,
    })
}

pub(super) fn campaign(row: &CampaignRow) -> Result<Campaign, MasterDealStoreError> {
    let id = row.id.to_string();
    let currency = currency("campaign", &id, &row.currency)?;
    let money = |amount: Decimal| Money::new(amount, currency);
    Ok(Campaign {
        id: row.id,
        deal_id: row.deal_id,
        plan_line_id: row.media_plan_line_id,
        platform: row.platform.clone(),
        platform_campaign_id: row.platform_campaign_id.clone(),
        status: row.status,
        flight: Period::new(row.flight_from, row.flight_to)
            .map_err(|e| MasterDealStoreError::corrupt("campaign", &id, e))?,
        budget: money(row.budget),
        spend: money(row.spend),
    })
}

/// A billing ids map as stored.
pub(super) fn ids_json(ids: &BTreeMap<String, String>) -> String {
    serde_json::to_string(ids).expect("a map of strings always serializes to JSON")
}
