//! The lifecycle of a running project's connectors: each instance started once (the bus
//! first, since the others may publish to it), its background tasks run, and stopped when the
//! project stops or a reload replaces it, after the routes using it have drained.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{LiveConnectors, Project};
use crate::connector::{Connector, ConnectorError, StartCx};

/// The connectors a running project has started.
#[derive(Default)]
pub(crate) struct Started {
    /// By name, with the version each was built from (what a reload may keep).
    pub(super) by_name: LiveConnectors,
    instances: Vec<Instance>,
}

/// One started connector instance (the bus may also go by another name) and its tasks.
pub(crate) struct Instance {
    connector: Arc<dyn Connector>,
    name: String,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Started {
    /// Starts the connectors of `project` that are not running yet, and makes `project`'s
    /// the running set. Returns the instances `project` no longer uses: stop them once the
    /// routes using them have drained. On an error, those started here are stopped again
    /// and the running set is unchanged.
    pub(super) async fn adopt(
        &mut self,
        project: &Project,
        cx: &StartCx,
        holder: &Arc<str>,
    ) -> Result<Vec<Instance>, ConnectorError> {
        let mut fresh: Vec<Instance> = Vec::new();
        for (name, connector) in bus_first(project) {
            if self.instances.iter().any(|i| Arc::ptr_eq(&i.connector, connector)) {
                continue;
            }
            match start(name, connector, cx, holder).await {
                Ok(instance) => fresh.push(instance),
                Err(e) => {
                    for instance in fresh {
                        instance.stop().await;
                    }
                    return Err(e);
                }
            }
        }
        let kept: Vec<Instance> = std::mem::take(&mut self.instances);
        let (kept, gone): (Vec<Instance>, Vec<Instance>) =
            kept.into_iter().partition(|i| project.connectors.values().any(|c| Arc::ptr_eq(c, &i.connector)));
        self.instances = kept.into_iter().chain(fresh).collect();
        self.by_name = project
            .connectors
            .iter()
            .filter_map(|(name, c)| Some((name.clone(), (project.connector_versions.get(name)?.clone(), c.clone()))))
            .collect();
        Ok(gone)
    }

    /// Every instance, to stop them all: the bus last, since the others may publish to it
    /// while they drain.
    pub(super) fn take_all(&mut self) -> Vec<Instance> {
        let bus = std::mem::take(&mut self.by_name).remove("bus").map(|(_, c)| c);
        let mut all = std::mem::take(&mut self.instances);
        all.sort_by_key(|i| bus.as_ref().is_some_and(|bus| Arc::ptr_eq(&i.connector, bus)));
        all
    }
}

/// The project's connectors, each instance once (the bus may also go by another name), the
/// bus first: the others are started with it.
fn bus_first(project: &Project) -> Vec<(&str, &Arc<dyn Connector>)> {
    let bus = project.connectors.iter().filter(|(n, _)| *n == "bus");
    let mut out: Vec<(&str, &Arc<dyn Connector>)> = Vec::new();
    for (name, connector) in bus.chain(project.connectors.iter().filter(|(n, _)| *n != "bus")) {
        if !out.iter().any(|(_, c)| Arc::ptr_eq(c, connector)) {
            out.push((name.as_str(), connector));
        }
    }
    out
}

/// Starts one connector and spawns its tasks.
async fn start(
    name: &str,
    connector: &Arc<dyn Connector>,
    cx: &StartCx,
    holder: &Arc<str>,
) -> Result<Instance, ConnectorError> {
    connector.start(cx).await.map_err(|e| {
        tracing::error!(connector = name, error = %e, "connector failed to start");
        e
    })?;
    let (stop, stop_rx) = watch::channel(false);
    let tasks = connector
        .tasks()
        .into_iter()
        .map(|task| super::tasks::spawn(task, cx.store.clone(), holder.clone(), stop_rx.clone()))
        .collect();
    tracing::info!(connector = name, kind = connector.kind(), "connector started");
    Ok(Instance { connector: connector.clone(), name: name.to_owned(), stop, tasks })
}

impl Instance {
    /// Ends the connector's tasks, then stops it.
    pub(super) async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.connector.stop().await;
        tracing::info!(connector = self.name, "connector stopped");
    }
}

/// Starts `project`'s connectors without their background tasks, for a one-off run outside
/// a running project (`junction dead-letters replay`); stop them with [`stop_all`] after.
pub async fn start_for_one_off(project: &Project, cx: &StartCx) -> Result<Vec<Arc<dyn Connector>>, ConnectorError> {
    let mut started: Vec<Arc<dyn Connector>> = Vec::new();
    for (_, connector) in bus_first(project) {
        connector.start(cx).await?;
        started.push(connector.clone());
    }
    Ok(started)
}

/// Stops what [`start_for_one_off`] started, the bus last.
pub async fn stop_all(started: Vec<Arc<dyn Connector>>) {
    for c in started.into_iter().rev() {
        c.stop().await;
    }
}
