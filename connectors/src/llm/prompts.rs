//! Prompt packages: `prompts/<name>/<version>/` holds `system.j2` (optional), `user.j2`, the
//! answer's JSON Schema `schema.json` (optional: without one the answer is text) and
//! `params.yaml` (optional: `temperature`, `max_tokens`). Templates are minijinja, rendered with
//! the message body as `input`; a name the body lacks is an error, not an empty string.
//!
//! A published version is immutable: the project's `prompts.lock` holds one line per version,
//! `<name>/<version> sha256:<hash of its files>`, and a package whose files no longer match is
//! refused when the project is loaded (`junction check`), naming the lock and the package. A
//! changed prompt is a new version, a new folder and a new line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jsonschema::Validator;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A loaded, checked package.
pub(crate) struct Package {
    /// `media-plan/1`
    pub(crate) id: String,
    /// `sha256:…` of its files, as the lock holds it.
    pub(crate) hash: String,
    /// The templates, parsed once when the package is loaded.
    templates: minijinja::Environment<'static>,
    has_system: bool,
    /// The answer's schema, as given to the provider.
    pub(crate) schema: Option<Value>,
    /// The schema's size as sent (JSON text), for a call's worst case.
    pub(crate) schema_bytes: usize,
    /// Whether the schema is in the subset OpenAI's strict mode takes (sent with `strict: true`).
    pub(crate) strict: bool,
    /// The schema, compiled to check every answer again here.
    pub(crate) validator: Option<Validator>,
    pub(crate) params: Params,
}

/// `params.yaml`: the model parameters of a package.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    #[serde(default)]
    pub(crate) temperature: Option<f32>,
    #[serde(default)]
    pub(crate) max_tokens: Option<u32>,
}

const FILES: [&str; 4] = ["system.j2", "user.j2", "schema.json", "params.yaml"];

/// Why a prompt package cannot be loaded, or rendered for a message: each says what to fix.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PromptError {
    /// A `prompt` that is not `<name>/<version>`: name the package's folder so.
    #[error("`{id}` is not a prompt package: name it `<name>/<version>`, a folder under {root}")]
    NotAnId { id: String, root: PathBuf },
    /// No folder for the package: create it, or fix the `prompt`.
    #[error("no prompt package {dir} (a folder with user.j2, and schema.json, system.j2, params.yaml when needed)")]
    NoPackage { dir: PathBuf },
    /// A file of the package cannot be read: check its permissions.
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// No `prompts.lock`: create it with the line given.
    #[error("cannot read {lock} ({source}): it records each prompt package's hash; add the line `{id} {hash}`")]
    NoLock { lock: PathBuf, source: std::io::Error, id: String, hash: String },
    /// The files differ from the locked ones: a published version does not change, so make a
    /// new version folder and lock it.
    #[error(
        "{lock}: the files of prompt package {id} changed since it was locked ({locked}, now {hash}); a published \
         version does not change: make a new version folder and lock it"
    )]
    Changed { lock: PathBuf, id: String, locked: String, hash: String },
    /// The lock has no line for the package: add the line given.
    #[error("{lock} has no line for prompt package {id}: add `{id} {hash}`")]
    NotLocked { lock: PathBuf, id: String, hash: String },
    /// No `user.j2`: every package has one.
    #[error("{path} is missing")]
    NoUserTemplate { path: PathBuf },
    /// `schema.json` is not JSON: fix it, or remove it for text answers.
    #[error("{path}: not JSON: {source}")]
    SchemaJson { path: PathBuf, source: serde_json::Error },
    /// `schema.json` is JSON but not a JSON Schema: fix it.
    #[error("{path}: not a JSON Schema: {source}")]
    Schema { path: PathBuf, source: jsonschema::ValidationError<'static> },
    /// `params.yaml` does not parse, or has fields other than `temperature` and `max_tokens`.
    #[error("{path}: {source}")]
    Params { path: PathBuf, source: Box<serde_saphyr::Error> },
    /// A template that does not parse (found at load), or that uses a name the message body
    /// lacks (found per message): fix the template, or the messages that reach it.
    #[error("{template}: {source}")]
    Template { template: String, source: minijinja::Error },
}

impl Package {
    /// Loads `<root>/<id>/` and checks it against `lock` (the project's `prompts.lock`).
    pub(crate) fn load(root: &Path, id: &str, lock: &Path) -> Result<Package, PromptError> {
        if id.split('/').count() != 2 || id.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
            return Err(PromptError::NotAnId { id: id.to_owned(), root: root.to_owned() });
        }
        let dir = root.join(id);
        if !dir.is_dir() {
            return Err(PromptError::NoPackage { dir });
        }
        let mut files = BTreeMap::new();
        for name in FILES {
            match std::fs::read_to_string(dir.join(name)) {
                Ok(text) => {
                    files.insert(name, text);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(PromptError::Read { path: dir.join(name), source }),
            }
        }
        let hash = hash(&files);
        check_lock(lock, id, &hash)?;
        let user = files.remove("user.j2").ok_or_else(|| PromptError::NoUserTemplate { path: dir.join("user.j2") })?;
        let system = files.remove("system.j2");
        let schema = match files.get("schema.json") {
            Some(text) => Some(
                serde_json::from_str::<Value>(text)
                    .map_err(|source| PromptError::SchemaJson { path: dir.join("schema.json"), source })?,
            ),
            None => None,
        };
        let validator = match &schema {
            Some(s) => Some(
                jsonschema::validator_for(s)
                    .map_err(|source| PromptError::Schema { path: dir.join("schema.json"), source })?,
            ),
            None => None,
        };
        let params = match files.get("params.yaml") {
            Some(text) => serde_saphyr::from_str(text)
                .map_err(|source| PromptError::Params { path: dir.join("params.yaml"), source: Box::new(source) })?,
            None => Params::default(),
        };
        // Templates that do not parse are the package's error, found now rather than per call.
        let mut templates = minijinja::Environment::new();
        templates.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        templates
            .add_template_owned("user.j2", user)
            .map_err(|source| PromptError::Template { template: format!("{id}/user.j2"), source })?;
        let has_system = system.is_some();
        if let Some(system) = system {
            templates
                .add_template_owned("system.j2", system)
                .map_err(|source| PromptError::Template { template: format!("{id}/system.j2"), source })?;
        }
        let strict = schema.as_ref().is_some_and(|s| super::openai::strict_misfit(s).is_none());
        let schema_bytes = schema.as_ref().map_or(0, |s| s.to_string().len());
        Ok(Package { id: id.to_owned(), hash, templates, has_system, schema, schema_bytes, validator, params, strict })
    }

    /// The system and user messages for `input` (the message body).
    pub(crate) fn render(&self, input: &Value) -> Result<(Option<String>, String), PromptError> {
        let cx = minijinja::context! { input => minijinja::Value::from_serialize(input) };
        let render = |name: &str| {
            self.templates
                .get_template(name)
                .and_then(|t| t.render(&cx))
                .map_err(|source| PromptError::Template { template: format!("{}/{name}", self.id), source })
        };
        let system = if self.has_system { Some(render("system.j2")?) } else { None };
        Ok((system, render("user.j2")?))
    }

    /// The errors of `answer` against the package's schema (none without one).
    pub(crate) fn errors(&self, answer: &Value) -> Vec<String> {
        match &self.validator {
            Some(v) => v.iter_errors(answer).map(|e| format!("{}: {e}", e.instance_path())).collect(),
            None => Vec::new(),
        }
    }
}

/// The hash of a package's files: each file's name and text, in name order.
fn hash(files: &BTreeMap<&str, String>) -> String {
    let mut h = Sha256::new();
    for (name, text) in files {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.update([0]);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Refuses a package the lock does not hold, or holds with another hash.
fn check_lock(lock: &Path, id: &str, hash: &str) -> Result<(), PromptError> {
    let text = std::fs::read_to_string(lock).map_err(|source| PromptError::NoLock {
        lock: lock.to_owned(),
        source,
        id: id.to_owned(),
        hash: hash.to_owned(),
    })?;
    let locked = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .find_map(|l| l.split_once(char::is_whitespace).filter(|(name, _)| *name == id).map(|(_, h)| h.trim()));
    match locked {
        Some(h) if h == hash => Ok(()),
        Some(h) => Err(PromptError::Changed {
            lock: lock.to_owned(),
            id: id.to_owned(),
            locked: h.to_owned(),
            hash: hash.to_owned(),
        }),
        None => Err(PromptError::NotLocked { lock: lock.to_owned(), id: id.to_owned(), hash: hash.to_owned() }),
    }
}

/// Where a project's packages and lock are.
pub(crate) fn paths(project: &Path, folder: Option<&str>) -> (PathBuf, PathBuf) {
    (project.join(folder.unwrap_or("prompts")), project.join("prompts.lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("prompts");
        std::fs::create_dir_all(root.join("plan/1")).expect("mkdir");
        for (name, text) in files {
            std::fs::write(root.join("plan/1").join(name), text).expect("write");
        }
        (dir, root)
    }

    #[test]
    fn a_package_renders_checks_and_holds_to_its_lock() {
        let (dir, root) = package(&[
            ("user.j2", "Plan for {{ input.deal.name }}, budget {{ input.deal.budget }}"),
            ("schema.json", r#"{"type":"object","required":["lines"],"properties":{"lines":{"type":"array"}}}"#),
        ]);
        let lock = dir.path().join("prompts.lock");
        let missing = Package::load(&root, "plan/1", &lock).err().expect("no lock yet").to_string();
        assert!(missing.contains("prompts.lock") && missing.contains("plan/1 sha256:"), "{missing}");
        let line = missing.rsplit('`').nth(1).expect("the line to add").to_owned();
        std::fs::write(&lock, format!("# prompt packages\n{line}\n")).expect("lock");
        let p = Package::load(&root, "plan/1", &lock).expect("locked");
        let (system, user) =
            p.render(&serde_json::json!({ "deal": { "name": "Весна", "budget": "1500000.00" } })).expect("render");
        assert_eq!((system, user.as_str()), (None, "Plan for Весна, budget 1500000.00"));
        assert!(p.render(&serde_json::json!({ "deal": {} })).is_err(), "a missing name is an error");
        assert!(p.errors(&serde_json::json!({ "lines": [] })).is_empty());
        assert!(!p.errors(&serde_json::json!({ "lines": 3 })).is_empty());

        std::fs::write(root.join("plan/1/user.j2"), "Another prompt").expect("change");
        let changed = Package::load(&root, "plan/1", &lock).err().expect("changed after locking").to_string();
        assert!(changed.contains("prompts.lock") && changed.contains("changed since it was locked"), "{changed}");
        assert!(Package::load(&root, "../x", &lock).is_err());
    }
}
