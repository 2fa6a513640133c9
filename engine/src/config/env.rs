//! `${VAR}` and `${VAR:-default}` in `junction.yaml`: secrets and addresses from the environment.
//!
//! The substitution itself happens inside the YAML parser, scalar by scalar, so a value with
//! `#` or `: ` in it cannot change the document's structure. This module finds the
//! references first, to report an unset variable at its own line and column.

use std::collections::HashMap;

use super::node::Pos;

/// A `${NAME}` (or bare `$NAME`) that has no default and is not set.
#[derive(Debug, Clone, PartialEq)]
pub struct Unset {
    pub name: String,
    pub pos: Pos,
}

/// Every reference to an unset variable without a default, in text order.
/// `$$` escapes a dollar; YAML comments are skipped.
pub fn unset_references(text: &str, env: &HashMap<String, String>) -> Vec<Unset> {
    let mut out = Vec::new();
    for (line_no, line) in text.lines().enumerate() {
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'#' if i == 0 || bytes[i - 1].is_ascii_whitespace() => break,
                b'$' if bytes.get(i + 1) == Some(&b'$') => i += 2,
                b'$' => {
                    let (reference, len) = parse_reference(&line[i + 1..]);
                    if let Some((name, has_default)) = reference
                        && !has_default
                        && !env.contains_key(name)
                    {
                        let col = line[..i].chars().count() + 1;
                        out.push(Unset {
                            name: name.to_owned(),
                            pos: Pos { line: line_no as u32 + 1, col: col as u32 },
                        });
                    }
                    i += 1 + len;
                }
                _ => i += 1,
            }
        }
    }
    out
}

/// Parses what follows a `$`: `{NAME}`, `{NAME:-x}`, `{NAME-x}` or `NAME`.
/// Returns the name, whether a default (or other operator) is given, and the length read.
fn parse_reference(rest: &str) -> (Option<(&str, bool)>, usize) {
    let is_name = |c: char| c == '_' || c.is_ascii_alphanumeric();
    if let Some(inner) = rest.strip_prefix('{') {
        let end = inner.find(|c: char| !is_name(c)).unwrap_or(inner.len());
        let name = &inner[..end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return (None, 1);
        }
        let has_operator = !inner[end..].starts_with('}');
        (Some((name, has_operator)), 1 + end)
    } else {
        let end = rest.find(|c: char| !is_name(c)).unwrap_or(rest.len());
        let name = &rest[..end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return (None, 0);
        }
        (Some((name, false)), end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn reports_unset_without_default_at_its_position() {
        let text = "listen: ${LISTEN:-127.0.0.1:8080}\nstore: \"${STORE}\"\n# ${IN_COMMENT}\ncost: $$5\n";
        let unset = unset_references(text, &env(&[]));
        assert_eq!(unset, vec![Unset { name: "STORE".into(), pos: Pos { line: 2, col: 9 } }]);
    }

    #[test]
    fn set_variables_are_fine() {
        let text = "store: ${STORE}\nurl: http://$HOST/x\n";
        assert!(unset_references(text, &env(&[("STORE", "x"), ("HOST", "h")])).is_empty());
        assert_eq!(unset_references(text, &env(&[("STORE", "x")])).len(), 1);
    }
}
