//! `junction graph`: the project as a Mermaid flowchart — endpoints, schedules and topics
//! feeding routes, and routes feeding connectors and topics.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::connector::Role;
use crate::route::{RouteTable, Source, Trigger};

/// Renders the routes as a Mermaid `flowchart LR`. Routes in folders of their own
/// (`routes/gateway/`, `routes/worker/`) are drawn grouped, one subgraph per folder.
pub fn mermaid(table: &RouteTable) -> String {
    let mut out = String::from("flowchart LR\n");
    let mut nodes = BTreeSet::new();
    let mut edges = Vec::new();
    // Route nodes by the folder of their file.
    let mut folders: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for route in table.iter() {
        let r = id("route", &route.id);
        let folder = route.file.parent().map(|p| p.display().to_string()).unwrap_or_default();
        folders.entry(folder).or_default().push(format!("{r}[[\"{}\"]]", escape(&route.id)));
        let (source, label) = match &route.source {
            Source::Http(h) => {
                (id("http", &format!("{} {}", h.method, h.path)), format!("([\"{} {}\"])", h.method, escape(&h.path)))
            }
            Source::Schedule(s) => {
                let when = match &s.trigger {
                    Trigger::Every(d) => format!("every {}ms", d.as_millis()),
                    Trigger::Cron(c) => format!("cron {}", c.as_str()),
                };
                (id("schedule", &route.id), format!("{{{{\"{}\"}}}}", escape(&when)))
            }
            Source::Connector(c) => {
                // A consumer of topics is drawn from each topic; any other from its connector.
                let topics: Vec<String> = c.consumer.groups().into_iter().map(|(topic, _)| topic).collect();
                if topics.is_empty() {
                    (id("connector", &c.connector), format!("[(\"{}\")]", escape(&c.connector)))
                } else {
                    for topic in &topics[1..] {
                        let t = id("topic", topic);
                        nodes.insert(format!("  {t}[/\"topic {}\"/]", escape(topic)));
                        edges.push(format!("  {t} --> {r}"));
                    }
                    (id("topic", &topics[0]), format!("[/\"topic {}\"/]", escape(&topics[0])))
                }
            }
        };
        nodes.insert(format!("  {source}{label}"));
        edges.push(format!("  {source} --> {r}"));
        for link in &route.links {
            let (target, shape) = match link.target.strip_prefix("topic ") {
                Some(topic) => (id("topic", topic), format!("[/\"topic {}\"/]", escape(topic))),
                None => (id("connector", &link.connector), format!("[(\"{}\")]", escape(&link.connector))),
            };
            nodes.insert(format!("  {target}{shape}"));
            let arrow = match link.role {
                Role::Send => "-->",
                Role::Request => "<-->",
            };
            edges.push(format!("  {r} {arrow}|\"{}\"| {target}", escape(&link.target)));
        }
    }
    if folders.len() > 1 {
        for (folder, routes) in &folders {
            let _ = writeln!(out, "  subgraph {}[\"{}\"]", id("folder", folder), escape(folder));
            for r in routes {
                let _ = writeln!(out, "    {r}");
            }
            let _ = writeln!(out, "  end");
        }
    } else {
        nodes.extend(folders.into_values().flatten().map(|r| format!("  {r}")));
    }
    for n in nodes {
        let _ = writeln!(out, "{n}");
    }
    for e in edges {
        let _ = writeln!(out, "{e}");
    }
    out
}

/// A Mermaid node id: letters, digits and underscores only.
fn id(prefix: &str, name: &str) -> String {
    let clean: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("{prefix}_{clean}")
}

fn escape(text: &str) -> String {
    text.replace('"', "#quot;")
}
