//! A route's JSON Schema as OpenAPI 3.1 components: each file it spans becomes one component,
//! its `$ref`s point at those components, and keywords of older drafts that 2020-12 (the
//! dialect of OpenAPI 3.1) rejects take their 2020-12 form.

use serde_json::{Map, Value};

use crate::schema::Schema;

const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// Keywords whose value is a map of subschemas.
const SCHEMA_MAPS: &[&str] =
    &["properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies"];
/// Keywords whose value is a subschema or a list of them.
const SUBSCHEMAS: &[&str] = &[
    "items",
    "prefixItems",
    "additionalItems",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "additionalProperties",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
];

/// Adds `schema` and the files it references to `components`; returns the `$ref` to it.
pub(super) fn add(schema: &Schema, components: &mut Map<String, Value>) -> String {
    let known: Vec<&str> =
        std::iter::once(schema.file()).chain(schema.referenced().keys().map(String::as_str)).collect();
    let files = std::iter::once((schema.file(), schema.document()))
        .chain(schema.referenced().iter().map(|(file, doc)| (file.as_str(), doc)));
    for (file, doc) in files {
        let name = component_name(file.strip_suffix(".json").unwrap_or(file));
        if !components.contains_key(&name) {
            let mut doc = doc.clone();
            port(&mut doc, file, &known);
            components.insert(name, doc);
        }
    }
    reference_to(schema.file(), "")
}

/// A name OpenAPI accepts as a component key (`[a-zA-Z0-9._-]+`); folders become dots.
pub(super) fn component_name(raw: &str) -> String {
    let name: String = raw
        .chars()
        .map(|c| match c {
            '/' => '.',
            c if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') => c,
            _ => '_',
        })
        .collect();
    // `Problem` is the gateway's own; a schema file of that name keeps its extension.
    if name == "Problem" { "Problem.json".into() } else { name }
}

fn reference_to(file: &str, fragment: &str) -> String {
    format!("#/components/schemas/{}{fragment}", component_name(file.strip_suffix(".json").unwrap_or(file)))
}

/// Rewrites one schema (of `file`) in place, and its subschemas.
fn port(schema: &mut Value, file: &str, known: &[&str]) {
    let Value::Object(map) = schema else { return };
    if let Some(Value::String(r)) = map.get_mut("$ref") {
        *r = rewrite_ref(r, file, known);
    }
    // The schema now lives inside the OpenAPI document: an `$id` would re-base its references.
    if map.get("$id").is_some_and(Value::is_string) {
        map.remove("$id");
    }
    if map.get("$schema").is_some_and(|s| s.as_str().is_some_and(|s| s.trim_end_matches('#') != DRAFT_2020_12)) {
        map.remove("$schema");
    }
    modernize(map);
    for (key, value) in map.iter_mut() {
        if SCHEMA_MAPS.contains(&key.as_str()) {
            if let Value::Object(subschemas) = value {
                subschemas.values_mut().for_each(|s| port(s, file, known));
            }
        } else if SUBSCHEMAS.contains(&key.as_str()) {
            match value {
                Value::Array(list) => list.iter_mut().for_each(|s| port(s, file, known)),
                other => port(other, file, known),
            }
        }
    }
}

/// Draft-04 boolean `exclusiveMaximum`/`exclusiveMinimum` and draft-04…2019-09 array `items`
/// are invalid in 2020-12; each has an exact 2020-12 equivalent.
fn modernize(map: &mut Map<String, Value>) {
    for (flag, bound) in [("exclusiveMaximum", "maximum"), ("exclusiveMinimum", "minimum")] {
        if let Some(Value::Bool(exclusive)) = map.get(flag) {
            let exclusive = *exclusive;
            map.remove(flag);
            if exclusive && let Some(limit) = map.remove(bound) {
                map.insert(flag.into(), limit);
            }
        }
    }
    if map.get("items").is_some_and(Value::is_array)
        && let Some(tuple) = map.remove("items")
    {
        map.insert("prefixItems".into(), tuple);
        if let Some(rest) = map.remove("additionalItems") {
            map.insert("items".into(), rest);
        }
    }
}

/// A reference relative to `file` as a reference into the components. Plain-name fragments
/// (`#anchor`) resolve in the document as they are.
fn rewrite_ref(reference: &str, file: &str, known: &[&str]) -> String {
    let (target, fragment) = reference.split_once('#').unwrap_or((reference, ""));
    if !fragment.is_empty() && !fragment.starts_with('/') {
        return format!("#{fragment}");
    }
    let target = if target.is_empty() {
        file.to_owned()
    } else if let Some(absolute) = target.strip_prefix("file://") {
        // Loading only allowed files below `schemas/`: one of the known ones.
        let found = known.iter().find(|k| absolute.ends_with(&format!("/{k}")));
        found.map_or_else(|| target.to_owned(), |k| (*k).to_owned())
    } else {
        relative(file, target)
    };
    reference_to(&target, fragment)
}

/// `target` resolved against the folder of `file`, both below `schemas/`.
fn relative(file: &str, target: &str) -> String {
    let mut parts: Vec<&str> = file.split('/').collect();
    parts.pop();
    for segment in target.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}
