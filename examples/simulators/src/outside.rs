//! Every outside system of the root project at once, each simulated on a free port, with the
//! environment the root project's `junction.yaml` reads to reach them: for the tests and the
//! benchmarks that run the root project against its simulators.

use crate::amocrm::{self, Amocrm};
use crate::clickhouse::ClickHouse;
use crate::direct::Direct;
use crate::onec::OneC;
use crate::openai::OpenAi;
use crate::vk::VkAds;

/// The CRM, billing, the ad platforms, the DWH and the LLM.
pub struct Outside {
    pub crm: Amocrm,
    pub billing: OneC,
    pub direct: Direct,
    pub vk: VkAds,
    pub dwh: ClickHouse,
    pub llm: OpenAi,
    /// What the credentials are made of.
    name: String,
}

impl Outside {
    /// Starts them on 127.0.0.1, each on a port of its own, with credentials made of `name`
    /// (`amo-<name>`, `sk-<name>`, …).
    pub async fn start(name: &str) -> std::io::Result<Outside> {
        let options = amocrm::Options { long_lived_token: Some(format!("amo-{name}")), ..amocrm::Options::default() };
        Ok(Outside {
            crm: Amocrm::start("127.0.0.1:0", options).await?,
            billing: OneC::start("127.0.0.1:0", "junction", &format!("{name}-1c")).await?,
            direct: Direct::start("127.0.0.1:0", &format!("direct-{name}")).await?,
            vk: VkAds::start("127.0.0.1:0", &format!("vk-{name}"), &format!("vk-{name}-secret")).await?,
            dwh: ClickHouse::start("127.0.0.1:0", "default", "").await?,
            llm: OpenAi::start("127.0.0.1:0", &format!("sk-{name}")).await?,
            name: name.to_owned(),
        })
    }

    /// What the root project's `junction.yaml` reads to reach them.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let name = &self.name;
        vec![
            ("AMOCRM_URL", self.crm.url.clone()),
            ("AMOCRM_TOKEN", format!("amo-{name}")),
            ("ONEC_URL", self.billing.url.clone()),
            ("ONEC_USER", "junction".into()),
            ("ONEC_PASSWORD", format!("{name}-1c")),
            ("DIRECT_URL", self.direct.url.clone()),
            ("DIRECT_TOKEN", format!("direct-{name}")),
            ("VK_URL", self.vk.url.clone()),
            ("VK_CLIENT_ID", format!("vk-{name}")),
            ("VK_CLIENT_SECRET", format!("vk-{name}-secret")),
            ("DWH_URL", self.dwh.url.clone()),
            ("LLM_URL", self.llm.url.clone()),
            ("LLM_API_KEY", format!("sk-{name}")),
        ]
    }
}
