//! The simulators as the offline demo serves them: each on its usual address, with the
//! credentials the root project's `junction.yaml` uses, seeded with a little data (CRM leads,
//! a week of ad statistics). One struct per system is both the `junction-simulators`
//! subcommand's arguments and an entry of a project's `simulators.yaml`, which `junction run`
//! serves:
//!
//! ```yaml
//! openai: { listen: 127.0.0.1:8085, key: sim-openai-key }
//! amocrm: {}                       # every field has the subcommand's default
//! ```

use chrono::Datelike;
use serde::Deserialize;

use crate::amocrm::{Amocrm, Options};

/// The simulators a project wants served, each with its settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Demo {
    pub amocrm: Option<AmocrmDemo>,
    pub onec: Option<OnecDemo>,
    pub direct: Option<DirectDemo>,
    pub vk: Option<VkDemo>,
    pub clickhouse: Option<ClickhouseDemo>,
    pub openai: Option<OpenaiDemo>,
}

impl Demo {
    /// Starts each listed simulator: its name, and the line saying where it serves or why not
    /// (an address already taken is `AddrInUse`: whatever holds it is left alone).
    pub async fn start(&self) -> Vec<(&'static str, std::io::Result<String>)> {
        let mut started = Vec::new();
        if let Some(s) = &self.amocrm {
            started.push(("amoCRM", s.start().await));
        }
        if let Some(s) = &self.onec {
            started.push(("1C OData", s.start().await));
        }
        if let Some(s) = &self.direct {
            started.push(("Yandex Direct", s.start().await));
        }
        if let Some(s) = &self.vk {
            started.push(("VK Ads", s.start().await));
        }
        if let Some(s) = &self.clickhouse {
            started.push(("ClickHouse", s.start().await));
        }
        if let Some(s) = &self.openai {
            started.push(("LLM (OpenAI-compatible)", s.start().await));
        }
        started
    }
}

/// amoCRM API v4 (OAuth2 with rotated refresh tokens, leads, notes, tasks).
#[derive(Debug, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct AmocrmDemo {
    #[arg(long, default_value_t = AmocrmDemo::default().listen)]
    pub listen: String,
    /// Leads to start with.
    #[arg(long, default_value_t = AmocrmDemo::default().leads)]
    pub leads: u64,
    /// The refresh token the connector is configured with.
    #[arg(long, default_value_t = AmocrmDemo::default().refresh_token)]
    pub refresh_token: String,
    /// A long-lived token also accepted (what the root project's `crm` connector uses).
    #[arg(long, default_value_t = AmocrmDemo::default().long_lived_token)]
    pub long_lived_token: String,
}

impl Default for AmocrmDemo {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8081".into(),
            leads: 3,
            refresh_token: "sim-refresh-0".into(),
            long_lived_token: "sim-amocrm-token".into(),
        }
    }
}

impl AmocrmDemo {
    pub async fn start(&self) -> std::io::Result<String> {
        let options = Options {
            refresh_token: self.refresh_token.clone(),
            long_lived_token: Some(self.long_lived_token.clone()),
            ..Options::default()
        };
        let sim = Amocrm::start(&self.listen, options).await?;
        // Won deals of the agency's pipeline, ids 1001, 1002…, their campaigns next month.
        let today = chrono::Utc::now().date_naive();
        let from = today.checked_add_months(chrono::Months::new(1)).unwrap_or(today).with_day(1).unwrap_or(today);
        let to = from.checked_add_months(chrono::Months::new(1)).and_then(|d| d.pred_opt()).unwrap_or(from);
        let advertisers =
            [("ООО «Ромашка»", "7707083893"), ("АО «Лютик»", "7736050003"), ("ООО «Василёк»", "7702070139")];
        for n in 0..self.leads {
            let (advertiser, inn) = advertisers[n as usize % advertisers.len()];
            let name = format!("Весенняя кампания {advertiser}");
            sim.add_lead(crate::amocrm::deal_lead(&name, 1_500_000 * (n + 1), advertiser, inn, (from, to)));
        }
        Ok(format!("{} (control API under /_sim/)", sim.url))
    }
}

/// 1C:Enterprise's OData v3 interface (invoices, payments; HTTP Basic).
#[derive(Debug, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct OnecDemo {
    #[arg(long, default_value_t = OnecDemo::default().listen)]
    pub listen: String,
    #[arg(long, default_value_t = OnecDemo::default().user)]
    pub user: String,
    #[arg(long, default_value_t = OnecDemo::default().password)]
    pub password: String,
}

impl Default for OnecDemo {
    fn default() -> Self {
        Self { listen: "127.0.0.1:8082".into(), user: "junction".into(), password: "junction".into() }
    }
}

impl OnecDemo {
    pub async fn start(&self) -> std::io::Result<String> {
        Ok(crate::onec::OneC::start(&self.listen, &self.user, &self.password).await?.url)
    }
}

/// Yandex Direct API v5 (campaigns, points per client, reports built offline).
#[derive(Debug, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct DirectDemo {
    #[arg(long, default_value_t = DirectDemo::default().listen)]
    pub listen: String,
    /// The OAuth token the connector is configured with.
    #[arg(long, default_value_t = DirectDemo::default().token)]
    pub token: String,
}

impl Default for DirectDemo {
    fn default() -> Self {
        Self { listen: "127.0.0.1:8083".into(), token: "sim-direct-token".into() }
    }
}

impl DirectDemo {
    pub async fn start(&self) -> std::io::Result<String> {
        let sim = crate::direct::Direct::start(&self.listen, &self.token).await?;
        for (back, day) in last_week() {
            sim.set_stats(701, &day, 1000 + back, 20 + back, 1_500_000_000);
        }
        Ok(sim.url)
    }
}

/// VK Ads (tokens limited to five per client, ad plans, daily statistics).
#[derive(Debug, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct VkDemo {
    #[arg(long, default_value_t = VkDemo::default().listen)]
    pub listen: String,
    #[arg(long, default_value_t = VkDemo::default().client_id)]
    pub client_id: String,
    #[arg(long, default_value_t = VkDemo::default().client_secret)]
    pub client_secret: String,
}

impl Default for VkDemo {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8084".into(),
            client_id: "sim-vk-client".into(),
            client_secret: "sim-vk-secret".into(),
        }
    }
}

impl VkDemo {
    pub async fn start(&self) -> std::io::Result<String> {
        let sim = crate::vk::VkAds::start(&self.listen, &self.client_id, &self.client_secret).await?;
        let plan = sim.add_plan("Demo campaign", "active");
        for (back, day) in last_week() {
            sim.set_stats(plan, &day, 1000 + back, 20 + back, "1500.00");
        }
        Ok(sim.url)
    }
}

/// ClickHouse's HTTP interface (MergeTree tables, inserts deduplicated by token).
#[derive(Debug, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct ClickhouseDemo {
    #[arg(long, default_value_t = ClickhouseDemo::default().listen)]
    pub listen: String,
    #[arg(long, default_value_t = ClickhouseDemo::default().user)]
    pub user: String,
    #[arg(long, default_value_t = ClickhouseDemo::default().password)]
    pub password: String,
}

impl Default for ClickhouseDemo {
    fn default() -> Self {
        Self { listen: "127.0.0.1:8123".into(), user: "default".into(), password: String::new() }
    }
}

impl ClickhouseDemo {
    pub async fn start(&self) -> std::io::Result<String> {
        Ok(crate::clickhouse::ClickHouse::start(&self.listen, &self.user, &self.password).await?.url)
    }
}

/// An OpenAI-compatible chat completions API (also YandexGPT's and GigaChat's): a plausible
/// media plan for the prompt's budget and period, or a КП, until told otherwise.
#[derive(Debug, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct OpenaiDemo {
    #[arg(long, default_value_t = OpenaiDemo::default().listen)]
    pub listen: String,
    #[arg(long, default_value_t = OpenaiDemo::default().key)]
    pub key: String,
}

impl Default for OpenaiDemo {
    fn default() -> Self {
        Self { listen: "127.0.0.1:8085".into(), key: "sim-openai-key".into() }
    }
}

impl OpenaiDemo {
    pub async fn start(&self) -> std::io::Result<String> {
        Ok(crate::openai::OpenAi::start(&self.listen, &self.key).await?.url)
    }
}

/// The last seven days, today first: how many days back, and the date.
fn last_week() -> impl Iterator<Item = (i64, String)> {
    let today = chrono::Utc::now().date_naive();
    (0..7i64).map(move |back| (back, (today - chrono::Duration::days(back)).to_string()))
}
