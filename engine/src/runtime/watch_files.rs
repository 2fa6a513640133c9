//! Reload on file change: the project's YAML, Rhai and JSON files are watched, and a burst
//! of changes (an editor saving, `git checkout`) becomes one reload after it settles.

use std::path::Path;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::Runtime;

/// How long the files must stay quiet before a reload.
const SETTLE: Duration = Duration::from_millis(250);

pub(super) fn spawn(runtime: Runtime) {
    let dir = runtime.project_dir().to_path_buf();
    // One pending signal is enough: a reload reads every file anew.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && event.paths.iter().any(|p| is_project_file(p))
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            let _ = tx.try_send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the project's files; reload with SIGHUP or the admin API");
            return;
        }
    };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::Recursive) {
        tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the project's files; reload with SIGHUP or the admin API");
        return;
    }
    tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            // Settle: keep absorbing events until none came for a while.
            while let Ok(Some(())) = tokio::time::timeout(SETTLE, rx.recv()).await {}
            tracing::info!("project files changed; reloading");
            let _ = runtime.reload(false).await;
        }
    });
}

/// Route files, transforms, schemas and the root config; not the store's files under `data/`.
pub(super) fn is_project_file(path: &Path) -> bool {
    let in_ignored =
        path.components().any(|c| matches!(c.as_os_str().to_str(), Some("data" | "target" | ".git" | ".venv")));
    let ext = path.extension().and_then(|e| e.to_str());
    !in_ignored && matches!(ext, Some("yaml" | "yml" | "rhai" | "json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_config_not_the_store() {
        assert!(is_project_file(Path::new("/p/routes/a.yaml")));
        assert!(is_project_file(Path::new("/p/transforms/t.rhai")));
        assert!(is_project_file(Path::new("/p/schemas/s.json")));
        assert!(!is_project_file(Path::new("/p/data/junction.db")));
        assert!(!is_project_file(Path::new("/p/data/x.json")));
        assert!(!is_project_file(Path::new("/p/notes.txt")));
    }
}
