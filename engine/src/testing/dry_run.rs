//! A dry run of one message through a route of the project on disk, as `junction test` runs
//! a case: every connector is a recorder that echoes what it is sent (nothing leaves the
//! process, not even to the bus), the route's own steps run for real. The console runs a
//! dead letter this way, edited or not, before it is replayed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::recorder::{Journal, Recorder};
use crate::config::Loader;
use crate::config::error::Diagnostics;
use crate::connector::{Connector, Resources};
use crate::message::Message;
use crate::route::pipeline::{RetryPolicy, RunCx};

/// What a dry run did.
#[derive(Debug, Serialize)]
pub struct DryRun {
    /// The messages the route produced; empty when it failed.
    pub output: Vec<Value>,
    /// Where and why it failed.
    pub failure: Option<DryFailure>,
    /// Every call the route made to a connector: connector, options, body, headers.
    pub sent: Vec<Value>,
}

#[derive(Debug, Serialize)]
pub struct DryFailure {
    pub step: String,
    pub error: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    #[error("the project does not load, so nothing can be run:\n{0}")]
    Invalid(Diagnostics),
    #[error("no route `{0}` in the project on disk")]
    NoRoute(String),
}

/// Runs `msg` through route `route` of the project in `dir` from the step it resumes at,
/// with `base`'s connector kinds, environment and script engine.
pub async fn dry_run(base: &Loader, dir: &Path, route: &str, msg: Message) -> Result<DryRun, DryRunError> {
    let journal = Journal::default();
    let intercept = {
        let journal = journal.clone();
        Arc::new(move |name: &str, real: Arc<dyn Connector>| -> Arc<dyn Connector> {
            Arc::new(Recorder { name: name.to_owned(), real, replies: Default::default(), journal: journal.clone() })
        })
    };
    let loader = Loader {
        registry: base.registry.clone(),
        resources: Resources::default(),
        env: base.env.clone(),
        scripts: base.scripts.clone(),
        intercept: Some(intercept),
    };
    let project = loader.load(dir).map_err(DryRunError::Invalid)?;
    let route = project.routes.get(route).cloned().ok_or_else(|| DryRunError::NoRoute(route.to_owned()))?;
    // Retries keep their count but not their waiting.
    let retry = RetryPolicy { initial: Duration::from_millis(1), max: Duration::from_millis(2), ..route.retry.clone() };
    let cx = RunCx::new(route.id.clone(), retry);
    let start = msg.meta.resume_at;
    let run = route.pipeline.run_from(start, msg, &cx).await;
    // Wire taps send in the background; give them their turn before reading the journal.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let sent = journal.take().into_iter().map(Value::Object).collect();
    Ok(match run {
        Ok(out) => DryRun { output: out.iter().map(|m| m.body.to_json()).collect(), failure: None, sent },
        Err(f) => {
            DryRun { output: Vec::new(), failure: Some(DryFailure { step: f.step, error: f.error.message }), sent }
        }
    })
}
