//! The `junction` command: thin glue over the engine. Each subcommand loads a project
//! directory (default: the current one) and reports problems as `file:line:col: message`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use junction_engine::config::Loader;
use junction_engine::config::error::Diagnostics;
use junction_engine::connector::{Registry, Resources};
use junction_engine::runtime::Runtime;
use junction_engine::script::{ScriptEngine, ScriptLimits};

mod admin;
mod bus;
mod dead_letters;
mod simulators;

use dead_letters::DeadLetterCommand;

// Every message allocates (JSON values, script values); mimalloc handles that churn across
// worker threads much better than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "junction",
    version,
    about = "Junction: routes in YAML, transforms in Rhai, run as an integration engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the project: serve its http routes, consume its topics, fire its schedules.
    Run {
        /// The project directory (holds junction.yaml).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Validate the project; print every error as file:line:col and exit non-zero if any.
    Check {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Run the route tests in route-tests/ with connectors replaced by recorders (an `llm`
    /// connector runs for real over the recordings in route-tests/recordings/).
    Test {
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Make the recordings anew: the `llm` connectors ask their providers (or a simulator).
        #[arg(long)]
        record: bool,
    },
    /// Print the routes, endpoints, topics and connectors as a Mermaid flowchart.
    Graph {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// List the routes: id, source, steps and version.
    Routes {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// List or replay messages that failed and were dead-lettered.
    DeadLetters {
        #[command(subcommand)]
        command: DeadLetterCommand,
    },
    /// List the embedded bus's consumer groups, or forget one no route reads any more.
    Bus {
        #[command(subcommand)]
        command: bus::BusCommand,
    },
    /// Talk to a running Junction's admin API: routes, reload, pause, dead letters, audit.
    Admin(admin::AdminArgs),
    /// Hash a console user's password (read from stdin) for `admin.users[].password_hash`.
    HashPassword,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(cli.command, Command::Run { .. }));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// JSON lines on stdout for `run` (for machines: a log collector takes stdout as it is); terse
/// text on stderr for the other commands (for people, whose output is on stdout).
fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if json { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("JUNCTION_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.with_writer(std::io::stdout).json().flatten_event(true).init();
    } else {
        builder.with_writer(std::io::stderr).compact().without_time().init();
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { dir } => run(&dir).await,
        Command::Check { dir } => Ok(check(&dir)),
        Command::Test { dir, record } => test(&dir, record).await,
        Command::Graph { dir } => Ok(with_project(&dir, |p| print!("{}", junction_engine::graph::mermaid(&p.routes)))),
        Command::Routes { dir } => Ok(with_project(&dir, print_routes)),
        Command::DeadLetters { command } => dead_letters::run(command).await,
        Command::Bus { command } => bus::run(command).await,
        Command::Admin(args) => admin::run(args).await,
        Command::HashPassword => hash_password(),
    }
}

/// Reads one line (the password) from stdin and prints its argon2id hash.
fn hash_password() -> anyhow::Result<ExitCode> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.len() < 8 {
        eprintln!("error: give a password of 8 characters or more on stdin");
        return Ok(ExitCode::FAILURE);
    }
    println!("{}", junction_engine::config::password::hash(password));
    Ok(ExitCode::SUCCESS)
}

/// Every connector kind this binary knows: the connectors crate's and MasterDeal's.
pub(crate) fn registry() -> Registry {
    let mut r = junction_connectors::registry();
    r.register(junction_masterdeal::connector::MasterDealKind);
    r
}

pub(crate) fn loader() -> Loader {
    Loader {
        registry: registry(),
        resources: Resources::default(),
        env: junction_engine::config::process_env(),
        scripts: Arc::new(ScriptEngine::new(&ScriptLimits::default())),
        intercept: None,
    }
}

pub(crate) fn report(diags: &Diagnostics) -> ExitCode {
    eprint!("{diags}");
    let n = diags.len();
    eprintln!("{n} error{} found", if n == 1 { "" } else { "s" });
    ExitCode::FAILURE
}

fn with_project(dir: &Path, f: impl FnOnce(&junction_engine::config::Project)) -> ExitCode {
    match loader().load(dir) {
        Ok(p) => {
            f(&p);
            ExitCode::SUCCESS
        }
        Err(d) => report(&d),
    }
}

fn check(dir: &Path) -> ExitCode {
    with_project(dir, |p| {
        let named = p.connectors.len();
        println!(
            "ok: {} route{}, {named} connectors",
            p.routes.routes.len(),
            if p.routes.routes.len() == 1 { "" } else { "s" }
        );
    })
}

fn print_routes(p: &junction_engine::config::Project) {
    println!("{:<28} {:<40} {:>5}  {:<16}  FILE", "ROUTE", "SOURCE", "STEPS", "VERSION");
    for r in p.routes.iter() {
        println!(
            "{:<28} {:<40} {:>5}  {:<16}  {}",
            r.id,
            r.source_summary(),
            r.pipeline.len(),
            r.version,
            r.file.display()
        );
    }
}

async fn run(dir: &Path) -> anyhow::Result<ExitCode> {
    junction_engine::telemetry::install();
    simulators::start(dir).await?;
    let runtime = match Runtime::start(dir, registry(), junction_engine::config::process_env()).await {
        Ok(r) => r,
        Err(junction_engine::runtime::StartError::Config(d)) => return Ok(report(&d)),
        Err(e) => return Err(e.into()),
    };
    if let Some(admin) = runtime.settings().admin.clone() {
        match junction_engine::admin::start(runtime.clone(), &admin).await {
            Ok(a) => eprintln!("junction: admin API on http://{}", a.addr),
            Err(e) => {
                runtime.shutdown().await;
                anyhow::bail!("cannot listen on {} for the admin API: {e} (set JUNCTION_ADMIN_LISTEN)", admin.listen);
            }
        }
    }
    eprintln!(
        "junction: serving on {}://{} ({} routes); Ctrl-C to stop",
        if runtime.settings().tls.is_some() { "https" } else { "http" },
        runtime.local_addr(),
        runtime.routes().routes.len()
    );
    reload_on_sighup(runtime.clone());
    wait_for_signal().await;
    runtime.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// SIGHUP reloads the project, as a file change or `POST /admin/reload` does.
fn reload_on_sighup(runtime: Runtime) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            let _ = runtime.reload(false).await;
        }
    });
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn test(dir: &Path, record: bool) -> anyhow::Result<ExitCode> {
    let results = match junction_engine::testing::run_all(dir, &registry(), record).await {
        Ok(r) => r,
        Err(d) => return Ok(report(&d)),
    };
    let mut failed = 0;
    for r in &results {
        if r.problems.is_empty() {
            println!("ok     {} :: {}", r.file.display(), r.name);
        } else {
            failed += 1;
            println!("FAILED {} :: {}", r.file.display(), r.name);
            for p in &r.problems {
                for line in p.lines() {
                    println!("       {line}");
                }
            }
        }
    }
    println!("{} passed, {failed} failed", results.len() - failed);
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
