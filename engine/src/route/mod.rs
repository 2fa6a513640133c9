//! Routes compiled from their specs, and the immutable table the runtime serves from.

pub mod compile;
pub mod counters;
pub mod pipeline;
pub mod spec;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::config::error::suggest;
use crate::config::node::Node;
use crate::config::node::Pos;
use crate::connector::{Consumer, Endpoint, Role};
use crate::gateway::auth::Authenticator;
use crate::gateway::cors::Cors;
use crate::schema::Schema;
use compile::CompileCx;
use pipeline::{Pipeline, RetryPolicy};
use serde_saphyr::Spanned;
use spec::{Backoff, HttpSourceSpec, LimitPer, RateLimitSpec, RouteSpec, SourceSpec};

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
    /// The limits and breakers of the connectors its steps call.
    pub guards: Vec<Arc<crate::connector::Guard>>,
    /// Messages received, completed and dead-lettered by this version.
    pub counters: counters::RouteCounters,
    /// What is recorded of each message's steps, and where.
    pub provenance: crate::provenance::RouteProvenance,
    /// The route's Prometheus series, registered once per compile.
    pub metrics: crate::telemetry::RouteMetrics,
}

pub enum Source {
    Http(HttpSource),
    Schedule(ScheduleSource),
    /// A connector's consumer: `from: { connector: X, … }`, and `from: { bus: … }` (the `bus`
    /// connector's).
    Connector(ConnectorSource),
}

pub struct ConnectorSource {
    /// The connector's name as the route wrote it (`bus` for `from: { bus: … }`).
    pub connector: String,
    pub consumer: Arc<dyn Consumer>,
}

/// The topic an `async: true` http route stores its accepted requests on.
pub fn http_topic(route: &str) -> String {
    format!("junction.http.{route}")
}

impl Route {
    /// How the route is fed, in a few words: `http POST /deals (async)`, `schedule`,
    /// `topics deals (bus)` (`junction routes` and the console show it).
    pub fn source_summary(&self) -> String {
        match &self.source {
            Source::Http(h) => format!("http {} {}{}", h.method, h.path, if h.is_async { " (async)" } else { "" }),
            Source::Schedule(_) => "schedule".to_owned(),
            Source::Connector(c) => format!("{} ({})", c.consumer.describe(), c.connector),
        }
    }

    /// Messages in the route now, from any source.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight - self.permits.available_permits().min(self.max_in_flight)
    }

    /// The names of the connectors this route uses: its source's and its steps'.
    pub fn connectors(&self) -> impl Iterator<Item = &str> {
        let source = match &self.source {
            Source::Connector(c) => Some(c.connector.as_str()),
            Source::Http(h) if h.is_async => Some("bus"),
            Source::Http(_) | Source::Schedule(_) => None,
        };
        source.into_iter().chain(self.links.iter().map(|l| l.connector.as_str()))
    }

    /// What reads this route's messages from outside, if anything does: its connector's
    /// consumer, or the bus queue of an async http route.
    pub fn consumer(&self) -> Option<&Arc<dyn Consumer>> {
        match &self.source {
            Source::Connector(c) => Some(&c.consumer),
            Source::Http(h) => h.queue.as_ref(),
            Source::Schedule(_) => None,
        }
    }
}

pub struct HttpSource {
    pub method: http::Method,
    pub path: String,
    /// The scheme callers authenticate with; `None` for `auth: none`.
    pub auth: Option<Arc<Authenticator>>,
    /// The scheme's name as written, or `none`.
    pub auth_name: String,
    pub rate_limit: Option<RateLimit>,
    pub cors: Option<Arc<Cors>>,
    pub schema: Option<Schema>,
    pub is_async: bool,
    /// An async route's consumer of its own bus topic ([`http_topic`]).
    pub queue: Option<Arc<dyn Consumer>>,
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

/// A compiled `rate_limit:`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
    pub per: LimitPer,
}

/// What http sources share: defaults for what they leave out, and the project's auth schemes.
#[derive(Clone)]
pub struct HttpDefaults {
    pub max_body: u64,
    pub timeout: Duration,
    pub auth: BTreeMap<String, Arc<Authenticator>>,
    /// Schemes that failed to load (already reported): routes naming them add no error.
    pub broken_auth: std::collections::BTreeSet<String>,
}

const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// Compiles one route file's spec. Errors go to `cx.diags`; `None` when there were any.
pub fn compile(spec: &RouteSpec, text: &str, defaults: &HttpDefaults, cx: &mut CompileCx<'_>) -> Option<Route> {
    let source = compile_source(&spec.from, defaults, cx);
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
    let key = spec.provenance.as_ref().and_then(|p| p.key.as_ref());
    let key_path = key.map(|k| crate::provenance::KeyPath::parse(&k.value));
    if let (Some(k), Some(None)) = (key, &key_path) {
        cx.error(Pos::of(k), "a provenance key is `body.<field>[.<field>…]` or `headers.<name>`");
        return None;
    }
    let provenance = crate::provenance::RouteProvenance {
        record: spec.provenance.as_ref().is_some_and(|p| p.record),
        key: key_path.flatten(),
        recorder: cx.build.resources.provenance.clone(),
    };
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
        guards: std::mem::take(&mut cx.guards),
        counters: Default::default(),
        metrics: crate::telemetry::RouteMetrics::new(&spec.route.value),
        provenance,
    })
}

fn compile_source(from: &Node, defaults: &HttpDefaults, cx: &mut CompileCx<'_>) -> Option<Source> {
    let at = from.pos;
    if from.get("connector").is_some() {
        let (connector, consumer) = cx.consumer(from)?;
        return Some(Source::Connector(ConnectorSource { connector, consumer }));
    }
    let spec: SourceSpec = match from.parse() {
        Ok(s) => s,
        Err(e) => return cx.node_error(e),
    };
    match &spec {
        SourceSpec::Http(h) => compile_http(h, at, defaults, cx).map(Source::Http),
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
        SourceSpec::Bus(options) => {
            let consumer = cx.bus_consumer(options)?;
            Some(Source::Connector(ConnectorSource { connector: "bus".into(), consumer }))
        }
    }
}

fn compile_http(h: &HttpSourceSpec, at: Pos, defaults: &HttpDefaults, cx: &mut CompileCx<'_>) -> Option<HttpSource> {
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
    let (auth, auth_name) = compile_auth(h, at, defaults, cx)?;
    let rate_limit = match h.rate_limit.as_ref().map(compile_rate_limit).transpose() {
        Ok(r) => r,
        Err((pos, message)) => {
            cx.error(pos, message);
            return None;
        }
    };
    let cors = match &h.cors {
        None => None,
        Some(c) => match Cors::new(c, &method, auth.as_deref().map(Authenticator::header)) {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                cx.error(at, e.to_string());
                return None;
            }
        },
    };
    let schema = match &h.schema {
        Some(file) => Some(cx.schema(&file.value, Pos::of(file))?),
        None => None,
    };
    let queue = match h.is_async {
        true => Some(cx.bus()?.consumer(vec![http_topic(&cx.route)], cx.route.clone())),
        false => None,
    };
    Some(HttpSource {
        method,
        path: h.path.value.clone(),
        auth,
        auth_name,
        rate_limit,
        cors,
        schema,
        is_async: h.is_async,
        queue,
        max_body: h.max_body.map_or(defaults.max_body, |b| b.0),
        timeout: h.timeout.map_or(defaults.timeout, |t| t.0),
        pos: Pos::of(&h.path),
    })
}

/// `rate_limit:` checked: a rate above 0, a burst of at least one request.
pub(crate) fn compile_rate_limit(r: &Spanned<RateLimitSpec>) -> Result<RateLimit, (Pos, String)> {
    if !(r.value.per_second.is_finite() && r.value.per_second > 0.0) {
        return Err((Pos::of(r), "`per_second` must be above 0".into()));
    }
    // A burst below one request could never let anything through.
    let burst = r.value.burst.unwrap_or(r.value.per_second.ceil() as u32).max(1);
    Ok(RateLimit { per_second: r.value.per_second, burst, per: r.value.per })
}

/// Deny by default: an endpoint names its scheme, or says `none`.
fn compile_auth(
    h: &HttpSourceSpec,
    at: Pos,
    defaults: &HttpDefaults,
    cx: &mut CompileCx<'_>,
) -> Option<(Option<Arc<Authenticator>>, String)> {
    match resolve_auth(h.auth.as_ref(), at, defaults) {
        Ok(found) => Some(found),
        Err(Some((pos, message))) => {
            cx.error(pos, message);
            None
        }
        Err(None) => None,
    }
}

/// A config error and where it is.
pub(crate) type PosError = (Pos, String);

/// The scheme an endpoint names (or `none`). `Err(None)`: the scheme itself failed to load,
/// which was reported already.
pub(crate) fn resolve_auth(
    name: Option<&Spanned<String>>,
    at: Pos,
    defaults: &HttpDefaults,
) -> Result<(Option<Arc<Authenticator>>, String), Option<PosError>> {
    let Some(name) = name else {
        return Err(Some((
            at,
            "an http endpoint needs `auth:`: the name of a scheme from junction.yaml's `auth:` section, or `none` to leave it open".into(),
        )));
    };
    if name.value == "none" {
        return Ok((None, "none".into()));
    }
    match defaults.auth.get(&name.value) {
        Some(a) => Ok((Some(a.clone()), name.value.clone())),
        None if defaults.broken_auth.contains(&name.value) => Err(None),
        None => {
            let mut known: Vec<&str> =
                defaults.auth.keys().chain(defaults.broken_auth.iter()).map(String::as_str).collect();
            known.sort_unstable();
            let hint = suggest(&name.value, known.iter().copied().chain(["none"]))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            let known =
                if known.is_empty() { "none are defined".to_owned() } else { format!("defined: {}", known.join(", ")) };
            Err(Some((Pos::of(name), format!("unknown auth scheme `{}`{hint}; {known}", name.value))))
        }
    }
}

/// Every route of a project, by id. Swapped whole on reload.
#[derive(Default, Clone)]
pub struct RouteTable {
    pub routes: BTreeMap<Arc<str>, Arc<Route>>,
    /// The HTTP APIs connectors serve (`api:` on a connector), asked when no route matches.
    pub mounts: Vec<Arc<crate::gateway::Mount>>,
}

impl RouteTable {
    pub fn get(&self, id: &str) -> Option<&Arc<Route>> {
        self.routes.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.values()
    }
}
