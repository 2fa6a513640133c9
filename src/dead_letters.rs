//! `junction dead-letters list|replay`: failed messages, read from the project's store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use junction_engine::config::error::Diagnostics;
use junction_engine::connector::Resources;
use junction_engine::runtime::replay::Replayed;

use crate::{loader, report};

#[derive(Subcommand)]
pub(crate) enum DeadLetterCommand {
    /// List dead letters, newest first.
    List {
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Only this route's.
        #[arg(long)]
        route: Option<String>,
        /// Include dead letters that were already replayed.
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run a dead letter's original message through its route again.
    Replay {
        /// The dead letter's id (from `list`).
        id: String,
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

/// Opens the project's store as `run` would.
async fn open_project(
    dir: &Path,
) -> anyhow::Result<Result<(junction_engine::config::Project, junction_engine::store::Store), Diagnostics>> {
    let mut l = loader();
    let settings = match l.load(dir) {
        Ok(p) => p.settings,
        Err(d) => return Ok(Err(d)),
    };
    let store = junction_engine::store::Store::open(&settings.store).await.context("opening the store")?;
    l.resources = Resources { store: Some(store.clone()), ..Resources::default() };
    Ok(l.load(dir).map(|p| (p, store)))
}

pub(crate) async fn run(command: DeadLetterCommand) -> anyhow::Result<ExitCode> {
    match command {
        DeadLetterCommand::List { dir, route, all, limit, json } => {
            let (_, store) = match open_project(&dir).await? {
                Ok(p) => p,
                Err(d) => return Ok(report(&d)),
            };
            let filter = junction_engine::store::DeadLetterFilter {
                route,
                include_replayed: all,
                limit: Some(limit),
                ..Default::default()
            };
            let list = store.list_dead_letters(&filter).await?;
            for dl in &list {
                if json {
                    println!("{}", serde_json::to_string(dl)?);
                } else {
                    let replayed = if dl.replayed_at.is_some() { " (replayed)" } else { "" };
                    println!(
                        "{}  {}  {}  {} attempt(s)  {}{replayed}",
                        dl.id,
                        dl.created_at.to_rfc3339(),
                        dl.route,
                        dl.attempts,
                        dl.error
                    );
                }
            }
            eprintln!("{} dead letter{}", list.len(), if list.len() == 1 { "" } else { "s" });
            Ok(ExitCode::SUCCESS)
        }
        DeadLetterCommand::Replay { id, dir } => {
            let (project, store) = match open_project(&dir).await? {
                Ok(p) => p,
                Err(d) => return Ok(report(&d)),
            };
            // The route's connectors (the bus among them) run for the replay, as in `run`.
            let Some(bus) = project.connectors.get("bus").and_then(|c| c.bus()) else {
                anyhow::bail!("the project has no bus");
            };
            let cache = junction_engine::cache::Cache::open("memory").await?;
            let cx = junction_engine::connector::StartCx { store: store.clone(), cache, bus };
            let started = junction_engine::runtime::connectors::start_for_one_off(&project, &cx).await?;
            let replayed = junction_engine::runtime::replay::replay(&project.routes, &store, &id).await;
            junction_engine::runtime::connectors::stop_all(started).await;
            match replayed? {
                Replayed::Done => {
                    println!("replayed {id}: done");
                    Ok(ExitCode::SUCCESS)
                }
                Replayed::FailedAgain { failure, dead_letter_id } => {
                    println!(
                        "replayed {id}: failed again at {}: {} (new dead letter {dead_letter_id})",
                        failure.step, failure.error.message
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
