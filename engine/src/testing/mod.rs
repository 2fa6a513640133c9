//! Route tests (`junction test`): each case sends a message into a route whose connectors are
//! replaced by recorders, then compares what came out, what was sent and what failed with
//! what the test expects, and shows a readable diff when they differ.
//!
//! Test files live in the project's `route-tests/` folder:
//!
//! ```yaml
//! route: crm-deal-won
//! connectors:                      # canned replies, by connector and `op` (or `default`)
//!   crm: { default: { fail: "connection refused", retryable: true, times: 1 } }
//! cases:
//!   - name: a won deal becomes a signed master deal
//!     input: { body: { id: "D-1", stage: won } }
//!     expect:
//!       output: [ { external_id: "crm:D-1", status: signed } ]
//!       sent: [ { connector: bus, topic: masterdeal.deal.upserted } ]
//! ```

mod diff;
mod dry_run;
pub mod recorder;

pub use dry_run::{DryFailure, DryRun, DryRunError, dry_run};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::error::{Diagnostic, Diagnostics};
use crate::config::{Loader, parse_yaml};
use crate::connector::{Connector, Registry, Replay, Resources};
use crate::message::{Body, Message};
use crate::route::pipeline::{RetryPolicy, RunCx};
use crate::script::{ScriptEngine, ScriptLimits};
use recorder::{Journal, Recorder, Reply};

/// A route test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// The id of the route under test.
    pub route: String,
    /// Canned replies: connector name → operation (or `default`) → reply.
    #[serde(default)]
    pub connectors: HashMap<String, HashMap<String, Reply>>,
    pub cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub input: Input,
    #[serde(default)]
    pub expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    #[serde(default)]
    pub body: Value,
    #[serde(default)]
    pub headers: Map<String, Value>,
}

/// What a case expects; an absent field is not checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The bodies that come out of the route's last step, in order.
    #[serde(default)]
    pub output: Option<Vec<Value>>,
    /// The calls connectors received, in order; each listed key must match.
    #[serde(default)]
    pub sent: Option<Vec<Map<String, Value>>>,
    /// The route fails: at this step (e.g. `2:request`), with a message containing `contains`.
    #[serde(default)]
    pub error: Option<ExpectError>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectError {
    #[serde(default)]
    pub step: Option<String>,
    #[serde(default)]
    pub contains: Option<String>,
}

/// The outcome of one case.
pub struct CaseResult {
    pub file: PathBuf,
    pub name: String,
    /// Empty when the case passed; otherwise what differed, ready to print.
    pub problems: Vec<String>,
}

/// Runs every test file in `dir/route-tests/`. Connectors that can replay (the `llm` kind) run
/// for real over the recordings in `dir/route-tests/recordings/`; `record` makes them anew.
pub async fn run_all(dir: &Path, registry: &Registry, record: bool) -> Result<Vec<CaseResult>, Diagnostics> {
    let folder = dir.join("route-tests");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&folder) {
        Ok(d) => d
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .collect(),
        Err(e) => return Err(Diagnostic::new(&folder, None, format!("cannot read route tests: {e}")).into()),
    };
    files.sort();
    let scripts = Arc::new(ScriptEngine::new(&ScriptLimits::default()));
    let mut results = Vec::new();
    for file in files {
        let shown = file.strip_prefix(dir).unwrap_or(&file).to_path_buf();
        let text = std::fs::read_to_string(&file).map_err(|e| Diagnostic::new(&shown, None, e.to_string()))?;
        let test: TestFile = parse_yaml(&shown, &text)?;
        let scratch = Scratch::open(&shown).await?;
        let replay = Replay { dir: folder.join("recordings"), record, store: scratch.store.clone() };
        results.extend(run_file(dir, &shown, test, registry, &scripts, &replay).await?);
    }
    Ok(results)
}

/// A test file's own SQLite store in the temporary directory, deleted with it.
struct Scratch {
    store: crate::store::Store,
    path: PathBuf,
}

impl Scratch {
    async fn open(shown: &Path) -> Result<Scratch, Diagnostics> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("junction-test-{}-{n}.db", std::process::id()));
        let store = crate::store::Store::open(&format!("sqlite://{}", path.display()))
            .await
            .map_err(|e| Diagnostic::new(shown, None, format!("cannot open the test's scratch store: {e}")))?;
        Ok(Scratch { store, path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

async fn run_file(
    dir: &Path,
    shown: &Path,
    test: TestFile,
    registry: &Registry,
    scripts: &Arc<ScriptEngine>,
    replay: &Replay,
) -> Result<Vec<CaseResult>, Diagnostics> {
    let journal = Journal::default();
    let replies = Arc::new(test.connectors);
    let intercept = {
        let (journal, replies, replay) = (journal.clone(), replies.clone(), replay.clone());
        Arc::new(move |name: &str, real: Arc<dyn Connector>| -> Arc<dyn Connector> {
            if let Some(replaying) = real.replaying(&replay) {
                return replaying;
            }
            Arc::new(Recorder {
                name: name.to_owned(),
                real,
                replies: replies.get(name).cloned().unwrap_or_default(),
                journal: journal.clone(),
            })
        })
    };
    let loader = Loader {
        registry: registry.clone(),
        resources: Resources::default(),
        env: crate::config::process_env(),
        scripts: scripts.clone(),
        intercept: Some(intercept),
    };
    let project = loader.load(dir)?;
    let Some(route) = project.routes.get(&test.route).cloned() else {
        let known: Vec<&str> = project.routes.iter().map(|r| &*r.id).collect();
        return Err(
            Diagnostic::new(shown, None, format!("no route `{}`; routes: {}", test.route, known.join(", "))).into()
        );
    };
    // Retries keep their count but not their waiting: tests should be quick.
    let retry = RetryPolicy { initial: Duration::from_millis(1), max: Duration::from_millis(2), ..route.retry.clone() };
    let mut results = Vec::new();
    for case in test.cases {
        journal.take();
        let mut msg = Message::new(Body::Json(case.input.body.clone()));
        msg.headers = case.input.headers.clone();
        msg.meta.route = route.id.to_string();
        let cx = RunCx::new(route.id.clone(), retry.clone());
        let run = route.pipeline.run(msg.clone(), &cx).await;
        // Wire taps send in the background; give them their turn before reading the journal.
        tokio::time::sleep(Duration::from_millis(5)).await;
        if let (Err(failure), Some(dl)) = (&run, &route.dead_letter) {
            let _ = dl.send(&crate::runtime::deliver::envelope(&route.id, None, failure, &msg)).await;
        }
        let problems = check(&case.expect, run, journal.take());
        results.push(CaseResult { file: shown.to_path_buf(), name: case.name, problems });
    }
    Ok(results)
}

fn check(
    expect: &Expect,
    run: Result<Vec<Message>, crate::route::pipeline::Failure>,
    sent: Vec<Map<String, Value>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    match (&run, &expect.error) {
        (Ok(out), None) => {
            if let Some(want) = &expect.output {
                let got: Vec<Value> = out.iter().map(|m| m.body.to_json()).collect();
                if &got != want {
                    problems.push(format!(
                        "output differs:\n{}",
                        diff::json(&Value::Array(want.clone()), &Value::Array(got))
                    ));
                }
            }
        }
        (Ok(out), Some(_)) => {
            problems.push(format!("expected the route to fail, but it produced {} message(s)", out.len()))
        }
        (Err(f), None) => problems.push(format!("the route failed at {}: {}", f.step, f.error.message)),
        (Err(f), Some(want)) => {
            if let Some(step) = &want.step
                && step != &f.step
            {
                problems.push(format!("expected the failure at step {step}, it was at {}", f.step));
            }
            if let Some(text) = &want.contains
                && !f.error.message.contains(text.as_str())
            {
                problems.push(format!("expected the error to contain {text:?}, it was: {}", f.error.message));
            }
        }
    }
    if let Some(want) = &expect.sent {
        let got: Vec<Value> = sent.iter().map(|call| Value::Object(call.clone())).collect();
        let matches =
            want.len() == sent.len() && want.iter().zip(&sent).all(|(w, g)| w.iter().all(|(k, v)| g.get(k) == Some(v)));
        if !matches {
            let want: Vec<Value> = want.iter().map(|w| Value::Object(w.clone())).collect();
            let shown: Vec<Value> =
                got.iter().enumerate().map(|(i, g)| want.get(i).map_or_else(|| g.clone(), |w| project(w, g))).collect();
            problems.push(format!("sent messages differ:\n{}", diff::json(&Value::Array(want), &Value::Array(shown))));
        }
    }
    problems
}

/// The keys of `got` that `want` mentions (so the diff shows only what the test checks).
fn project(want: &Value, got: &Value) -> Value {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => Value::Object(
            w.keys()
                .filter_map(|k| g.get(k).map(|v| (k.clone(), v.clone())))
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect(),
        ),
        _ => got.clone(),
    }
}
