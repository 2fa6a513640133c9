//! `junction.yaml`: where the gateway listens, where state is kept, which connectors exist.

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use super::duration::{ByteSize, ConfigDuration};
use super::node::Node;
use crate::gateway::AuditMode;

/// The root config of a project.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootSpec {
    /// The gateway's address, e.g. `127.0.0.1:8080`. Left out: `$JUNCTION_LISTEN`, then 127.0.0.1:8080.
    #[serde(default = "default_listen")]
    pub listen: Spanned<String>,
    /// `sqlite://data/junction.db` (relative to the project) or `postgres://…`.
    /// Left out: `$JUNCTION_STORE`, then `sqlite://data/junction.db`.
    #[serde(default = "default_store")]
    pub store: Spanned<String>,
    /// `memory`, or `redis://…` so rate limits and idempotency keys hold across instances.
    /// Left out: `$JUNCTION_CACHE`, then `memory`.
    #[serde(default = "default_cache")]
    pub cache: Spanned<String>,
    /// The event bus: `embedded` (durable, in the store), a URL (`kafka://host:9092`,
    /// `amqp://user:pass@host:5672/%2f`), or the name of a connector in `connectors:` whose
    /// kind can be the bus. Left out: `$JUNCTION_BUS`, then `embedded`.
    #[serde(default = "default_bus")]
    pub bus: Spanned<String>,
    /// Embedded bus only: how long it keeps a message once every consumer group of its topic
    /// has processed it (default 7d). Unprocessed messages are kept however old.
    #[serde(default)]
    pub bus_retention: Option<Spanned<ConfigDuration>>,
    /// Embedded bus only: messages a topic may hold that its slowest consumer group has not
    /// processed (default 100 000); a publish past it is refused until consumers catch up.
    #[serde(default)]
    pub bus_max_backlog: Option<Spanned<u64>>,
    /// Route files, or folders of them (`*.yaml`, `*.yml`), relative to the project.
    #[serde(default = "default_routes")]
    pub routes: Vec<Spanned<String>>,
    /// Named auth schemes routes refer to: `name: { api_key: {…} }`, or `jwt`, `hmac`, `basic`.
    #[serde(default)]
    pub auth: Option<Node>,
    /// Named connectors: `name: { kind: http, …options of the kind }`.
    #[serde(default)]
    pub connectors: Option<Node>,
    #[serde(default)]
    pub gateway: GatewaySpec,
    /// The admin API: its own listener, every call needing the token. Left out: no admin API.
    #[serde(default)]
    pub admin: Option<AdminSpec>,
    /// Whether the project reloads itself when its files change.
    #[serde(default)]
    pub reload: ReloadSpec,
    /// What the log must never show.
    #[serde(default)]
    pub logging: LoggingSpec,
    /// What the audit log keeps, and for how long.
    #[serde(default)]
    pub audit: AuditSpec,
    /// How long `SIGTERM`/Ctrl-C waits for in-flight messages before exiting (default 30s).
    #[serde(default)]
    pub shutdown_timeout: Option<ConfigDuration>,
    /// Where spans of routes, steps and connector calls are sent. Left out: none are made.
    #[serde(default)]
    pub tracing: TracingSpec,
}

/// `tracing: { otlp: http://collector:4318, service_name: junction }`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingSpec {
    /// An OpenTelemetry collector's OTLP/HTTP address; spans are POSTed as JSON to
    /// `<otlp>/v1/traces`. `$JUNCTION_OTLP` overrides it. Left out: no spans are exported.
    #[serde(default)]
    pub otlp: Option<Spanned<String>>,
    /// The `service.name` the spans are reported under (default `junction`).
    #[serde(default)]
    pub service_name: Option<String>,
}

/// `admin: { listen: 127.0.0.1:9090, token: ${JUNCTION_ADMIN_TOKEN} }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSpec {
    /// Where the admin API listens (`$JUNCTION_ADMIN_LISTEN` overrides it). Keep it private.
    pub listen: Spanned<String>,
    /// The bearer token every admin call carries (12 characters or more). In the console it
    /// signs in as an `operator`.
    pub token: Spanned<String>,
    /// People who sign in to the console by name and password (besides the token).
    #[serde(default)]
    pub users: Vec<ConsoleUserSpec>,
    /// The console is reached through a TLS proxy: its session cookie is marked `Secure`.
    #[serde(default)]
    pub behind_tls: bool,
}

/// `{ name: ana, password_hash: "$argon2id$…", role: viewer }`; `junction hash-password`
/// makes the hash.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleUserSpec {
    pub name: Spanned<String>,
    /// An argon2id hash in the PHC string format (`$argon2id$v=19$m=…`).
    pub password_hash: Spanned<String>,
    pub role: ConsoleRole,
}

/// What a console user may do: a `viewer` reads everything; an `operator` also pauses,
/// reloads and replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleRole {
    Viewer,
    Operator,
}

/// `reload: { watch: true }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadSpec {
    /// Reload when route files, transforms, schemas or junction.yaml change (default true).
    /// SIGHUP and `POST /admin/reload` reload either way.
    #[serde(default = "yes")]
    pub watch: bool,
}

impl Default for ReloadSpec {
    fn default() -> Self {
        Self { watch: true }
    }
}

fn yes() -> bool {
    true
}

/// `logging: { redact: [inn, passport] }`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingSpec {
    /// Field names whose values are masked (`***`) wherever a message is written to the log,
    /// at any depth, ignoring case — besides password, secret, token, api_key, card_number
    /// and the like, which always are.
    #[serde(default)]
    pub redact: Vec<String>,
}

/// `audit: { http: authenticated, retention: 90d }`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSpec {
    /// Which gateway requests are recorded: `authenticated` (default: requests to endpoints
    /// with an auth scheme), `all`, or `off`. Admin API calls are always recorded.
    #[serde(default)]
    pub http: AuditMode,
    /// How long records are kept (default: forever).
    #[serde(default)]
    pub retention: Option<ConfigDuration>,
}

/// Defaults for every http route.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySpec {
    /// Largest request body accepted (default 1MiB); a route may set its own.
    #[serde(default)]
    pub max_body: Option<ByteSize>,
    /// How long a request/reply may take before 503 (default 30s); a route may set its own.
    #[serde(default)]
    pub timeout: Option<ConfigDuration>,
    /// Client connections served at once (default 10 000); more wait to be accepted.
    #[serde(default)]
    pub max_connections: Option<Spanned<usize>>,
    /// How long a connection may sit without sending a request, or take to send its headers,
    /// before it is closed and its place freed (default 30s).
    #[serde(default)]
    pub idle_timeout: Option<ConfigDuration>,
    /// Serve HTTPS: PEM files of the certificate chain and its private key, relative to the project.
    #[serde(default)]
    pub tls: Option<TlsSpec>,
}

/// `tls: { cert: certs/gateway.pem, key: certs/gateway.key }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
}

fn unplaced(s: &str) -> Spanned<String> {
    Spanned::new(s.to_owned(), Location::UNKNOWN, Location::UNKNOWN)
}

fn default_listen() -> Spanned<String> {
    unplaced("127.0.0.1:8080")
}

fn default_store() -> Spanned<String> {
    unplaced("sqlite://data/junction.db")
}

fn default_cache() -> Spanned<String> {
    unplaced("memory")
}

fn default_bus() -> Spanned<String> {
    unplaced("embedded")
}

fn default_routes() -> Vec<Spanned<String>> {
    vec![unplaced("routes/")]
}
