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
        // The bus first: the others are started with it.
        let names =
            project.connectors.keys().filter(|n| *n == "bus").chain(project.connectors.keys().filter(|n| *n != "bus"));
        for name in names {
            let connector = &project.connectors[name];
            let running = self.instances.iter().chain(&fresh).any(|i| Arc::ptr_eq(&i.connector, connector));
            if running {
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
    pub(super) fn take_all(&mut self, bus: &Arc<dyn Connector>) -> Vec<Instance> {
        self.by_name.clear();
        let mut all = std::mem::take(&mut self.instances);
        all.sort_by_key(|i| Arc::ptr_eq(&i.connector, bus));
        all
    }
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
    let bus_first = project
        .connectors
        .iter()
        .filter(|(n, _)| *n == "bus")
        .chain(project.connectors.iter().filter(|(n, _)| *n != "bus"));
    for (_, connector) in bus_first {
        if started.iter().any(|c| Arc::ptr_eq(c, connector)) {
            continue;
        }
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
