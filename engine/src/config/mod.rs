//! Reading a project: `junction.yaml`, its route files, transforms and schemas, into a
//! validated [`Project`]. Pure: nothing is started or connected here, so `junction check`
//! and a reload can run it freely.

pub mod duration;
pub mod env;
pub mod error;
mod load;
pub mod node;
pub mod password;
mod root;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::route::RouteTable;
use crate::route::compile::{Connectors, ProjectPaths};
use crate::script::ScriptEngine;

pub use load::{Intercept, LiveConnectors, Loader, parse_yaml};
pub use root::{ConsoleRole, RootSpec};

/// A loaded, validated project.
pub struct Project {
    pub paths: ProjectPaths,
    pub settings: Settings,
    pub routes: RouteTable,
    pub connectors: Connectors,
    /// Each connector's version (a hash of its options): a reload keeps those unchanged.
    pub connector_versions: std::collections::BTreeMap<String, String>,
    /// A hash of junction.yaml without its connectors: when it changes (auth schemes,
    /// gateway defaults), every route is rebuilt.
    pub root_version: String,
    pub scripts: Arc<ScriptEngine>,
}

/// Client connections the gateway serves at once unless `gateway.max_connections` says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// The root config's values, with defaults applied and variables substituted.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub listen: String,
    pub store: String,
    pub cache: String,
    /// `embedded`, a bus URL, or the name of the connector that is the bus.
    pub bus: String,
    /// How long processed bus messages are kept.
    pub bus_retention: Duration,
    /// Unprocessed messages a topic may hold before publishing to it is refused.
    pub bus_max_backlog: u64,
    pub shutdown_timeout: Duration,
    pub audit_mode: crate::gateway::AuditMode,
    pub audit_retention: Option<Duration>,
    /// Field names masked wherever a message is written out (logs, provenance).
    pub redact: Vec<String>,
    pub admin: Option<AdminSettings>,
    pub watch: bool,
    /// Client connections the gateway serves at once.
    pub max_connections: usize,
    /// How long a client connection may be idle, or take to send a request's headers.
    pub idle_timeout: Duration,
    /// The gateway's certificate chain and key (PEM), when it serves HTTPS.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Where spans are exported, when they are.
    pub tracing: Option<TracingSettings>,
}

impl Settings {
    /// Whether the bus is the embedded one (its settings, groups and retention apply).
    pub fn embedded_bus(&self) -> bool {
        self.bus == EMBEDDED_BUS
    }
}

/// What `bus:` says for the embedded bus.
pub const EMBEDDED_BUS: &str = "embedded";

/// The OTLP/HTTP collector spans go to, and the service they are reported under.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingSettings {
    pub endpoint: String,
    pub service_name: String,
}

/// Where the admin API listens and the token it wants.
#[derive(Clone, PartialEq)]
pub struct AdminSettings {
    pub listen: String,
    pub token: String,
    /// The console's users besides the token, by name.
    pub users: Vec<ConsoleUser>,
    /// Mark the console's cookie `Secure`: a TLS proxy is in front.
    pub behind_tls: bool,
}

/// A console user: a name, an argon2id hash (PHC format, checked at load) and a role.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsoleUser {
    pub name: String,
    pub password_hash: String,
    pub role: ConsoleRole,
}

impl std::fmt::Debug for AdminSettings {
    // The token stays out of every debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSettings").field("listen", &self.listen).finish_non_exhaustive()
    }
}

/// The process environment as a map, for `${VAR}` substitution.
pub fn process_env() -> HashMap<String, String> {
    std::env::vars().collect()
}
