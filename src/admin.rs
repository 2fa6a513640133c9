//! `junction admin …`: the admin API from the command line, call for call.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::Value;

#[derive(Args)]
pub(crate) struct AdminArgs {
    /// The admin API's address.
    #[arg(long, env = "JUNCTION_ADMIN_URL", default_value = "http://127.0.0.1:9090")]
    url: String,
    /// The admin token.
    #[arg(long, env = "JUNCTION_ADMIN_TOKEN", hide_env_values = true)]
    token: String,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// List the running routes with their version, state and counters.
    Routes,
    /// One route in detail.
    Route { id: String },
    /// Reload the project from disk (or, with --dry-run, show what would change).
    Reload {
        #[arg(long)]
        dry_run: bool,
    },
    /// Stop a route taking new messages (its endpoint answers 503).
    Pause { id: String },
    /// Let a paused route take messages again.
    Resume { id: String },
    /// Dead letters, newest first.
    DeadLetters {
        #[arg(long)]
        route: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Replay a dead letter through its route.
    Replay { id: String },
    /// The audit log, newest first.
    Audit {
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        action: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

pub(crate) async fn run(args: AdminArgs) -> anyhow::Result<ExitCode> {
    let (method, path) = match &args.command {
        AdminCommand::Routes => ("GET", "/admin/routes".to_owned()),
        AdminCommand::Route { id } => ("GET", format!("/admin/routes/{id}")),
        AdminCommand::Reload { dry_run } => ("POST", format!("/admin/reload?dry_run={dry_run}")),
        AdminCommand::Pause { id } => ("POST", format!("/admin/routes/{id}/pause")),
        AdminCommand::Resume { id } => ("POST", format!("/admin/routes/{id}/resume")),
        AdminCommand::DeadLetters { route, limit } => {
            let route = route.as_ref().map(|r| format!("&route={r}")).unwrap_or_default();
            ("GET", format!("/admin/dead-letters?limit={limit}{route}"))
        }
        AdminCommand::Replay { id } => ("POST", format!("/admin/dead-letters/{id}/replay")),
        AdminCommand::Audit { actor, action, limit } => {
            let mut q = format!("limit={limit}");
            if let Some(a) = actor {
                q.push_str(&format!("&actor={a}"));
            }
            if let Some(a) = action {
                q.push_str(&format!("&action={a}"));
            }
            ("GET", format!("/admin/audit?{q}"))
        }
    };
    let url = format!("{}{path}", args.url.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let req = if method == "GET" { client.get(&url) } else { client.post(&url) };
    let resp = req
        .bearer_auth(&args.token)
        .send()
        .await
        .with_context(|| format!("cannot reach the admin API at {}", args.url))?;
    let ok = resp.status().is_success();
    let body: Value = resp.json().await.context("the admin API answered something other than JSON")?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
