//! Turns route specs into runnable routes: scripts and schemas compiled, connectors' endpoints
//! checked. Every error is collected with its `file:line:col`; nothing here does I/O but
//! reading the project's own files.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};

use super::pipeline::{Pipeline, StepEntry};
use crate::config::error::{Diagnostic, Diagnostics, suggest};
use crate::config::node::{Node, NodeError, NodeValue, Pos};
use crate::connector::{BuildCx, Bus, Connector, Consumer, Endpoint, Endpoints, Guard, Measured, Role};
use crate::schema::Schema;
use crate::script::{Script, ScriptEngine, ScriptError};
use crate::steps::{self, StepSpec};
use crate::telemetry::StepMetrics;

/// Where a project keeps its files.
#[derive(Debug, Clone)]
pub struct ProjectPaths {
    pub root: PathBuf,
    pub transforms: PathBuf,
    pub schemas: PathBuf,
}

impl ProjectPaths {
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_path_buf(), transforms: root.join("transforms"), schemas: root.join("schemas") }
    }

    /// A path as users should read it in messages: relative to the project when inside it.
    pub fn display(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.root).map(Path::to_path_buf).unwrap_or_else(|_| path.to_path_buf())
    }
}

/// A use of a connector by a route: what `junction graph` draws as an edge.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub role: Role,
    pub connector: String,
    pub target: String,
}

/// The named connectors of a project.
pub type Connectors = BTreeMap<String, Arc<dyn Connector>>;

/// Resolves the `{ connector: NAME, … }` a connector's step options hold (a hook) to that
/// connector's endpoint, measured and guarded as a step's.
struct Hooks<'c> {
    connectors: &'c Connectors,
    build: &'c BuildCx<'c>,
    /// The hooks resolved, as the route's links: a route depends on its hooks' connectors
    /// (a reload that changes one rebuilds the route) and the graph draws them.
    used: std::cell::RefCell<Vec<Link>>,
}

impl Endpoints for Hooks<'_> {
    fn endpoint(&self, role: Role, node: &Node) -> Result<Arc<dyn Endpoint>, NodeError> {
        let at = node.get("connector").map_or(node.pos, |n| n.pos);
        let name = node.get("connector").and_then(Node::as_str).ok_or_else(|| NodeError {
            message: "missing field `connector`: name the connector that answers".into(),
            pos: Some(at),
        })?;
        let connector = self.connectors.get(name).ok_or_else(|| {
            let known = self.connectors.keys().map(String::as_str).collect::<Vec<_>>().join(", ");
            NodeError { message: format!("unknown connector `{name}`; declared: {known}"), pos: Some(at) }
        })?;
        let build = BuildCx { endpoints: Some(self), ..*self.build };
        let endpoint = connector.endpoint(role, &node.without(&["connector"]), &build)?;
        self.used.borrow_mut().push(Link { role, connector: name.to_owned(), target: endpoint.describe() });
        let audit = Measured::audit_of(name, connector.kind(), self.build.resources.audit.as_ref());
        Ok(Measured::wrap(name, self.build.resources.guards.get(name), endpoint, audit))
    }
}

/// Everything a step needs to compile, and where its errors go.
pub struct CompileCx<'a> {
    pub paths: &'a ProjectPaths,
    pub scripts: &'a Arc<ScriptEngine>,
    pub connectors: &'a Connectors,
    pub build: &'a BuildCx<'a>,
    /// The route file being compiled, as shown in errors.
    pub file: PathBuf,
    pub route: String,
    pub diags: &'a mut Diagnostics,
    /// The label of the step being compiled (`2:log`), for steps that name themselves in logs.
    pub step: String,
    /// Nested step lists (a choice's branches) may not hold steps that keep state across messages.
    pub top_level: bool,
    /// Files this route read, hashed into its version.
    pub(crate) inputs: Vec<(PathBuf, String)>,
    /// Every endpoint the route uses, for `junction graph`.
    pub(crate) links: Vec<Link>,
    /// The guards of the connectors the route calls: its bus sources hold back while one of
    /// their breakers is open.
    pub(crate) guards: Vec<Arc<Guard>>,
    /// How many steps of each kind that keep state in the store were compiled so far.
    kept: HashMap<&'static str, usize>,
    schemas: &'a mut HashMap<String, Schema>,
}

impl<'a> CompileCx<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        paths: &'a ProjectPaths,
        scripts: &'a Arc<ScriptEngine>,
        connectors: &'a Connectors,
        build: &'a BuildCx<'a>,
        file: PathBuf,
        route: String,
        diags: &'a mut Diagnostics,
        schemas: &'a mut HashMap<String, Schema>,
    ) -> Self {
        Self {
            paths,
            scripts,
            connectors,
            build,
            file,
            route,
            diags,
            step: String::new(),
            top_level: true,
            inputs: Vec::new(),
            links: Vec::new(),
            guards: Vec::new(),
            kept: HashMap::new(),
            schemas,
        }
    }

    /// The name a step that keeps state in the store keeps it under: its kind, numbered from
    /// the route's second such step on, in file order (`aggregate`, `aggregate#2`). Unlike the
    /// step's position, it stays the same when other steps are added or removed around it.
    pub fn kept_state(&mut self, kind: &'static str) -> crate::store::StepAt {
        let n = self.kept.entry(kind).or_default();
        *n += 1;
        let step = if *n == 1 { kind.to_owned() } else { format!("{kind}#{n}") };
        crate::store::StepAt { route: self.route.clone(), step }
    }

    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        let file = self.file.clone();
        self.diags.push(Diagnostic::new(&file, Some(pos), message));
    }

    /// Compiles an expression written in the route file (a filter, a `when`, a `set` value).
    pub fn expression(&mut self, text: &str, at: Pos) -> Option<Script> {
        self.inline(text, at, ScriptEngine::compile_expression)
    }

    /// Compiles a script written inline in the route file.
    pub fn inline_script(&mut self, text: &str, at: Pos) -> Option<Script> {
        self.inline(text, at, ScriptEngine::compile)
    }

    fn inline(
        &mut self,
        text: &str,
        at: Pos,
        compile: fn(&ScriptEngine, &str, &str) -> Result<Script, ScriptError>,
    ) -> Option<Script> {
        let name = format!("{}:{} (inline)", self.file.display(), at);
        compile(self.scripts, &name, text).map_err(|e| self.inline_script_error(at, &e)).ok()
    }

    /// Compiles a script file from `transforms/`; its errors point into that file.
    pub fn script_file(&mut self, file: &str, at: Pos) -> Option<Script> {
        let path = self.paths.transforms.join(file);
        let source = self.read(&path, at, "transform")?;
        let shown = self.paths.display(&path);
        match self.scripts.compile(file, &source) {
            Ok(s) => Some(s),
            Err(e) => {
                let pos = e.line.map(|l| Pos { line: l as u32, col: e.column.unwrap_or(1) as u32 });
                self.diags.push(Diagnostic::new(&shown, pos, format!("Rhai: {}", e.message)));
                None
            }
        }
    }

    /// A schema from `schemas/`, compiled once per project load.
    pub fn schema(&mut self, file: &str, at: Pos) -> Option<Schema> {
        if let Some(s) = self.schemas.get(file) {
            return Some(s.clone());
        }
        let path = self.paths.schemas.join(file);
        self.read(&path, at, "schema")?;
        match Schema::load(&self.paths.schemas, file) {
            Ok(s) => {
                self.schemas.insert(file.to_owned(), s.clone());
                Some(s)
            }
            Err(e) => {
                self.error(at, e.to_string());
                None
            }
        }
    }

    /// Resolves `{ connector: NAME, … }` to an endpoint; `own` lists the keys the step itself
    /// reads (they are not passed to the connector).
    pub fn endpoint(&mut self, role: Role, node: &Node, own: &[&str]) -> Option<Arc<dyn Endpoint>> {
        let (name, connector) = self.named_connector(node)?;
        let mut skip = vec!["connector"];
        skip.extend_from_slice(own);
        let options = node.without(&skip);
        let hooks = Hooks { connectors: self.connectors, build: self.build, used: Default::default() };
        let build = BuildCx { endpoints: Some(&hooks), ..*self.build };
        let resolved = connector.endpoint(role, &options, &build);
        self.links.extend(hooks.used.into_inner());
        match resolved {
            Ok(e) => {
                self.links.push(Link { role, connector: name.clone(), target: e.describe() });
                let guard = self.build.resources.guards.get(&name);
                if let Some(g) = &guard
                    && !self.guards.iter().any(|known| Arc::ptr_eq(known, g))
                {
                    self.guards.push(g.clone());
                }
                let audit = Measured::audit_of(&name, connector.kind(), self.build.resources.audit.as_ref());
                Some(Measured::wrap(&name, guard, e, audit))
            }
            Err(e) => self.node_error(e),
        }
    }

    /// Resolves `from: { connector: NAME, … }` to the connector's consumer.
    pub fn consumer(&mut self, from: &Node) -> Option<(String, Arc<dyn Consumer>)> {
        let (name, connector) = self.named_connector(from)?;
        match connector.consumer(&self.route, &from.without(&["connector"]), self.build) {
            Ok(c) => Some((name, c)),
            Err(e) => self.node_error(e),
        }
    }

    /// `from: { bus: … }`: the `bus` connector's consumer.
    pub fn bus_consumer(&mut self, options: &Node) -> Option<Arc<dyn Consumer>> {
        let connector = self.connectors.get("bus")?.clone();
        match connector.consumer(&self.route, options, self.build) {
            Ok(c) => Some(c),
            Err(e) => self.node_error(e),
        }
    }

    /// The project's bus (every project has one; `None` only when its config failed, which
    /// was reported there).
    pub fn bus(&self) -> Option<Arc<dyn Bus>> {
        self.connectors.get("bus").and_then(|c| c.bus())
    }

    /// The connector a `connector:` key names, or an error at the key.
    fn named_connector(&mut self, node: &Node) -> Option<(String, Arc<dyn Connector>)> {
        let Some(name_node) = node.get("connector") else {
            self.error(node.pos, "missing field `connector`: name the connector to use (e.g. `connector: bus`)");
            return None;
        };
        let Some(name) = name_node.as_str() else {
            self.error(name_node.pos, "`connector` must be a connector name");
            return None;
        };
        let Some(connector) = self.connectors.get(name) else {
            let hint = suggest(name, self.connectors.keys().map(String::as_str))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            let known = self.connectors.keys().map(String::as_str).collect::<Vec<_>>().join(", ");
            self.error(name_node.pos, format!("unknown connector `{name}`{hint}; declared: {known}"));
            return None;
        };
        Some((name.to_owned(), connector.clone()))
    }

    pub(crate) fn node_error<T>(&mut self, e: crate::config::node::NodeError) -> Option<T> {
        let file = self.file.clone();
        self.diags.push(Diagnostic::from_node(&file, e));
        None
    }

    /// Compiles a nested step list (a branch of a choice, the steps of a split).
    pub fn pipeline(&mut self, steps: &[Spanned<StepSpec>]) -> Option<Pipeline> {
        let outer = std::mem::replace(&mut self.top_level, false);
        let pipeline = self.steps(steps);
        self.top_level = outer;
        pipeline
    }

    /// Compiles a step list; `None` when any step failed (its errors are reported).
    pub(crate) fn steps(&mut self, steps: &[Spanned<StepSpec>]) -> Option<Pipeline> {
        let mut entries = Vec::with_capacity(steps.len());
        let mut ok = true;
        for (i, spec) in steps.iter().enumerate() {
            let label = format!("{}:{}", i + 1, spec.value.name());
            self.step.clone_from(&label);
            match steps::build(spec, self) {
                Some(step) => {
                    entries.push(StepEntry {
                        metrics: StepMetrics::new(&self.route, &label),
                        label,
                        retryable: step.calls_out(),
                        step,
                    });
                }
                None => ok = false,
            }
        }
        ok.then_some(Pipeline { steps: entries })
    }

    fn read(&mut self, path: &Path, at: Pos, what: &str) -> Option<String> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                self.inputs.push((path.to_path_buf(), text.clone()));
                Some(text)
            }
            Err(e) => {
                let shown = self.paths.display(path);
                self.error(at, format!("cannot read {what} {}: {e}", shown.display()));
                None
            }
        }
    }

    fn inline_script_error(&mut self, at: Pos, e: &ScriptError) {
        // A script's own line 1 is the line the scalar starts on.
        let pos = match e.line {
            Some(l) if l > 1 => Pos { line: at.line + l as u32 - 1, col: e.column.unwrap_or(1) as u32 },
            Some(_) => Pos { line: at.line, col: at.col + e.column.unwrap_or(1) as u32 - 1 },
            None => at,
        };
        self.error(pos, format!("Rhai: {}", e.message));
    }
}

/// A route's version: a hash of the route file and every file it uses.
pub(crate) fn version(route_text: &str, inputs: &[(PathBuf, String)]) -> String {
    let mut h = Sha256::new();
    h.update(route_text.as_bytes());
    for (path, text) in inputs {
        h.update(path.to_string_lossy().as_bytes());
        h.update(text.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

/// Reads a `{ name: expr }` mapping of expressions (`set`, headers of a call).
pub fn expressions(node: &Node, cx: &mut CompileCx<'_>) -> Option<Vec<(String, Script)>> {
    let NodeValue::Map(entries) = &node.value else {
        cx.error(node.pos, "expected a mapping of names to expressions");
        return None;
    };
    let mut out = Vec::with_capacity(entries.len());
    let mut ok = true;
    for (key, value) in entries {
        let text = match &value.value {
            NodeValue::Str(s) => s.clone(),
            NodeValue::Int(i) => i.to_string(),
            NodeValue::Float(f) => f.to_string(),
            NodeValue::Bool(b) => b.to_string(),
            _ => {
                cx.error(value.pos, "expected an expression");
                ok = false;
                continue;
            }
        };
        match cx.expression(&text, value.pos) {
            Some(s) => out.push((key.name.clone(), s)),
            None => ok = false,
        }
    }
    ok.then_some(out)
}
