//! `junction-simulators amocrm --listen 127.0.0.1:8081`: serves a simulator until Ctrl-C, for
//! the offline demo and for trying a route by hand.

use clap::{Parser, Subcommand};
use junction_simulators::amocrm::{Amocrm, Options};

#[derive(Parser)]
#[command(about = "Simulators of the outside systems Junction's adapters speak to")]
struct Cli {
    #[command(subcommand)]
    system: System,
}

#[derive(Subcommand)]
enum System {
    /// amoCRM API v4 (OAuth2 with rotated refresh tokens, leads, notes, tasks).
    Amocrm {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: String,
        /// Leads to start with.
        #[arg(long, default_value_t = 3)]
        leads: u64,
        /// The refresh token the connector is configured with.
        #[arg(long, default_value = "sim-refresh-0")]
        refresh_token: String,
    },
    /// Yandex Direct API v5 (campaigns, points per client, reports built offline).
    Direct {
        #[arg(long, default_value = "127.0.0.1:8083")]
        listen: String,
        /// The OAuth token the connector is configured with.
        #[arg(long, default_value = "sim-direct-token")]
        token: String,
    },
    /// ClickHouse's HTTP interface (MergeTree tables, inserts deduplicated by token).
    Clickhouse {
        #[arg(long, default_value = "127.0.0.1:8123")]
        listen: String,
        #[arg(long, default_value = "default")]
        user: String,
        #[arg(long, default_value = "")]
        password: String,
    },
    /// VK Ads (tokens limited to five per client, ad plans, daily statistics).
    Vk {
        #[arg(long, default_value = "127.0.0.1:8084")]
        listen: String,
        #[arg(long, default_value = "sim-vk-client")]
        client_id: String,
        #[arg(long, default_value = "sim-vk-secret")]
        client_secret: String,
    },
    /// An OpenAI-compatible chat completions API (answers a plausible media plan for the prompt's budget until told otherwise).
    Openai {
        #[arg(long, default_value = "127.0.0.1:8085")]
        listen: String,
        #[arg(long, default_value = "sim-openai-key")]
        key: String,
    },
    /// 1C:Enterprise's OData v3 interface (invoices, payments; HTTP Basic).
    Onec {
        #[arg(long, default_value = "127.0.0.1:8082")]
        listen: String,
        #[arg(long, default_value = "junction")]
        user: String,
        #[arg(long, default_value = "junction")]
        password: String,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    match Cli::parse().system {
        System::Amocrm { listen, leads, refresh_token } => {
            let sim = Amocrm::start(&listen, Options { refresh_token, ..Options::default() }).await?;
            for n in 0..leads {
                sim.add_lead(serde_json::json!({ "name": format!("Demo deal {n}"), "price": 100_000 * (n + 1) }));
            }
            eprintln!("amoCRM simulator on {} (control API under /_sim/)", sim.url);
        }
        System::Direct { listen, token } => {
            let sim = junction_simulators::direct::Direct::start(&listen, &token).await?;
            let today = chrono::Utc::now().date_naive();
            for back in 0..7 {
                let day = (today - chrono::Duration::days(back)).to_string();
                sim.set_stats(701, &day, 1000 + back, 20 + back, 1_500_000_000);
            }
            eprintln!("Yandex Direct simulator on {}", sim.url);
        }
        System::Clickhouse { listen, user, password } => {
            let sim = junction_simulators::clickhouse::ClickHouse::start(&listen, &user, &password).await?;
            eprintln!("ClickHouse simulator on {}", sim.url);
        }
        System::Vk { listen, client_id, client_secret } => {
            let sim = junction_simulators::vk::VkAds::start(&listen, &client_id, &client_secret).await?;
            let plan = sim.add_plan("Demo campaign", "active");
            let today = chrono::Utc::now().date_naive();
            for back in 0..7 {
                let day = (today - chrono::Duration::days(back)).to_string();
                sim.set_stats(plan, &day, 1000 + back, 20 + back, "1500.00");
            }
            eprintln!("VK Ads simulator on {}", sim.url);
        }
        System::Openai { listen, key } => {
            let sim = junction_simulators::openai::OpenAi::start(&listen, &key).await?;
            eprintln!("OpenAI-compatible simulator on {}", sim.url);
        }
        System::Onec { listen, user, password } => {
            let sim = junction_simulators::onec::OneC::start(&listen, &user, &password).await?;
            eprintln!("1C OData simulator at {}", sim.url);
        }
    }
    tokio::signal::ctrl_c().await
}
