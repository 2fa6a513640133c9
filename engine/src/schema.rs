//! JSON Schema validators, compiled once at load. `$ref` resolves only to files inside the
//! project's `schemas/` folder: nothing is fetched over the network (no SSRF, no surprise
//! latency at load).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use jsonschema::{Retrieve, Uri, Validator};
use serde_json::Value;

/// A compiled schema, the file it came from, and its JSON (for the OpenAPI document).
#[derive(Clone)]
pub struct Schema {
    file: String,
    validator: Arc<Validator>,
    document: Arc<Value>,
    /// The other files its `$ref`s reached, by path below `schemas/`.
    referenced: Arc<BTreeMap<String, Value>>,
}

/// Why a schema file cannot be used: each says what to fix in `schemas/`.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The file cannot be read: check the name the route gives and that it is in `schemas/`.
    #[error("cannot read schema {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not JSON: fix it at the line and column given.
    #[error(
        "schema {file} is not valid JSON: {source} (line {line}, column {column})",
        line = .source.line(),
        column = .source.column()
    )]
    Json { file: String, source: serde_json::Error },
    /// The `schemas/` folder itself cannot be read.
    #[error("cannot read {dir}: {source}")]
    Folder { dir: PathBuf, source: std::io::Error },
    /// The JSON is not a JSON Schema, or a `$ref` reaches outside `schemas/` (or over the
    /// network): fix the schema, or copy the referenced file into `schemas/`.
    #[error("schema {file} is not a valid JSON Schema: {source}")]
    Invalid { file: String, source: jsonschema::ValidationError<'static> },
}

/// One way an instance fails its schema, with the JSON pointer of the offending value.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Violation {
    pub pointer: String,
    pub message: String,
}

impl Schema {
    /// Reads and compiles `schemas_dir/file`; errors are the user's to fix (missing file,
    /// invalid JSON, invalid schema, a `$ref` outside `schemas/`).
    pub fn load(schemas_dir: &Path, file: &str) -> Result<Self, SchemaError> {
        let path = schemas_dir.join(file);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(source) => return Err(SchemaError::Read { path, source }),
        };
        let schema: Value =
            serde_json::from_str(&text).map_err(|source| SchemaError::Json { file: file.to_owned(), source })?;
        let root = std::fs::canonicalize(schemas_dir)
            .map_err(|source| SchemaError::Folder { dir: schemas_dir.to_owned(), source })?;
        let base = format!("file://{}", root.join(file).display());
        let loaded = Arc::new(Mutex::new(BTreeMap::new()));
        let validator = jsonschema::options()
            .with_base_uri(base)
            .with_retriever(LocalRetriever { root, loaded: loaded.clone() })
            .should_validate_formats(true)
            .build(&schema)
            .map_err(|source| SchemaError::Invalid { file: file.to_owned(), source })?;
        let referenced = std::mem::take(&mut *loaded.lock().unwrap_or_else(PoisonError::into_inner));
        Ok(Self {
            file: file.to_owned(),
            validator: Arc::new(validator),
            document: Arc::new(schema),
            referenced: Arc::new(referenced),
        })
    }

    /// The schema's JSON as written.
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// The files its `$ref`s reached, by path below `schemas/` (`/`-separated).
    pub fn referenced(&self) -> &BTreeMap<String, Value> {
        &self.referenced
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    /// Every violation, each with its JSON pointer; empty when the instance is valid.
    pub fn violations(&self, instance: &Value) -> Vec<Violation> {
        if self.validator.is_valid(instance) {
            return Vec::new();
        }
        self.validator
            .iter_errors(instance)
            .map(|e| Violation { pointer: e.instance_path().to_string(), message: e.to_string() })
            .collect()
    }
}

/// Serves `file://` references below the schemas folder, refuses everything else, and keeps
/// what it served.
struct LocalRetriever {
    root: PathBuf,
    loaded: Arc<Mutex<BTreeMap<String, Value>>>,
}

impl Retrieve for LocalRetriever {
    fn retrieve(&self, uri: &Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        if uri.scheme().as_str() != "file" {
            return Err(format!("only references inside schemas/ are allowed, not {uri}").into());
        }
        let path = std::fs::canonicalize(uri.path().as_str())?;
        let Ok(relative) = path.strip_prefix(&self.root) else {
            return Err(format!("{} is outside schemas/", path.display()).into());
        };
        let value: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        let name = relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
        self.loaded.lock().unwrap_or_else(PoisonError::into_inner).insert(name, value.clone());
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write schema");
        }
        dir
    }

    #[test]
    fn reports_violations_with_pointers() {
        let dir = dir_with(&[
            (
                "deal.json",
                r#"{"type":"object","required":["id"],"properties":{"id":{"type":"string"},"items":{"type":"array","items":{"$ref":"item.json"}}}}"#,
            ),
            ("item.json", r#"{"type":"object","required":["budget"],"properties":{"budget":{"type":"number"}}}"#),
        ]);
        let schema = Schema::load(dir.path(), "deal.json").expect("schema compiles");
        assert!(schema.violations(&serde_json::json!({"id": "x", "items": [{"budget": 1}]})).is_empty());
        let v = schema.violations(&serde_json::json!({"id": 5, "items": [{"budget": "a lot"}]}));
        let pointers: Vec<&str> = v.iter().map(|v| v.pointer.as_str()).collect();
        assert!(pointers.contains(&"/id"), "{v:?}");
        assert!(pointers.contains(&"/items/0/budget"), "{v:?}");
        assert_eq!(schema.document()["required"], serde_json::json!(["id"]));
        let referenced: Vec<&String> = schema.referenced().keys().collect();
        assert_eq!(referenced, ["item.json"]);
    }

    #[test]
    fn refuses_remote_references() {
        let dir = dir_with(&[("a.json", r#"{"$ref":"https://example.com/evil.json"}"#)]);
        let err = Schema::load(dir.path(), "a.json").err().expect("remote ref refused").to_string();
        assert!(err.contains("not a valid JSON Schema"), "{err}");
    }

    #[test]
    fn refuses_references_outside_the_folder() {
        let outer = tempfile::tempdir().expect("temp dir");
        std::fs::write(outer.path().join("secret.json"), "{}").expect("write");
        let inner = outer.path().join("schemas");
        std::fs::create_dir(&inner).expect("mkdir");
        std::fs::write(inner.join("a.json"), r#"{"$ref":"../secret.json"}"#).expect("write");
        assert!(Schema::load(&inner, "a.json").is_err());
    }

    #[test]
    fn invalid_schema_is_an_error() {
        let dir = dir_with(&[("bad.json", r#"{"type": 12}"#)]);
        assert!(Schema::load(dir.path(), "bad.json").is_err());
    }
}
