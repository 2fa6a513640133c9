//! `junction-simulators amocrm --listen 127.0.0.1:8081`: serves a simulator until Ctrl-C, for
//! the offline demo and for trying a route by hand. (`junction run` serves those a project's
//! `simulators.yaml` lists, with the same settings: see [`junction_simulators::demo`].)

use clap::{Parser, Subcommand};
use junction_simulators::demo::{AmocrmDemo, ClickhouseDemo, DirectDemo, OnecDemo, OpenaiDemo, VkDemo};

#[derive(Parser)]
#[command(about = "Simulators of the outside systems Junction's adapters speak to")]
struct Cli {
    #[command(subcommand)]
    system: System,
}

#[derive(Subcommand)]
enum System {
    /// amoCRM API v4 (OAuth2 with rotated refresh tokens, leads, notes, tasks).
    Amocrm(AmocrmDemo),
    /// Yandex Direct API v5 (campaigns, points per client, reports built offline).
    Direct(DirectDemo),
    /// ClickHouse's HTTP interface (MergeTree tables, inserts deduplicated by token).
    Clickhouse(ClickhouseDemo),
    /// VK Ads (tokens limited to five per client, ad plans, daily statistics).
    Vk(VkDemo),
    /// An OpenAI-compatible chat completions API (answers a plausible media plan for the prompt's budget until told otherwise).
    Openai(OpenaiDemo),
    /// 1C:Enterprise's OData v3 interface (invoices, payments; HTTP Basic).
    Onec(OnecDemo),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let (name, url) = match Cli::parse().system {
        System::Amocrm(s) => ("amoCRM", s.start().await?),
        System::Direct(s) => ("Yandex Direct", s.start().await?),
        System::Clickhouse(s) => ("ClickHouse", s.start().await?),
        System::Vk(s) => ("VK Ads", s.start().await?),
        System::Openai(s) => ("OpenAI-compatible", s.start().await?),
        System::Onec(s) => ("1C OData", s.start().await?),
    };
    eprintln!("{name} simulator on {url}");
    tokio::signal::ctrl_c().await
}
