//! Routes compiled from their specs, and the immutable table the runtime serves from.

pub mod compile;
pub mod pipeline;
pub mod spec;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::config::node::Pos;
use crate::connector::{Endpoint, Role};
use crate::schema::Schema;
use compile::CompileCx;
use pipeline::{Pipeline, RetryPolicy};
use spec::{Backoff, RouteSpec, SourceSpec};

/// A route ready to run. Immutable: a reload builds new ones.
pub struct Route {
    pub id: Arc<str>,
    /// A hash of the route file and every file it uses; a reload restarts only routes whose
    /// version changed.
    pub version: String,
    /// The route file, relative to the project.
    pub file: PathBuf,
    pub description: Option<String>,
    pub source: Source,
    pub pipeline: Pipeline,
    pub retry: RetryPolicy,
    pub dead_letter: Option<Arc<dyn Endpoint>>,
    pub max_in_flight: usize,
    /// One permit per message in the route: the bound on in-flight work (back-pressure),
    /// and how a reload knows an old version has drained (all permits back).
    pub permits: Arc<tokio::sync::Semaphore>,
    /// The connectors the route's steps use (`junction graph`).
    pub links: Vec<compile::Link>,
}

pub enum Source {
    Http(HttpSource),
    Schedule(ScheduleSource),
    Bus(BusSource),
}

pub struct HttpSource {
    pub method: http::Method,
    pub path: String,
    pub schema: Option<Schema>,
    pub is_async: bool,
    pub max_body: u64,
    pub timeout: Duration,
    pub pos: Pos,
}

pub struct ScheduleSource {
    pub trigger: Trigger,
    pub body: Value,
}

pub enum Trigger {
    Every(Duration),
    Cron(Box<croner::Cron>),
}

pub struct BusSource {
    pub topic: String,
    pub group: String,
}

/// Defaults for http sources that do not set their own.
#[derive(Debug, Clone, Copy)]
pub struct HttpDefaults {
    pub max_body: u64,
    pub timeout: Duration,
}

const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// Compiles one route file's spec. Errors go to `cx.diags`; `None` when there were any.
pub fn compile(spec: &RouteSpec, text: &str, defaults: HttpDefaults, cx: &mut CompileCx<'_>) -> Option<Route> {
    let source = compile_source(&spec.from.value, Pos::of(&spec.from), defaults, cx);
    let mut steps = Vec::with_capacity(spec.steps.len());
    let mut steps_ok = true;
    for node in &spec.steps {
        match node.parse::<serde_saphyr::Spanned<crate::steps::StepSpec>>() {
            Ok(s) => steps.push(s),
            Err(e) => {
                let file = cx.file.clone();
                cx.diags.push(crate::config::error::Diagnostic::from_node(&file, e));
                steps_ok = false;
            }
        }
    }
    let pipeline = cx.steps(&steps).filter(|_| steps_ok);
    let (retry, dead_letter) = match &spec.on_error {
        None => (RetryPolicy::default(), None),
        Some(on_error) => {
            let retry = match &on_error.value.retry {
                None => RetryPolicy::default(),
                Some(r) => {
                    let d = RetryPolicy::default();
                    RetryPolicy {
                        attempts: r.attempts.max(1),
                        initial: r.initial.map_or(d.initial, |i| i.0),
                        max: r.max.map_or(d.max, |m| m.0),
                        exponential: r.backoff == Backoff::Exponential,
                    }
                }
            };
            let dead_letter = match &on_error.value.dead_letter {
                None => None,
                Some(node) => Some(cx.endpoint(Role::Send, node, &[])?),
            };
            (retry, dead_letter)
        }
    };
    let max_in_flight = spec.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
    if max_in_flight == 0 {
        cx.error(Pos::of(&spec.route), "max_in_flight must be at least 1");
        return None;
    }
    let (source, pipeline) = (source?, pipeline?);
    Some(Route {
        id: Arc::from(spec.route.value.as_str()),
        version: compile::version(text, &cx.inputs),
        file: cx.file.clone(),
        description: spec.description.clone(),
        source,
        pipeline,
        retry,
        dead_letter,
        max_in_flight,
        permits: Arc::new(tokio::sync::Semaphore::new(max_in_flight)),
        links: std::mem::take(&mut cx.links),
    })
}

fn compile_source(spec: &SourceSpec, at: Pos, defaults: HttpDefaults, cx: &mut CompileCx<'_>) -> Option<Source> {
    match spec {
        SourceSpec::Http(h) => {
            let method = match h.method.value.to_ascii_uppercase().as_str() {
                m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE") => http::Method::from_bytes(m.as_bytes()).ok(),
                _ => None,
            };
            let Some(method) = method else {
                cx.error(
                    Pos::of(&h.method),
                    format!("unsupported method `{}`; use GET, POST, PUT, PATCH or DELETE", h.method.value),
                );
                return None;
            };
            if !h.path.value.starts_with('/') {
                cx.error(Pos::of(&h.path), "a path starts with `/`");
                return None;
            }
            if let Some(auth) = &h.auth
                && auth.value != "none"
            {
                cx.error(Pos::of(auth), format!("unknown auth scheme `{}`; only `none` is available yet", auth.value));
                return None;
            }
            let schema = match &h.schema {
                Some(file) => Some(cx.schema(&file.value, Pos::of(file))?),
                None => None,
            };
            Some(Source::Http(HttpSource {
                method,
                path: h.path.value.clone(),
                schema,
                is_async: h.is_async,
                max_body: h.max_body.map_or(defaults.max_body, |b| b.0),
                timeout: h.timeout.map_or(defaults.timeout, |t| t.0),
                pos: Pos::of(&h.path),
            }))
        }
        SourceSpec::Schedule(s) => {
            let trigger = match (&s.every, &s.cron) {
                (Some(every), None) if !every.value.0.is_zero() => Trigger::Every(every.value.0),
                (None, Some(cron)) => match cron.value.parse::<croner::Cron>() {
                    Ok(c) => Trigger::Cron(Box::new(c)),
                    Err(e) => {
                        cx.error(Pos::of(cron), format!("invalid cron expression: {e}"));
                        return None;
                    }
                },
                _ => {
                    cx.error(at, "a schedule needs exactly one of `every` (above 0) or `cron`");
                    return None;
                }
            };
            let body = s.body.as_ref().map_or_else(|| Value::Object(Default::default()), |b| b.to_json());
            Some(Source::Schedule(ScheduleSource { trigger, body }))
        }
        SourceSpec::Bus(b) => Some(Source::Bus(BusSource {
            topic: b.topic.value.clone(),
            group: b.group.clone().unwrap_or_else(|| cx.route.clone()),
        })),
    }
}

/// Every route of a project, by id. Swapped whole on reload.
#[derive(Default, Clone)]
pub struct RouteTable {
    pub routes: BTreeMap<Arc<str>, Arc<Route>>,
}

impl RouteTable {
    pub fn get(&self, id: &str) -> Option<&Arc<Route>> {
        self.routes.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.values()
    }
}
