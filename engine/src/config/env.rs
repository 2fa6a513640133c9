//! `${VAR}` and `${VAR:-default}` in `junction.yaml`: secrets and addresses from the
//! environment. Substituted inside string values after parsing, so a value with `#` or `: `
//! cannot change the document's structure. `$$` is a literal `$`.

use std::collections::HashMap;

use super::node::{Node, NodeValue, Pos};

/// A `${NAME}` that has no default and is not set.
#[derive(Debug, Clone, PartialEq)]
pub struct Unset {
    pub name: String,
    pub pos: Pos,
}

/// Substitutes every string value of `node` (not mapping keys). A value that is a single
/// reference takes the type its text reads as (`${PORT:-8080}` is a number), as if written there.
pub fn substitute(node: &mut Node, env: &HashMap<String, String>, unset: &mut Vec<Unset>) {
    match &mut node.value {
        NodeValue::Str(s) if s.contains('$') => {
            let whole = is_single_reference(s);
            match expand(s, env) {
                Ok(text) => node.value = if whole { retype(text) } else { NodeValue::Str(text) },
                Err(names) => unset.extend(names.into_iter().map(|name| Unset { name, pos: node.pos })),
            }
        }
        NodeValue::Seq(items) => items.iter_mut().for_each(|n| substitute(n, env, unset)),
        NodeValue::Map(entries) => entries.iter_mut().for_each(|(_, n)| substitute(n, env, unset)),
        _ => {}
    }
}

/// Expands the references in `text`; the names that are unset without a default otherwise.
pub fn expand(text: &str, env: &HashMap<String, String>) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut unset = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some((name, default, len)) = reference(rest) {
            match (env.get(name).filter(|v| !v.is_empty() || default.is_none()), default) {
                (Some(v), _) => out.push_str(v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => unset.push(name.to_owned()),
            }
            rest = &rest[len..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    if unset.is_empty() { Ok(out) } else { Err(unset) }
}

/// Reads `${NAME}` or `${NAME:-default}` at the start of `text`: name, default, length.
fn reference(text: &str) -> Option<(&str, Option<&str>, usize)> {
    let inner = text.strip_prefix("${")?;
    let close = inner.find('}')?;
    let body = &inner[..close];
    let (name, default) = match body.split_once(":-") {
        Some((n, d)) => (n, Some(d)),
        None => (body, None),
    };
    let valid = name.starts_with(|c: char| c == '_' || c.is_ascii_alphabetic())
        && name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric());
    valid.then_some((name, default, close + 3))
}

fn is_single_reference(text: &str) -> bool {
    reference(text).is_some_and(|(_, _, len)| len == text.len())
}

/// The type a plain YAML scalar with this text would have.
fn retype(text: String) -> NodeValue {
    match text.as_str() {
        "true" => NodeValue::Bool(true),
        "false" => NodeValue::Bool(false),
        "null" | "~" | "" => NodeValue::Null,
        t => t
            .parse::<i64>()
            .map(NodeValue::Int)
            .or_else(|_| t.parse::<f64>().map(NodeValue::Float))
            .unwrap_or(NodeValue::Str(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn expands_defaults_values_and_escapes() {
        let e = env(&[("HOST", "db"), ("EMPTY", "")]);
        assert_eq!(expand("postgres://${HOST}/x", &e), Ok("postgres://db/x".into()));
        assert_eq!(expand("${PORT:-5432}", &e), Ok("5432".into()));
        assert_eq!(expand("${EMPTY:-fallback}", &e), Ok("fallback".into()));
        assert_eq!(expand("cost $$5 and $x", &e), Ok("cost $5 and $x".into()));
        assert_eq!(expand("${A}-${B:-b}-${C}", &e), Err(vec!["A".into(), "C".into()]));
    }

    #[test]
    fn reports_unset_at_the_value_and_retypes_whole_references() {
        let mut node: Node =
            serde_saphyr::from_str("a: ${MISSING}\nb: ${PORT:-8080}\nc: \"x ${PORT:-1}\"\n").expect("parses");
        let mut unset = Vec::new();
        substitute(&mut node, &env(&[]), &mut unset);
        assert_eq!(unset, vec![Unset { name: "MISSING".into(), pos: Pos { line: 1, col: 4 } }]);
        assert_eq!(node.get("b").map(|n| &n.value), Some(&NodeValue::Int(8080)));
        assert_eq!(node.get("c").and_then(Node::as_str), Some("x 1"));
    }
}
