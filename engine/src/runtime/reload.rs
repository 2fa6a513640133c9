//! Reload: load and validate the project again, diff it with what runs by route id and
//! version, and swap — unchanged routes keep running untouched, changed and removed ones
//! drain. A project that fails validation never replaces the running one.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Serialize;

use super::{FileChange, ProjectFiles, Runtime, drain_timeout, stop_running};
use crate::config::error::Diagnostics;
use crate::route::RouteTable;

/// What a reload changed (or, dry, would change).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReloadReport {
    pub dry_run: bool,
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
    /// Settings that changed but only take effect on a restart (listen, store, cache, …).
    pub restart_needed: Vec<String>,
    /// The version of the project's files this reload read (an HTTP entity tag): pass it to
    /// [`Runtime::reload_if`] to apply exactly what a dry run showed.
    pub etag: String,
    /// The files that differ from those the running routes were loaded from, with diffs.
    pub files: Vec<FileChange>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The project on disk does not validate; the running routes stay as they are.
    #[error("the project does not validate; the running routes are unchanged:\n{0}")]
    Invalid(Diagnostics),
    /// A new or changed connector did not start; the running routes stay as they are.
    #[error("a connector cannot start; the running routes are unchanged: {0}")]
    Connector(crate::connector::ConnectorError),
    /// The project's files are no longer those the caller saw (another admin's change, or
    /// the file watcher's reload, came in between): look at the new dry run and apply that.
    #[error("the project's files changed since version {expected} was read (now {now}); nothing was reloaded")]
    Stale { expected: String, now: String },
}

impl Runtime {
    /// Reloads the project from its directory (file watch, SIGHUP and the admin API all come
    /// here). Reloads run one at a time.
    pub async fn reload(&self, dry_run: bool) -> Result<ReloadReport, ReloadError> {
        self.reload_if(dry_run, None).await
    }

    /// Reloads only when the project's files are still the version `if_match` names (an
    /// ETag of a dry run's report; `*` or `None`: any version).
    pub async fn reload_if(&self, dry_run: bool, if_match: Option<&str>) -> Result<ReloadReport, ReloadError> {
        let mut live = self.inner.live.lock().await;
        let result = self.reload_locked(&mut live, dry_run, if_match).await;
        if !dry_run {
            crate::telemetry::reload_finished(result.is_ok());
        }
        match &result {
            Ok(r) if !dry_run => tracing::info!(
                added = ?r.added, changed = ?r.changed, removed = ?r.removed, unchanged = r.unchanged,
                "reloaded"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "reload refused"),
        }
        result
    }

    async fn reload_locked(
        &self,
        live: &mut std::collections::BTreeMap<Arc<str>, super::Running>,
        dry_run: bool,
        if_match: Option<&str>,
    ) -> Result<ReloadReport, ReloadError> {
        let files = ProjectFiles::read(&self.inner.dir);
        let etag = files.etag();
        if let Some(expected) = if_match.filter(|m| m.trim() != "*")
            && !expected.split(',').any(|e| e.trim().trim_start_matches("W/") == etag)
        {
            return Err(ReloadError::Stale { expected: expected.to_owned(), now: etag });
        }
        let mut started = self.inner.connectors.lock().await;
        let project =
            self.inner.loader.load_reusing(&self.inner.dir, &started.by_name).map_err(ReloadError::Invalid)?;
        let old = self.inner.table.load_full();
        let mut report = ReloadReport {
            dry_run,
            restart_needed: restart_needed(
                &self.inner.settings,
                &project.settings,
                started.by_name.get("bus").map(|(v, _)| v) != project.connector_versions.get("bus"),
            ),
            files: lock(&self.inner.applied).changes_to(&files),
            etag,
            ..Default::default()
        };
        // The root config holds the auth schemes and defaults routes use: when it changes,
        // every route is rebuilt rather than guessing which ones it touched. A connector whose
        // options changed is rebuilt, and so is every route using it.
        let root_changed =
            project.root_version != *self.inner.root_version.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let rebuilt: BTreeSet<&str> = project
            .connectors
            .iter()
            .filter(|(name, c)| started.by_name.get(*name).is_none_or(|(_, live)| !Arc::ptr_eq(live, c)))
            .map(|(name, _)| name.as_str())
            .collect();
        let mut table = RouteTable { mounts: project.routes.mounts.clone(), ..RouteTable::default() };
        for (id, route) in &project.routes.routes {
            let uses_rebuilt = route.connectors().any(|c| rebuilt.contains(c));
            match old.get(id) {
                Some(o) if o.version == route.version && !root_changed && !uses_rebuilt => {
                    report.unchanged += 1;
                    table.routes.insert(id.clone(), o.clone());
                }
                Some(_) => {
                    report.changed.push(id.to_string());
                    table.routes.insert(id.clone(), route.clone());
                }
                None => {
                    report.added.push(id.to_string());
                    table.routes.insert(id.clone(), route.clone());
                }
            }
        }
        report.removed =
            old.routes.keys().filter(|id| !table.routes.contains_key(*id)).map(|id| id.to_string()).collect();
        if dry_run {
            return Ok(report);
        }
        // New and changed connectors start before any route uses them; a failure changes nothing.
        let cx = crate::connector::StartCx {
            store: self.inner.store.clone(),
            cache: self.inner.cache.clone(),
            bus: self.inner.bus.clone(),
        };
        let replaced = started.adopt(&project, &cx, &self.inner.instance).await.map_err(ReloadError::Connector)?;
        drop(started);
        // Old sources stop first (a bus consumer commits its acks), so old and new versions
        // never consume one group at once; the bus holds what arrives in between.
        let going: BTreeSet<&str> = report.changed.iter().chain(&report.removed).map(String::as_str).collect();
        let mut old_versions = Vec::new();
        for id in &going {
            if let Some(r) = live.remove(*id) {
                let _ = r.stop.send(true);
                old_versions.push(r);
            }
        }
        for r in &mut old_versions {
            for task in std::mem::take(&mut r.tasks) {
                let _ = task.await;
            }
        }
        for id in report.added.iter().chain(&report.changed) {
            if let Some(route) = table.routes.get(id.as_str()) {
                live.insert(route.id.clone(), self.launch(route));
            }
        }
        // The swap: the next request finds the new routes; those in flight finish on the old.
        self.inner.gateway_state.swap(&table);
        let table = Arc::new(table);
        self.inner.table.store(table.clone());
        tokio::spawn(super::warn_of_orphans(self.inner.store.clone(), self.inner.settings.embedded_bus(), table));
        *self.inner.root_version.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = project.root_version;
        *lock(&self.inner.applied) = files;
        let drain = async {
            for r in old_versions {
                stop_running(r).await;
            }
            // The replaced connectors go once no route version uses them any more.
            for c in replaced {
                c.stop().await;
            }
        };
        let mut drain = tokio::spawn(drain);
        if tokio::time::timeout(drain_timeout(&self.inner.settings), &mut drain).await.is_err() {
            tracing::warn!("old route versions still have messages in flight; they finish in the background");
        }
        Ok(report)
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The settings that changed but take a restart; `bus_changed`: the bus connector's own
/// options did (`bus: events` and the options of `events`).
fn restart_needed(now: &crate::config::Settings, new: &crate::config::Settings, bus_changed: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, changed: bool| {
        if changed {
            out.push(name.to_owned());
        }
    };
    check("listen", now.listen != new.listen);
    check("store", now.store != new.store);
    check("cache", now.cache != new.cache);
    check(
        "bus",
        bus_changed
            || now.bus != new.bus
            || now.bus_retention != new.bus_retention
            || now.bus_max_backlog != new.bus_max_backlog,
    );
    check(
        "gateway",
        now.max_connections != new.max_connections || now.idle_timeout != new.idle_timeout || now.tls != new.tls,
    );
    check("audit", now.audit_mode != new.audit_mode || now.audit_retention != new.audit_retention);
    check("admin", now.admin != new.admin);
    check("tracing", now.tracing != new.tracing);
    out
}
