//! The variables a script sees (`body`, `headers`, `meta`): converting them from JSON into a
//! fresh scope for each run, and reading what the script left in them back into JSON.

use rhai::serde::to_dynamic;
use rhai::{Dynamic, Scope};
use serde_json::{Map, Value};

use super::{ScriptError, ScriptErrorKind, ScriptInput, convert};

const BODY: &str = "body";
const HEADERS: &str = "headers";
const META: &str = "meta";

/// Which of the message variables a script's source mentions.
///
/// Converting JSON into rhai values costs time on every run, so a variable the script never
/// names is not converted. The check is textual and errs towards converting: without `eval`
/// or modules, a variable can only be reached through its name written in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Uses {
    pub(super) body: bool,
    pub(super) headers: bool,
    pub(super) meta: bool,
}

impl Uses {
    pub(super) fn scan(source: &str) -> Self {
        Self { body: mentions(source, BODY), headers: mentions(source, HEADERS), meta: mentions(source, META) }
    }
}

/// Whether `word` appears in `source` as a whole identifier (not inside a longer one).
fn mentions(source: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    source.match_indices(word).any(|(start, _)| {
        let before = source[..start].chars().next_back();
        let after = source[start + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// A scope holding the message variables the script uses. `meta` is a constant: it describes
/// the message's journey and is the runtime's to change, not the script's.
pub(super) fn scope_for<'a>(script: &str, uses: Uses, input: &ScriptInput<'_>) -> Result<Scope<'a>, ScriptError> {
    let mut scope = Scope::with_capacity(3);
    if uses.body {
        scope.push_dynamic(BODY, convert::to_rhai(input.body));
    }
    if uses.headers {
        scope.push_dynamic(HEADERS, convert::map_to_rhai(input.headers));
    }
    if uses.meta {
        scope.push_constant_dynamic(META, to_rhai(script, META, input.meta)?);
    }
    for (name, value) in input.vars {
        scope.push_constant_dynamic(*name, convert::to_rhai(value));
    }
    Ok(scope)
}

/// The `body` the script left behind (or the input body, if the script never named it).
pub(super) fn take_body(script: &str, scope: &mut Scope<'_>, input: &Value) -> Result<Value, ScriptError> {
    match scope.remove::<Dynamic>(BODY) {
        Some(body) => to_json(script, BODY, body),
        None => Ok(input.clone()),
    }
}

/// The `headers` the script left behind, if it named them; they must still be an object map.
pub(super) fn take_headers(script: &str, scope: &mut Scope<'_>) -> Result<Option<Map<String, Value>>, ScriptError> {
    let Some(headers) = scope.remove::<Dynamic>(HEADERS) else {
        return Ok(None);
    };
    let type_name = headers.type_name();
    match to_json(script, HEADERS, headers)? {
        Value::Object(map) => Ok(Some(map)),
        _ => Err(ScriptError::new(
            ScriptErrorKind::Runtime,
            script,
            format!("`headers` must be an object map, but the script left a {type_name}"),
        )),
    }
}

/// How deeply values handed back as JSON may nest: as deep as serde_json agrees to parse,
/// and shallow enough that converting them recursively cannot exhaust the native stack.
pub(super) const MAX_JSON_DEPTH: usize = 128;

/// A script's value as JSON; unit `()` becomes `null`.
pub(super) fn to_json(script: &str, what: &str, value: Dynamic) -> Result<Value, ScriptError> {
    convert::to_json(value, 0).map_err(|e| match e {
        convert::Unconvertible::TooDeep => ScriptError::new(
            ScriptErrorKind::Limit,
            script,
            format!("the script's `{what}` is nested deeper than {MAX_JSON_DEPTH} levels"),
        ),
        convert::Unconvertible::Other(reason) => ScriptError::new(
            ScriptErrorKind::Runtime,
            script,
            format!("the script's `{what}` cannot be turned into JSON: {reason}"),
        ),
    })
}

/// Whether arrays and maps in `value` nest more than `levels` deep. Recursion stops at
/// `levels`, so the check itself is safe on any value.
pub(super) fn nested_deeper_than(value: &Dynamic, levels: usize) -> bool {
    if let Ok(array) = value.as_array_ref() {
        levels == 0 || array.iter().any(|item| nested_deeper_than(item, levels - 1))
    } else if let Ok(map) = value.as_map_ref() {
        levels == 0 || map.values().any(|item| nested_deeper_than(item, levels - 1))
    } else {
        false
    }
}

fn to_rhai(script: &str, what: &str, value: impl serde::Serialize) -> Result<Dynamic, ScriptError> {
    to_dynamic(value).map_err(|err| {
        ScriptError::new(ScriptErrorKind::Runtime, script, format!("`{what}` cannot be given to the script: {err}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_nesting_without_recursing_past_the_limit() {
        let mut value = Dynamic::from(1_i64);
        for _ in 0..3 {
            value = Dynamic::from_array(vec![value]);
        }
        assert!(!nested_deeper_than(&value, 3));
        assert!(nested_deeper_than(&value, 2));
        let map: rhai::Map = [("a".into(), value)].into_iter().collect();
        assert!(nested_deeper_than(&Dynamic::from_map(map), 3));
    }

    #[test]
    fn finds_whole_identifiers_only() {
        let uses = Uses::scan("body.amount > 1000 && metadata == 1 && my_headers");
        assert_eq!(uses, Uses { body: true, headers: false, meta: false });
        let uses = Uses::scan("headers.x = meta.route;");
        assert_eq!(uses, Uses { body: false, headers: true, meta: true });
    }
}
