//! The project's files as one version: those the watcher watches, read whole. A dry run shows
//! what a reload would apply as a text diff per file and names the version it saw (an ETag);
//! applying with that ETag is refused when the files changed in between, so one admin's
//! reload never silently applies another's edit.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::watch_files::is_project_file;

/// The project's files, by path relative to the project directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectFiles {
    files: BTreeMap<String, String>,
}

/// One file a reload would add, change or remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    pub path: String,
    /// `added`, `changed` or `removed`.
    pub change: &'static str,
    /// A unified diff from the running version to the one on disk.
    pub diff: String,
}

impl ProjectFiles {
    /// Reads the project's files under `dir`; those that cannot be read are left out (the
    /// loader names them).
    pub fn read(dir: &Path) -> Self {
        let mut files = BTreeMap::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(folder) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&folder) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(relative) = path.strip_prefix(dir) else { continue };
                let Ok(kind) = entry.file_type() else { continue };
                if kind.is_dir() {
                    if is_project_file(&relative.join("x.yaml")) {
                        pending.push(path);
                    }
                } else if is_project_file(relative)
                    && let Ok(bytes) = std::fs::read(&path)
                {
                    let name = relative.to_string_lossy().replace('\\', "/");
                    files.insert(name, String::from_utf8_lossy(&bytes).into_owned());
                }
            }
        }
        Self { files }
    }

    /// An HTTP entity tag naming this version: a hash of every file's path and content.
    pub fn etag(&self) -> String {
        let mut hash = Sha256::new();
        for (path, text) in &self.files {
            hash.update(path.as_bytes());
            hash.update([0]);
            hash.update(text.as_bytes());
            hash.update([0]);
        }
        format!("\"{}\"", hex::encode(&hash.finalize()[..16]))
    }

    /// What changes from `self` (running) to `newer` (on disk), file by file.
    pub fn changes_to(&self, newer: &Self) -> Vec<FileChange> {
        let mut out = Vec::new();
        for (path, new) in &newer.files {
            let (change, old) = match self.files.get(path) {
                Some(old) if old == new => continue,
                Some(old) => ("changed", old.as_str()),
                None => ("added", ""),
            };
            out.push(FileChange { path: path.clone(), change, diff: unified(path, old, new) });
        }
        for (path, old) in &self.files {
            if !newer.files.contains_key(path) {
                out.push(FileChange { path: path.clone(), change: "removed", diff: unified(path, old, "") });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

fn unified(path: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_on_disk_shows_as_a_diff_and_a_new_etag() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("routes")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("data")).expect("mkdir");
        std::fs::write(dir.path().join("junction.yaml"), "listen: x\n").expect("write");
        std::fs::write(dir.path().join("routes/a.yaml"), "id: a\nsteps: []\n").expect("write");
        std::fs::write(dir.path().join("data/store.json"), "{}").expect("write");
        let running = ProjectFiles::read(dir.path());
        assert_eq!(running.files.keys().collect::<Vec<_>>(), ["junction.yaml", "routes/a.yaml"]);
        assert_eq!(running.etag(), ProjectFiles::read(dir.path()).etag());
        assert!(running.changes_to(&running).is_empty());

        std::fs::write(dir.path().join("routes/a.yaml"), "id: a\nsteps: [log]\n").expect("write");
        std::fs::write(dir.path().join("routes/b.yaml"), "id: b\n").expect("write");
        std::fs::remove_file(dir.path().join("junction.yaml")).expect("rm");
        // The store's files never count.
        std::fs::write(dir.path().join("data/store.json"), "{\"n\":1}").expect("write");
        let disk = ProjectFiles::read(dir.path());
        assert_ne!(running.etag(), disk.etag());
        let changes = running.changes_to(&disk);
        let summary: Vec<_> = changes.iter().map(|c| (c.path.as_str(), c.change)).collect();
        assert_eq!(summary, [("junction.yaml", "removed"), ("routes/a.yaml", "changed"), ("routes/b.yaml", "added")]);
        assert!(changes[1].diff.contains("-steps: []\n+steps: [log]\n"), "{}", changes[1].diff);
        assert!(changes[1].diff.starts_with("--- a/routes/a.yaml\n+++ b/routes/a.yaml\n"), "{}", changes[1].diff);
    }
}
