//! Personal data kept from the provider. Values named by JSON pointers into the message (`*`
//! for every item of a list or member of an object) and text matching patterns (e-mail
//! addresses, phone numbers, or a regular expression of one's own) are replaced with
//! placeholders, `[PII_1]`, `[PII_2]`, …, before a prompt leaves, and put back into the answer.
//! What reaches the log and the dead letter (the prompt, the model's answer, the errors sent
//! back for repair) is the masked text.
//!
//! ```yaml
//! private:
//!   pointers: [/deal/inn, /deal/contacts/*/name, /deal/contacts/*/phone]
//!   patterns: [email, phone, 'ИНН\s*\d{10,12}']
//! ```

use std::sync::LazyLock;

use junction_engine::config::node::{Node, NodeError};
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `private:` on the connector or on a step.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PrivateSpec {
    /// JSON pointers into the message body; `*` stands for every item.
    #[serde(default)]
    pointers: Vec<String>,
    /// `email`, `phone`, or a regular expression.
    #[serde(default)]
    patterns: Vec<String>,
}

static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}").expect("the e-mail pattern"));

/// Russian numbers (`+7 …`, `8 …`) and international ones written with their `+`.
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\+\d{1,3}|\b8)[\s\-]?\(?\d{3}\)?[\s\-]?\d{3}[\s\-]?\d{2}[\s\-]?\d{2}\b").expect("the phone pattern")
});

/// What is masked in the calls of one step.
#[derive(Debug, Clone, Default)]
pub(super) struct Private {
    pointers: Vec<Vec<String>>,
    patterns: Vec<Regex>,
}

impl Private {
    /// Reads `spec` (written at `node`) and adds it to what is masked already.
    pub(super) fn add(&mut self, spec: PrivateSpec, node: &Node) -> Result<(), NodeError> {
        let at = |key: &str| Some(node.get(key).map_or(node.pos, |n| n.pos));
        for pointer in spec.pointers {
            let Some(rest) = pointer.strip_prefix('/') else {
                return Err(NodeError {
                    message: format!("`{pointer}` is not a JSON pointer: it starts with `/`"),
                    pos: at("pointers"),
                });
            };
            self.pointers.push(rest.split('/').map(|s| s.replace("~1", "/").replace("~0", "~")).collect());
        }
        for pattern in spec.patterns {
            let regex = match pattern.as_str() {
                "email" => EMAIL.clone(),
                "phone" => PHONE.clone(),
                other => Regex::new(other).map_err(|e| NodeError {
                    message: format!("`{other}` is neither `email`, `phone` nor a regular expression: {e}"),
                    pos: at("patterns"),
                })?,
            };
            self.patterns.push(regex);
        }
        Ok(())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pointers.is_empty() && self.patterns.is_empty()
    }

    /// `input` with every value its pointers name replaced by a placeholder.
    pub(super) fn mask_input(&self, input: &Value, masked: &mut Masked) -> Value {
        let mut input = input.clone();
        for pointer in &self.pointers {
            mask_at(&mut input, pointer, masked);
        }
        input
    }

    /// `text` with every value masked so far, and every match of the patterns, replaced.
    pub(super) fn mask_text(&self, text: &str, masked: &mut Masked) -> String {
        let text = masked.hide_known(text);
        // Every pattern's matches, in the order of the text; of two that overlap, the first.
        let mut found: Vec<(usize, usize)> =
            self.patterns.iter().flat_map(|p| p.find_iter(&text).map(|m| (m.start(), m.end()))).collect();
        found.sort_by_key(|&(start, end)| (start, std::cmp::Reverse(end)));
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end) in found {
            if start < at {
                continue;
            }
            out.push_str(&text[at..start]);
            out.push_str(&masked.placeholder(&text[start..end]));
            at = end;
        }
        out.push_str(&text[at..]);
        out
    }
}

fn mask_at(value: &mut Value, path: &[String], masked: &mut Masked) {
    let Some((first, rest)) = path.split_first() else {
        let original = match &*value {
            Value::String(s) => s.clone(),
            Value::Null => return,
            other => other.to_string(),
        };
        if !original.is_empty() {
            *value = Value::String(masked.placeholder(&original));
        }
        return;
    };
    match value {
        Value::Object(members) if first == "*" => members.values_mut().for_each(|v| mask_at(v, rest, masked)),
        Value::Array(items) if first == "*" => items.iter_mut().for_each(|v| mask_at(v, rest, masked)),
        Value::Object(members) => {
            if let Some(v) = members.get_mut(first) {
                mask_at(v, rest, masked);
            }
        }
        Value::Array(items) => {
            if let Some(v) = first.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                mask_at(v, rest, masked);
            }
        }
        _ => {}
    }
}

/// The originals of one call's placeholders: `[PII_n]` stands for `originals[n - 1]`.
#[derive(Debug, Default)]
pub(super) struct Masked {
    originals: Vec<String>,
}

/// Values shorter than this are not searched for in free text (a `5` would be found inside
/// every amount); they are masked where a pointer names them only.
const SHORTEST_SEARCHED: usize = 3;

impl Masked {
    /// Placeholders that go on from `originals` (a session's earlier turns).
    pub(super) fn with(originals: Vec<String>) -> Self {
        Self { originals }
    }

    pub(super) fn originals(&self) -> &[String] {
        &self.originals
    }

    fn placeholder(&mut self, original: &str) -> String {
        let n = match self.originals.iter().position(|o| o == original) {
            Some(i) => i + 1,
            None => {
                self.originals.push(original.to_owned());
                self.originals.len()
            }
        };
        format!("[PII_{n}]")
    }

    /// `text` with every original replaced by its placeholder, the longest first (one
    /// original may hold another), also where it is written as inside a JSON string (an error
    /// quoting `ООО \"Ромашка\"`).
    pub(super) fn hide_known(&self, text: &str) -> String {
        let mut forms: Vec<(String, usize)> = Vec::new();
        for (i, original) in self.originals.iter().enumerate() {
            if original.chars().count() < SHORTEST_SEARCHED {
                continue;
            }
            forms.push((original.clone(), i));
            let escaped = serde_json::to_string(original).unwrap_or_default();
            let escaped = escaped.trim_matches('"');
            if escaped != original {
                forms.push((escaped.to_owned(), i));
            }
        }
        forms.sort_by_key(|(form, _)| std::cmp::Reverse(form.len()));
        let mut text = text.to_owned();
        for (form, i) in forms {
            text = text.replace(&form, &format!("[PII_{}]", i + 1));
        }
        text
    }

    /// `text` with its placeholders replaced by their originals.
    pub(super) fn restore(&self, text: &str) -> String {
        let mut text = text.to_owned();
        // The highest first: `[PII_1]` is not a prefix of `[PII_12]`, but keep the order plain.
        for (i, original) in self.originals.iter().enumerate().rev() {
            text = text.replace(&format!("[PII_{}]", i + 1), original);
        }
        text
    }

    /// Every string in `value` restored.
    pub(super) fn restore_value(&self, value: &mut Value) {
        match value {
            Value::String(s) if s.contains("[PII_") => *s = self.restore(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.restore_value(v)),
            Value::Object(members) => members.values_mut().for_each(|v| self.restore_value(v)),
            _ => {}
        }
    }

    /// A digest of the originals, for keys that must tell two calls apart whose masked
    /// prompts are the same (the cache).
    pub(super) fn digest(&self) -> Option<String> {
        (!self.originals.is_empty()).then(|| hex::encode(Sha256::digest(self.originals.join("\u{1f}").as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn private(pointers: &[&str], patterns: &[&str]) -> Private {
        let spec = PrivateSpec {
            pointers: pointers.iter().map(|s| (*s).to_owned()).collect(),
            patterns: patterns.iter().map(|s| (*s).to_owned()).collect(),
        };
        let node = Node {
            pos: junction_engine::config::node::Pos::default(),
            value: junction_engine::config::node::NodeValue::Null,
        };
        let mut p = Private::default();
        p.add(spec, &node).expect("valid");
        p
    }

    #[test]
    fn values_and_patterns_are_masked_and_restored() {
        let p = private(&["/deal/inn", "/deal/contacts/*/name"], &["email", "phone"]);
        let input = json!({ "deal": { "inn": "7707083893", "budget": "1500000.00",
            "contacts": [{ "name": "Анна Петрова" }, { "name": "Иван Сидоров" }] } });
        let mut m = Masked::default();
        let masked = p.mask_input(&input, &mut m);
        assert_eq!(masked["deal"]["inn"], "[PII_1]");
        assert_eq!(masked["deal"]["contacts"][1]["name"], "[PII_3]");
        assert_eq!(masked["deal"]["budget"], "1500000.00", "what is not named stays");
        let text = p.mask_text(
            "Звонить Анна Петрова: +7 (916) 123-45-67 или 8 916 765 43 21, anna@client.ru; бюджет 1500000.00",
            &mut m,
        );
        assert_eq!(text, "Звонить [PII_2]: [PII_4] или [PII_5], [PII_6]; бюджет 1500000.00");
        let mut answer = json!({ "contact": "[PII_2] ([PII_6])", "lines": ["[PII_1]"] });
        m.restore_value(&mut answer);
        assert_eq!(answer, json!({ "contact": "Анна Петрова (anna@client.ru)", "lines": ["7707083893"] }));
    }

    #[test]
    fn a_bad_pointer_or_pattern_is_refused() {
        let node = Node {
            pos: junction_engine::config::node::Pos::default(),
            value: junction_engine::config::node::NodeValue::Null,
        };
        let bad = PrivateSpec { pointers: vec!["deal/inn".into()], patterns: vec![] };
        assert!(Private::default().add(bad, &node).is_err());
        let bad = PrivateSpec { pointers: vec![], patterns: vec!["(".into()] };
        assert!(Private::default().add(bad, &node).is_err());
    }
}
