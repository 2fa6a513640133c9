//! Loads a project directory; collects every error before giving up.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_saphyr::Options;

use super::error::{Diagnostic, Diagnostics, suggest};
use super::node::{Node, NodeValue, Pos};
use super::root::RootSpec;
use super::{Project, Settings};
use crate::connector::{BuildCx, Connector, Registry, Resources};
use crate::gateway::Mount;
use crate::gateway::auth::{Authenticator, SchemeSpec};
use crate::gateway::cors::Cors;
use crate::route::compile::{CompileCx, Connectors, ProjectPaths};
use crate::route::spec::{ApiSpec, RouteSpec};
use crate::route::{self, HttpDefaults, RouteTable, Source};
use crate::script::ScriptEngine;

/// Replaces connectors after they are built (route tests swap in recorders).
pub type Intercept = Arc<dyn Fn(&str, Arc<dyn Connector>) -> Arc<dyn Connector> + Send + Sync>;

/// What loading needs from the process: connector kinds, shared resources, the environment.
pub struct Loader {
    pub registry: Registry,
    pub resources: Resources,
    pub env: HashMap<String, String>,
    pub scripts: Arc<ScriptEngine>,
    pub intercept: Option<Intercept>,
}

/// Reads YAML into `T` (duplicate keys are errors).
pub fn parse_yaml<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, Diagnostic> {
    let mut options = Options::default();
    options.with_snippet = false;
    // YAML 1.2 booleans only: `N`, `no`, `off` stay strings (the "Norway problem").
    options.strict_booleans = true;
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let pos = e.location().map(|l| Pos { line: l.line() as u32, col: l.column() as u32 });
        Diagnostic::new(file, pos, super::error::with_suggestion(&plain_message(&e)))
    })
}

/// serde-saphyr's message without the position it also prints (we print our own).
fn plain_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let text = text.trim();
    let text = text.rfind(" at line ").map_or(text, |i| &text[..i]);
    // Advice meant for the programmer embedding the parser, not for the config's author.
    let text = text.split(", set DuplicateKeyPolicy").next().unwrap_or(text);
    match text {
        "invalid u8" | "invalid u16" | "invalid u32" | "invalid u64" | "invalid usize" => {
            "expected a whole number, 0 or more".to_owned()
        }
        "invalid i8" | "invalid i16" | "invalid i32" | "invalid i64" | "invalid isize" => {
            "expected a whole number".to_owned()
        }
        "invalid f32" | "invalid f64" => "expected a number".to_owned(),
        "invalid bool" => "expected true or false".to_owned(),
        other => other.to_owned(),
    }
}

/// Connectors a running project has started, by name, with the version each was built from:
/// a reload keeps those whose options did not change.
pub type LiveConnectors = BTreeMap<String, (String, Arc<dyn Connector>)>;

/// A short hash of a text: a connector's or the root config's version.
fn version_of(text: &str) -> String {
    crate::route::compile::version(text, &[])
}

/// Option names whose values are secrets, wherever they stand in a connector's options;
/// `value` only under `api_key`.
const SECRET_OPTIONS: [&str; 9] = [
    "password",
    "client_secret",
    "secret",
    "token",
    "refresh_token",
    "long_lived_token",
    "bearer",
    "api_key",
    "iam_token",
];

/// Refuses a secret written into the file: a connector's secrets come from the environment
/// (`${VAR}`), so the file can be committed, reviewed and shown without them.
fn literal_secrets(node: &Node, parent: Option<&str>, file: &Path, diags: &mut Diagnostics) {
    match &node.value {
        // A table's columns name data (a column may be called `token`), not options.
        NodeValue::Map(_) if parent == Some("columns") => {}
        NodeValue::Map(entries) => {
            for (key, value) in entries {
                let secret =
                    SECRET_OPTIONS.contains(&key.name.as_str()) || (key.name == "value" && parent == Some("api_key"));
                match value.as_str() {
                    Some(text) if secret && !text.is_empty() && !text.contains("${") => diags.push(Diagnostic::new(
                        file,
                        Some(value.pos),
                        format!(
                            "`{}` is a secret: give it from the environment, as `${{VAR}}`, not written in the file",
                            key.name
                        ),
                    )),
                    _ => literal_secrets(value, Some(&key.name), file, diags),
                }
            }
        }
        NodeValue::Seq(items) => items.iter().for_each(|n| literal_secrets(n, parent, file, diags)),
        _ => {}
    }
}

impl Loader {
    pub fn load(&self, dir: &Path) -> Result<Project, Diagnostics> {
        self.load_reusing(dir, &LiveConnectors::new())
    }

    /// Loads `dir`, keeping the connectors of `live` whose options are unchanged.
    pub fn load_reusing(&self, dir: &Path, live: &LiveConnectors) -> Result<Project, Diagnostics> {
        let paths = ProjectPaths::new(dir);
        let root_file = dir.join("junction.yaml");
        let shown_root = paths.display(&root_file);
        let text = std::fs::read_to_string(&root_file)
            .map_err(|e| Diagnostic::new(&shown_root, None, format!("cannot read the project's root config: {e}")))?;

        let mut diags = Diagnostics::default();
        let mut root: Node = parse_yaml(&shown_root, &text)?;
        if let Some(connectors) = root.get("connectors") {
            literal_secrets(connectors, None, &shown_root, &mut diags);
        }
        let mut unset = Vec::new();
        super::env::substitute(&mut root, &self.env, &mut unset);
        for u in unset {
            diags.push(Diagnostic::new(
                &shown_root,
                Some(u.pos),
                format!(
                    "environment variable `{}` is not set and has no default (write ${{{}:-default}})",
                    u.name, u.name
                ),
            ));
        }
        report_unknown_keys::<RootSpec>(&mut root, &shown_root, &mut diags);
        // Connectors have versions of their own: a change to one rebuilds the routes using it.
        let root_version = version_of(&root.without(&["connectors"]).to_json().to_string());
        let spec: RootSpec = match root.parse() {
            Ok(s) => s,
            Err(e) => {
                diags.push(Diagnostic::from_node(&shown_root, e));
                return Err(diags.into_result(()).expect_err("an error was just pushed"));
            }
        };
        let settings = self.settings(&paths, &spec, &shown_root, &mut diags);
        let redact = crate::redact::Redact::new(&spec.logging.redact);
        let build =
            BuildCx { scripts: &self.scripts, resources: &self.resources, redact: &redact, dir, endpoints: None };
        let (auth, broken_auth) = auth_schemes(&paths, &spec, &shown_root, &mut diags);
        let defaults = HttpDefaults {
            max_body: spec.gateway.max_body.map_or(1 << 20, |b| b.0),
            timeout: spec.gateway.timeout.map_or(Duration::from_secs(30), |t| t.0),
            auth,
            broken_auth,
        };
        let (connectors, connector_versions, mounts) =
            self.connectors(&spec, &settings, &shown_root, &build, &defaults, live, &mut diags);
        let files = route_files(&paths, &spec, &shown_root, &mut diags);
        let mut routes = self.routes(&paths, &files, &connectors, &build, &defaults, &mut diags);
        routes.mounts = mounts;
        diags.into_result(Project {
            paths,
            settings,
            routes,
            connectors,
            connector_versions,
            root_version,
            scripts: self.scripts.clone(),
        })
    }

    fn settings(&self, paths: &ProjectPaths, spec: &RootSpec, file: &Path, diags: &mut Diagnostics) -> Settings {
        // A setting the file leaves out comes from the environment, then the built-in default.
        let or_env = |value: &serde_saphyr::Spanned<String>, var: &str| -> String {
            match self.env.get(var) {
                Some(v) if !Pos::of(value).is_known() => v.clone(),
                _ => value.value.clone(),
            }
        };
        let store = &or_env(&spec.store, "JUNCTION_STORE");
        let store = if let Some(rest) = store.strip_prefix("sqlite://") {
            let p = Path::new(rest);
            if p.is_absolute() { store.clone() } else { format!("sqlite://{}", paths.root.join(p).display()) }
        } else if store.starts_with("postgres://") || store.starts_with("postgresql://") || store.contains("${") {
            store.clone()
        } else {
            diags.push(Diagnostic::new(
                file,
                Some(Pos::of(&spec.store)),
                format!("unknown store `{store}`; use sqlite://PATH or postgres://…"),
            ));
            store.clone()
        };
        let cache = or_env(&spec.cache, "JUNCTION_CACHE");
        if !crate::cache::Cache::names_one(&cache) {
            diags.push(Diagnostic::new(
                file,
                Some(Pos::of(&spec.cache)),
                format!(
                    "unknown cache `{}`; use `memory`, redis://host:6379 or redis+cluster://host:7000,host:7001",
                    crate::redact::url(&cache)
                ),
            ));
        }
        let bus = or_env(&spec.bus, "JUNCTION_BUS");
        self.check_bus(&bus, spec, file, diags);
        Settings {
            listen: or_env(&spec.listen, "JUNCTION_LISTEN"),
            store,
            cache,
            bus,
            bus_retention: spec.bus_retention.as_ref().map_or(crate::bus::DEFAULT_RETENTION, |d| d.value.0),
            bus_max_backlog: spec.bus_max_backlog.as_ref().map_or(crate::bus::DEFAULT_MAX_BACKLOG, |m| m.value),
            shutdown_timeout: spec.shutdown_timeout.map_or(Duration::from_secs(30), |d| d.0),
            audit_mode: spec.audit.http,
            audit_retention: spec.audit.retention.map(|d| d.0),
            redact: spec.logging.redact.clone(),
            admin: spec.admin.as_ref().and_then(|a| {
                if a.token.value.len() < 12 {
                    diags.push(Diagnostic::new(
                        file,
                        Some(Pos::of(&a.token)),
                        "the admin token must be 12 characters or more",
                    ));
                    return None;
                }
                let listen = self.env.get("JUNCTION_ADMIN_LISTEN").cloned().unwrap_or_else(|| a.listen.value.clone());
                let mut users: Vec<super::ConsoleUser> = Vec::new();
                for u in &a.users {
                    if users.iter().any(|seen| seen.name == u.name.value) {
                        diags.push(Diagnostic::new(
                            file,
                            Some(Pos::of(&u.name)),
                            format!("console user `{}` is listed twice", u.name.value),
                        ));
                    } else if let Err(why) = super::password::check_hash(&u.password_hash.value) {
                        diags.push(Diagnostic::new(file, Some(Pos::of(&u.password_hash)), why.to_string()));
                    } else {
                        users.push(super::ConsoleUser {
                            name: u.name.value.clone(),
                            password_hash: u.password_hash.value.clone(),
                            role: u.role,
                        });
                    }
                }
                Some(super::AdminSettings { listen, token: a.token.value.clone(), users, behind_tls: a.behind_tls })
            }),
            watch: spec.reload.watch,
            max_connections: match &spec.gateway.max_connections {
                Some(m) if m.value == 0 => {
                    diags.push(Diagnostic::new(
                        file,
                        Some(Pos::of(m)),
                        "gateway max_connections is 0, so no client could connect: allow at least 1",
                    ));
                    super::DEFAULT_MAX_CONNECTIONS
                }
                Some(m) => m.value,
                None => super::DEFAULT_MAX_CONNECTIONS,
            },
            idle_timeout: spec.gateway.idle_timeout.map_or(Duration::from_secs(30), |d| d.0),
            tls: spec.gateway.tls.as_ref().and_then(|t| {
                let (cert, key) = (paths.root.join(&t.cert.value), paths.root.join(&t.key.value));
                match crate::gateway::tls::acceptor(&cert, &key) {
                    Ok(_) => Some((cert, key)),
                    Err(e) => {
                        diags.push(Diagnostic::new(file, Some(Pos::of(&t.cert)), e.to_string()));
                        None
                    }
                }
            }),
            tracing: self.tracing(spec, file, diags),
        }
    }

    /// `bus:` is `embedded`, a URL of a known scheme, or a connector's name (checked with
    /// the connectors); the embedded bus's own settings only go with it.
    fn check_bus(&self, bus: &str, spec: &RootSpec, file: &Path, diags: &mut Diagnostics) {
        let at = Some(Pos::of(&spec.bus));
        if let Some((scheme, _)) = bus.split_once("://")
            && self.registry.by_scheme(scheme).is_none()
        {
            let known: Vec<&str> = self.registry.schemes().collect();
            let known = if known.is_empty() { "none in this build".to_owned() } else { known.join(", ") };
            diags.push(Diagnostic::new(
                file,
                at,
                format!("no connector kind takes `{scheme}://` URLs (known: {known}); or write `embedded`, or a connector's name"),
            ));
        }
        if bus == super::EMBEDDED_BUS {
            if let Some(max) = spec.bus_max_backlog.as_ref().filter(|m| m.value == 0) {
                diags.push(Diagnostic::new(
                    file,
                    Some(Pos::of(max)),
                    "bus_max_backlog is 0, so nothing could ever be published: allow at least 1",
                ));
            }
            return;
        }
        let set = [
            spec.bus_retention.as_ref().map(|r| ("bus_retention", Pos::of(r))),
            spec.bus_max_backlog.as_ref().map(|m| ("bus_max_backlog", Pos::of(m))),
        ];
        for (name, pos) in set.into_iter().flatten() {
            diags.push(Diagnostic::new(
                file,
                Some(pos),
                format!(
                    "{name} is a setting of the embedded bus, and `bus:` is `{bus}`: set retention and \
                     limits on the backend itself (a Kafka topic's retention.ms, a RabbitMQ queue's \
                     x-max-length), or remove {name}"
                ),
            ));
        }
    }

    /// The OTLP endpoint (`$JUNCTION_OTLP` first), checked to be an http(s) URL.
    fn tracing(&self, spec: &RootSpec, file: &Path, diags: &mut Diagnostics) -> Option<super::TracingSettings> {
        let from_env = self.env.get("JUNCTION_OTLP").filter(|v| !v.is_empty());
        let written = spec.tracing.otlp.as_ref();
        let endpoint = from_env.or(written.map(|o| &o.value))?;
        let scheme = reqwest::Url::parse(endpoint).map(|u| u.scheme().to_owned());
        if !matches!(scheme.as_deref(), Ok("http" | "https")) {
            let (pos, source) = match from_env {
                Some(_) => (None, "$JUNCTION_OTLP"),
                None => (written.map(Pos::of), "tracing.otlp"),
            };
            diags.push(Diagnostic::new(
                file,
                pos,
                format!("{source} `{endpoint}` is not an http(s) URL; write e.g. http://collector:4318"),
            ));
            return None;
        }
        let service_name = spec.tracing.service_name.clone().unwrap_or_else(|| "junction".to_owned());
        Some(super::TracingSettings { endpoint: endpoint.trim_end_matches('/').to_owned(), service_name })
    }

    /// The project's connectors: `log`, those `connectors:` names, and `bus`. A connector
    /// whose options are those of one in `live` is that one, not a new one.
    #[allow(clippy::too_many_arguments)]
    fn connectors(
        &self,
        spec: &RootSpec,
        settings: &Settings,
        file: &Path,
        build: &BuildCx<'_>,
        defaults: &HttpDefaults,
        live: &LiveConnectors,
        diags: &mut Diagnostics,
    ) -> (Connectors, BTreeMap<String, String>, Vec<Arc<Mount>>) {
        let mut mounts: Vec<Arc<Mount>> = Vec::new();
        let empty = Node { pos: Pos::default(), value: NodeValue::Map(Vec::new()) };
        let mut out: Connectors = BTreeMap::new();
        let mut versions = BTreeMap::new();
        if let Some(kind) = self.registry.get("log")
            && let Ok(c) = kind.build("log", &empty, build)
        {
            out.insert("log".to_owned(), c);
            versions.insert("log".to_owned(), "builtin".to_owned());
        }
        let entries = match spec.connectors.as_ref().map(|n| &n.value) {
            None | Some(NodeValue::Null) => &[][..],
            Some(NodeValue::Map(entries)) => entries.as_slice(),
            Some(_) => {
                let pos = spec.connectors.as_ref().map(|n| n.pos);
                diags.push(Diagnostic::new(file, pos, "`connectors` is a mapping of names to `{ kind: …, … }`"));
                &[][..]
            }
        };
        for (name, node) in entries {
            if name.name == "bus" {
                diags.push(Diagnostic::new(
                    file,
                    Some(name.pos),
                    "`bus` is the project's bus, named by `bus:`: call this connector something else and write `bus: <its name>`",
                ));
                continue;
            }
            let Some(kind_node) = node.get("kind") else {
                diags.push(Diagnostic::new(file, Some(node.pos), format!("connector `{}` needs `kind`", name.name)));
                continue;
            };
            let kind_name = kind_node.as_str().unwrap_or_default();
            let Some(kind) = self.registry.get(kind_name) else {
                let hint = suggest(kind_name, self.registry.names())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                let known: Vec<&str> = self.registry.names().collect();
                diags.push(Diagnostic::new(
                    file,
                    Some(kind_node.pos),
                    format!("unknown connector kind `{kind_name}`{hint}; known: {}", known.join(", ")),
                ));
                continue;
            };
            let version = version_of(&node.to_json().to_string());
            if let Err(e) = build.resources.guards.resolve(&name.name, &version, node, build.resources.cache.as_ref()) {
                diags.push(Diagnostic::from_node(file, e));
            }
            let built = match live.get(&name.name) {
                Some((v, c)) if *v == version => Ok(c.clone()),
                _ => {
                    let mut engine_keys = vec!["kind", "api"];
                    engine_keys.extend_from_slice(crate::connector::GUARD_OPTIONS);
                    kind.build(&name.name, &node.without(&engine_keys), build)
                }
            };
            match built {
                Ok(c) => {
                    if let Some(api) = node.get("api")
                        && let Some(mount) = mount(&name.name, api, &c, defaults, &mounts, file, diags)
                    {
                        mounts.push(Arc::new(mount));
                    }
                    out.insert(name.name.clone(), c);
                    versions.insert(name.name.clone(), version);
                }
                Err(e) => {
                    diags.push(Diagnostic::from_node(file, e));
                    out.insert(name.name.clone(), Arc::new(crate::connector::Broken { name: name.name.clone() }));
                }
            }
        }
        let bus = self.bus_connector(spec, settings, &out, &versions, build, file, diags);
        let bus = match bus {
            Some((version, c)) => {
                // A running project keeps its bus: the gateway and the relays publish to it.
                // A change of it takes a restart (the reload says so).
                let c = live.get("bus").map_or(c, |(_, live)| live.clone());
                versions.insert("bus".to_owned(), version);
                c
            }
            None => Arc::new(crate::connector::Broken { name: "bus".into() }),
        };
        out.insert("bus".to_owned(), bus);
        if let Some(intercept) = &self.intercept {
            out = out
                .into_iter()
                .map(|(name, c)| {
                    let c = intercept(&name, c);
                    (name, c)
                })
                .collect();
        }
        (out, versions, mounts)
    }

    /// The connector `bus:` stands for, and its version: the embedded bus, one built from a
    /// URL by the kind that takes its scheme, or a connector of `connectors:` that can be a bus.
    #[allow(clippy::too_many_arguments)]
    fn bus_connector(
        &self,
        spec: &RootSpec,
        settings: &Settings,
        named: &Connectors,
        versions: &BTreeMap<String, String>,
        build: &BuildCx<'_>,
        file: &Path,
        diags: &mut Diagnostics,
    ) -> Option<(String, Arc<dyn Connector>)> {
        let (bus, at) = (settings.bus.as_str(), Pos::of(&spec.bus));
        if settings.embedded_bus() {
            let version = format!("embedded {:?} {}", settings.bus_retention, settings.bus_max_backlog);
            let embedded = crate::bus::Embedded::new(settings.bus_retention, settings.bus_max_backlog);
            return Some((version, Arc::new(embedded)));
        }
        if let Some((scheme, _)) = bus.split_once("://") {
            // An unknown scheme was reported with the settings.
            let kind = self.registry.by_scheme(scheme)?;
            return match kind.build_from_url("bus", bus, at, build) {
                Ok(c) => Some((version_of(&format!("url {bus}")), c)),
                Err(e) => {
                    diags.push(Diagnostic::from_node(file, e));
                    None
                }
            };
        }
        let Some(connector) = named.get(bus) else {
            let hint = suggest(bus, named.keys().map(String::as_str))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            diags.push(Diagnostic::new(
                file,
                Some(at),
                format!("`bus: {bus}` names no connector{hint}; write `embedded`, a URL like kafka://host:9092, or a connector's name"),
            ));
            return None;
        };
        if connector.bus().is_none() {
            diags.push(Diagnostic::new(
                file,
                Some(at),
                format!("connector `{bus}` (kind `{}`) cannot be the bus", connector.kind()),
            ));
            return None;
        }
        let version = format!("alias {bus} {}", versions.get(bus).map_or("", String::as_str));
        Some((version, connector.clone()))
    }

    fn routes(
        &self,
        paths: &ProjectPaths,
        files: &[PathBuf],
        connectors: &Connectors,
        build: &BuildCx<'_>,
        defaults: &HttpDefaults,
        diags: &mut Diagnostics,
    ) -> RouteTable {
        let mut table = RouteTable::default();
        let mut defined: HashMap<String, (PathBuf, Pos)> = HashMap::new();
        let mut endpoints: HashMap<http::Method, (matchit::Router<String>, HashMap<String, String>)> = HashMap::new();
        let mut schemas = HashMap::new();
        let mut consumers: HashMap<(String, String), String> = HashMap::new();
        for path in files {
            let shown = paths.display(path);
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    diags.push(Diagnostic::new(&shown, None, format!("cannot read route file: {e}")));
                    continue;
                }
            };
            let mut node: Node = match parse_yaml(&shown, &text) {
                Ok(n) => n,
                Err(d) => {
                    diags.push(d);
                    continue;
                }
            };
            report_unknown_keys::<RouteSpec>(&mut node, &shown, diags);
            let spec: RouteSpec = match node.parse() {
                Ok(s) => s,
                Err(e) => {
                    diags.push(Diagnostic::from_node(&shown, e));
                    continue;
                }
            };
            let id = spec.route.value.clone();
            let id_pos = Pos::of(&spec.route);
            if let Some((first_file, first_pos)) = defined.get(&id) {
                diags.push(Diagnostic::new(
                    &shown,
                    Some(id_pos),
                    format!("duplicate route id `{id}`; first defined at {}:{first_pos}", first_file.display()),
                ));
                continue;
            }
            defined.insert(id.clone(), (shown.clone(), id_pos));
            let mut cx =
                CompileCx::new(paths, &self.scripts, connectors, build, shown.clone(), id.clone(), diags, &mut schemas);
            let Some(route) = route::compile(&spec, &text, defaults, &mut cx) else { continue };
            if let Source::Http(h) = &route.source {
                let (router, owners) = endpoints.entry(h.method.clone()).or_default();
                if let Err(e) = router.insert(h.path.clone(), id.clone()) {
                    let other = match &e {
                        matchit::InsertError::Conflict { with } => {
                            owners.get(with).map(|o| format!(" by route `{o}`")).unwrap_or_default()
                        }
                        _ => String::new(),
                    };
                    diags.push(Diagnostic::new(
                        &shown,
                        Some(h.pos),
                        format!("{} {} is already served{other}: {e}", h.method, h.path),
                    ));
                    continue;
                }
                owners.insert(h.path.clone(), id.clone());
            }
            // One group's offset can only follow one route: the two would skip each other's messages.
            let taken = route.consumer().map(|c| c.groups()).unwrap_or_default().into_iter().find_map(|(topic, group)| {
                let other = consumers.insert((topic.clone(), group.clone()), id.clone())?;
                Some(format!("route `{other}` already consumes topic {topic} as group {group}; give this route its own `group`"))
            });
            if let Some(message) = taken {
                diags.push(Diagnostic::new(&shown, Some(id_pos), message));
                continue;
            }
            table.routes.insert(route.id.clone(), Arc::new(route));
        }
        table
    }
}

/// A connector's `api:`, checked: a path of its own, a known auth scheme, an API to serve.
fn mount(
    name: &str,
    node: &Node,
    connector: &Arc<dyn Connector>,
    defaults: &HttpDefaults,
    taken: &[Arc<Mount>],
    file: &Path,
    diags: &mut Diagnostics,
) -> Option<Mount> {
    let spec: ApiSpec = match node.parse() {
        Ok(s) => s,
        Err(e) => {
            diags.push(Diagnostic::from_node(file, e));
            return None;
        }
    };
    let Some(api) = connector.http_api() else {
        diags.push(Diagnostic::new(
            file,
            Some(node.pos),
            format!("connector `{name}` (kind `{}`) serves no HTTP API; remove `api:`", connector.kind()),
        ));
        return None;
    };
    let prefix = spec.path.value.trim_end_matches('/').to_owned();
    if !spec.path.value.starts_with('/') || prefix.is_empty() || prefix.contains(['{', '}', '?', '#']) {
        diags.push(Diagnostic::new(
            file,
            Some(Pos::of(&spec.path)),
            "an API's `path` is a fixed prefix below `/`, like `/api`",
        ));
        return None;
    }
    let overlaps = |m: &&Arc<Mount>| m.relative(&prefix).is_some() || m.prefix.starts_with(&format!("{prefix}/"));
    if let Some(other) = taken.iter().find(overlaps) {
        diags.push(Diagnostic::new(
            file,
            Some(Pos::of(&spec.path)),
            format!("`{prefix}` overlaps the API of connector `{}` at `{}`", other.name, other.prefix),
        ));
        return None;
    }
    let mut report = |error: Option<(Pos, String)>| {
        if let Some((pos, message)) = error {
            diags.push(Diagnostic::new(file, Some(pos), message));
        }
    };
    let auth = route::resolve_auth(spec.auth.as_ref(), node.pos, defaults).map_err(&mut report);
    let rate_limit = spec.rate_limit.as_ref().map(route::compile_rate_limit).transpose().map_err(|e| report(Some(e)));
    let ((auth, auth_name), rate_limit) = (auth.ok()?, rate_limit.ok()?);
    let cors = match &spec.cors {
        None => Vec::new(),
        Some(c) => {
            // Conditional requests are how an API's clients read and write safely.
            let mut c = c.clone();
            c.headers.extend(["if-match".to_owned(), "if-none-match".to_owned()]);
            let credential = auth.as_deref().map(Authenticator::header);
            let methods = [http::Method::GET, http::Method::POST, http::Method::PUT, http::Method::DELETE];
            match methods
                .iter()
                .map(|m| Cors::new(&c, m, credential).map(|c| Arc::new(c.exposing("etag, location"))))
                .collect()
            {
                Ok(all) => all,
                Err(e) => {
                    let at = node.get("cors").map_or(node.pos, |n| n.pos);
                    diags.push(Diagnostic::new(file, Some(at), e.to_string()));
                    return None;
                }
            }
        }
    };
    Some(Mount {
        name: name.into(),
        prefix,
        auth,
        auth_name,
        rate_limit,
        max_body: spec.max_body.map_or(defaults.max_body, |b| b.0),
        cors,
        api,
    })
}

/// The `auth:` section's schemes, each checked where it is written; and the names of those
/// that failed.
fn auth_schemes(
    paths: &ProjectPaths,
    spec: &RootSpec,
    file: &Path,
    diags: &mut Diagnostics,
) -> (BTreeMap<String, Arc<Authenticator>>, BTreeSet<String>) {
    let (mut out, mut broken) = (BTreeMap::new(), BTreeSet::new());
    let entries = match spec.auth.as_ref().map(|n| &n.value) {
        None | Some(NodeValue::Null) => return (out, broken),
        Some(NodeValue::Map(entries)) => entries,
        Some(_) => {
            let pos = spec.auth.as_ref().map(|n| n.pos);
            diags.push(Diagnostic::new(
                file,
                pos,
                "`auth` is a mapping of names to `{ api_key | jwt | hmac | basic: {…} }`",
            ));
            return (out, broken);
        }
    };
    for (name, node) in entries {
        if name.name == "none" {
            diags.push(Diagnostic::new(file, Some(name.pos), "`none` is reserved: it is what an open endpoint says"));
            continue;
        }
        let scheme: SchemeSpec = match node.parse() {
            Ok(s) => s,
            Err(e) => {
                diags.push(Diagnostic::from_node(file, e));
                broken.insert(name.name.clone());
                continue;
            }
        };
        match Authenticator::new(&scheme, &paths.root) {
            Ok(a) => {
                out.insert(name.name.clone(), a);
            }
            Err(e) => {
                diags.push(Diagnostic::new(file, Some(node.pos), format!("auth scheme `{}`: {e}", name.name)));
                broken.insert(name.name.clone());
            }
        }
    }
    (out, broken)
}

/// Reports every key of a file's top mapping that `T` does not have, and removes them so the
/// rest is still checked: serde alone would stop at the first.
fn report_unknown_keys<'de, T: serde::Deserialize<'de>>(node: &mut Node, file: &Path, diags: &mut Diagnostics) {
    let known = super::node::struct_fields::<T>();
    let NodeValue::Map(entries) = &mut node.value else { return };
    entries.retain(|(k, _)| {
        let ok = known.contains(&k.name.as_str());
        if !ok {
            let hint =
                suggest(&k.name, known.iter().copied()).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
            diags.push(Diagnostic::new(file, Some(k.pos), format!("unknown field `{}`{hint}", k.name)));
        }
        ok
    });
}

/// The `*.yaml`/`*.yml` files in `dir` and its subfolders, hidden ones left out.
fn yaml_files_under(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.')) {
            continue;
        }
        if path.is_dir() {
            yaml_files_under(&path, out)?;
        } else if path.is_file() && matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(path);
        }
    }
    Ok(())
}

/// The route files named by `routes:`: files as they are; folders' `*.yaml`/`*.yml`, their
/// subfolders' too (a project groups its routes, `routes/gateway/`, `routes/worker/`), sorted
/// by path. Hidden files and folders (an editor's `.x.yaml.swp`, `.git`) are not routes.
fn route_files(paths: &ProjectPaths, spec: &RootSpec, file: &Path, diags: &mut Diagnostics) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in &spec.routes {
        let path = paths.root.join(&entry.value);
        if path.is_dir() {
            let mut found = Vec::new();
            match yaml_files_under(&path, &mut found) {
                Ok(()) => {
                    found.sort();
                    out.extend(found);
                }
                Err(e) => {
                    diags.push(Diagnostic::new(file, Some(Pos::of(entry)), format!("cannot read {}: {e}", entry.value)))
                }
            }
        } else if path.is_file() {
            out.push(path);
        } else {
            diags.push(Diagnostic::new(file, Some(Pos::of(entry)), format!("no such file or folder: {}", entry.value)));
        }
    }
    out
}
