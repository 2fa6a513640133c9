//! `junction bus groups|forget-group`: the embedded bus's consumer groups, read from the
//! project's store.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use junction_engine::bus::EmbeddedBus;

use crate::{loader, report};

#[derive(Subcommand)]
pub(crate) enum BusCommand {
    /// List every consumer group on every topic: its committed offset, what it has left to
    /// process, and whether a route of the project reads it.
    Groups {
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Forget a consumer group no route reads any more, so its topic's retention and backlog
    /// bound stop waiting for it. Stop a running Junction that reads it first.
    ForgetGroup {
        topic: String,
        group: String,
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

pub(crate) async fn run(command: BusCommand) -> anyhow::Result<ExitCode> {
    let dir = match &command {
        BusCommand::Groups { dir, .. } | BusCommand::ForgetGroup { dir, .. } => dir.clone(),
    };
    let project = match loader().load(&dir) {
        Ok(p) => p,
        Err(d) => return Ok(report(&d)),
    };
    if !project.settings.embedded_bus() {
        anyhow::bail!(
            "the project's bus is `{}`: consumer groups are the embedded bus's; use the backend's own tools",
            project.settings.bus
        );
    }
    let store = junction_engine::store::Store::open(&project.settings.store).await.context("opening the store")?;
    let bus = EmbeddedBus::new(store);
    match command {
        BusCommand::Groups { json, .. } => {
            let read: HashSet<(String, String)> =
                project.routes.iter().flat_map(|r| junction_engine::sources::consumes(r)).collect();
            let groups = bus.groups().await?;
            for g in &groups {
                let reader = read.contains(&(g.topic.clone(), g.group.clone()));
                if json {
                    let mut line = serde_json::to_value(g)?;
                    line["read_by_a_route"] = reader.into();
                    println!("{line}");
                } else {
                    let note = if reader { "" } else { "  (no route reads it)" };
                    println!("{}  {}  committed {}  {} to process{note}", g.topic, g.group, g.committed, g.backlog);
                }
            }
            eprintln!("{} consumer group{}", groups.len(), if groups.len() == 1 { "" } else { "s" });
            Ok(ExitCode::SUCCESS)
        }
        BusCommand::ForgetGroup { topic, group, .. } => {
            if bus.forget_group(&group, &topic).await? {
                println!("forgot consumer group {group} on {topic}");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("no consumer group {group} on {topic}; `junction bus groups` lists them");
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
