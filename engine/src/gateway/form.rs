//! `application/x-www-form-urlencoded` bodies as JSON, with PHP-style nested keys as webhooks
//! send them (amoCRM: `leads[status][0][id]=42&account[subdomain]=example`): brackets nest,
//! a level whose keys are all indexes becomes an array (in index order), every value is a
//! string (a form has no types; a transform converts what it needs). A repeated key keeps its
//! last value, as PHP does.

use serde_json::{Map, Value};

use super::handler::percent_decode;

/// How deep brackets may nest before the rest of a key is taken as one name.
const MAX_DEPTH: usize = 32;

pub(super) fn nested(body: &[u8]) -> Value {
    let text = String::from_utf8_lossy(body);
    let mut root = Map::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (percent_decode(key), percent_decode(value));
        insert(&mut root, &path_of(&key), Value::String(value));
    }
    arrays(Value::Object(root))
}

/// `a[b][0]` → `["a", "b", "0"]`; a key without brackets, or with broken ones, is one name.
fn path_of(key: &str) -> Vec<String> {
    let Some(open) = key.find('[').filter(|i| *i > 0) else { return vec![key.to_owned()] };
    let mut path = vec![key[..open].to_owned()];
    let mut rest = &key[open..];
    while let Some(inner) = rest.strip_prefix('[') {
        let Some(close) = inner.find(']') else { return vec![key.to_owned()] };
        if path.len() == MAX_DEPTH {
            return vec![key.to_owned()];
        }
        path.push(inner[..close].to_owned());
        rest = &inner[close + 1..];
    }
    if rest.is_empty() { path } else { vec![key.to_owned()] }
}

fn insert(map: &mut Map<String, Value>, path: &[String], value: Value) {
    let Some((first, rest)) = path.split_first() else { return };
    if rest.is_empty() {
        map.insert(first.clone(), value);
        return;
    }
    let child = map.entry(first.clone()).or_insert_with(|| Value::Object(Map::new()));
    if !child.is_object() {
        *child = Value::Object(Map::new());
    }
    if let Value::Object(child) = child {
        let mut rest: Vec<String> = rest.to_vec();
        // `a[]=x&a[]=y`: an empty index appends after the highest one, as PHP does.
        if rest[0].is_empty() {
            rest[0] = next_index(child).to_string();
        }
        insert(child, &rest, value);
    }
}

fn next_index(map: &Map<String, Value>) -> usize {
    map.keys().filter_map(|k| k.parse::<usize>().ok()).max().map_or(0, |i| i + 1)
}

/// Objects whose keys are exactly the indexes 0 to n-1 become arrays; others (`x[5]=a`) stay
/// objects, keeping their keys.
fn arrays(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let indexed: Option<Vec<(usize, Value)>> =
                map.iter().map(|(k, v)| k.parse::<usize>().ok().map(|i| (i, v.clone()))).collect();
            let contiguous = |items: &[(usize, Value)]| {
                let mut seen: Vec<usize> = items.iter().map(|(i, _)| *i).collect();
                seen.sort_unstable();
                seen.iter().enumerate().all(|(n, i)| n == *i)
            };
            match indexed {
                Some(mut items) if !items.is_empty() && contiguous(&items) => {
                    items.sort_by_key(|(i, _)| *i);
                    Value::Array(items.into_iter().map(|(_, v)| arrays(v)).collect())
                }
                _ => Value::Object(map.into_iter().map(|(k, v)| (k, arrays(v))).collect()),
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// amoCRM's "lead status changed" webhook, as
    /// https://www.amocrm.ru/developers/content/crm_platform/webhooks-format shows its keys.
    #[test]
    fn an_amocrm_webhook_nests_as_its_keys_say() {
        let body = "leads%5Bstatus%5D%5B0%5D%5Bid%5D=25399013&leads%5Bstatus%5D%5B0%5D%5Bstatus_id%5D=142\
                    &leads%5Bstatus%5D%5B0%5D%5Bpipeline_id%5D=3177727&leads%5Bstatus%5D%5B0%5D%5Bold_status_id%5D=142\
                    &account%5Bid%5D=29085955&account%5Bsubdomain%5D=example\
                    &account%5B_links%5D%5Bself%5D=https%3A%2F%2Fexample.amocrm.ru";
        assert_eq!(
            nested(body.as_bytes()),
            json!({
                "leads": { "status": [{ "id": "25399013", "status_id": "142", "pipeline_id": "3177727", "old_status_id": "142" }] },
                "account": { "id": "29085955", "subdomain": "example", "_links": { "self": "https://example.amocrm.ru" } },
            })
        );
    }

    #[test]
    fn plain_keys_appends_and_broken_brackets() {
        assert_eq!(nested(b"a=1&b=two+words&c"), json!({ "a": "1", "b": "two words", "c": "" }));
        assert_eq!(nested(b"x[]=1&x[]=2"), json!({ "x": ["1", "2"] }));
        assert_eq!(nested(b"x[1]=b&x[2]=c&x[0]=a"), json!({ "x": ["a", "b", "c"] }));
        assert_eq!(nested(b"x[1]=a&x[]=b"), json!({ "x": { "1": "a", "2": "b" } }), "appends after the highest");
        assert_eq!(nested(b"x[5]=a"), json!({ "x": { "5": "a" } }), "sparse indexes keep their keys");
        assert_eq!(nested(b"a[b=1&[c]=2"), json!({ "a[b": "1", "[c]": "2" }));
        assert_eq!(nested(b"a=1&a[b]=2"), json!({ "a": { "b": "2" } }), "a name that nests later wins");
    }
}
