//! What a route file says, as written: `route`, `from`, `steps`, `on_error`.

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::duration::{ByteSize, ConfigDuration};
use crate::config::node::Node;

/// A route file: one source, its steps, and what to do when they fail.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// The route's id: unique in the project, used in logs, metrics and the admin API.
    pub route: Spanned<String>,
    /// What the route is for, shown by `junction routes`.
    #[serde(default)]
    pub description: Option<String>,
    /// Where messages come from: `http`, `schedule`, `bus`, or a connector's consumer
    /// (`{ connector: orders, topics: [a, b], group: g }`). Read as a node first: a
    /// connector's options are its kind's to check.
    pub from: Node,
    /// The steps each message goes through, in order. Read one by one, so a mistake in one
    /// step does not hide the mistakes in the others.
    #[serde(default)]
    pub steps: Vec<Node>,
    /// Retries and the dead letter for messages that fail.
    #[serde(default)]
    pub on_error: Option<Spanned<OnErrorSpec>>,
    /// At most this many messages in the route at once (back-pressure); default 256.
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    /// What the console can show of each message's way through the steps.
    #[serde(default)]
    pub provenance: Option<ProvenanceSpec>,
}

/// `provenance: { key: body.external_id, record: true }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenanceSpec {
    /// Where the message's business key is (`body.a.b` or `headers.name`): the console
    /// finds the message by it, and can record every message of one key for a while.
    #[serde(default)]
    pub key: Option<Spanned<String>>,
    /// Record every message's steps, bodies before and after each (redacted), in the store.
    /// Off by default: then only messages of a key being watched are recorded.
    #[serde(default)]
    pub record: bool,
}

/// The sources the engine itself knows; `from: { connector: … }` is read before these.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceSpec {
    Http(Box<HttpSourceSpec>),
    Schedule(ScheduleSpec),
    /// `from: { bus: { topic: a, group: g } }`: the project's bus, whatever its backend;
    /// the same as `from: { connector: bus, topic: a }`.
    Bus(Node),
}

/// `from: { http: { method: POST, path: /deals/{id} } }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSourceSpec {
    /// GET, POST, PUT, PATCH or DELETE.
    pub method: Spanned<String>,
    /// The path; `{name}` segments become `meta.source.params.name`.
    pub path: Spanned<String>,
    /// Who may call: the name of a scheme in junction.yaml's `auth:` section, or `none` to
    /// leave the endpoint open on purpose. Required: an endpoint is never open by omission.
    #[serde(default)]
    pub auth: Option<Spanned<String>>,
    /// A token bucket: requests per second, per client (default) or for the whole endpoint.
    #[serde(default)]
    pub rate_limit: Option<Spanned<RateLimitSpec>>,
    /// Browser origins allowed to call (CORS); none when left out.
    #[serde(default)]
    pub cors: Option<CorsSpec>,
    /// A JSON Schema in `schemas/` the request body must satisfy (422 otherwise).
    #[serde(default)]
    pub schema: Option<Spanned<String>>,
    /// `true`: answer `202 Accepted` once the message is stored, and run the route after.
    #[serde(default, rename = "async")]
    pub is_async: bool,
    /// Largest accepted request body (413 above it); default from `gateway.max_body`.
    #[serde(default)]
    pub max_body: Option<ByteSize>,
    /// How long a request/reply run may take before the caller gets 503; default from `gateway.timeout`.
    #[serde(default)]
    pub timeout: Option<ConfigDuration>,
}

/// `rate_limit: { per_second: 50, burst: 100, per: client }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Tokens added per second (fractions allowed: 0.5 is one request every two seconds).
    pub per_second: f64,
    /// The most requests at once after a quiet spell (default: `per_second`, at least 1).
    #[serde(default)]
    pub burst: Option<u32>,
    /// `client` (default): a bucket per authenticated caller, or per IP on open endpoints;
    /// `endpoint`: one bucket for everyone.
    #[serde(default)]
    pub per: LimitPer,
}

#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LimitPer {
    #[default]
    Client,
    Endpoint,
}

/// `cors: { origins: [https://app.example], headers: [x-api-key], max_age: 10m }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSpec {
    /// Allowed origins, exactly as browsers send them (`https://app.example`), or `*`.
    pub origins: Vec<String>,
    /// Request headers a browser may send besides the simple ones (default: content-type
    /// and the endpoint's credential header).
    #[serde(default)]
    pub headers: Vec<String>,
    /// How long browsers may cache a preflight answer (default 10m).
    #[serde(default)]
    pub max_age: Option<ConfigDuration>,
    /// Whether cookies and credentials may accompany requests (never with origin `*`).
    #[serde(default)]
    pub credentials: bool,
}

/// `from: { schedule: { every: 5m } }` or `{ cron: "0 */5 * * * *" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    #[serde(default)]
    pub every: Option<Spanned<ConfigDuration>>,
    /// A cron expression (5 or 6 fields, seconds first when 6), in UTC.
    #[serde(default)]
    pub cron: Option<Spanned<String>>,
    /// The body of each message fired (default `{}`).
    #[serde(default)]
    pub body: Option<Node>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnErrorSpec {
    #[serde(default)]
    pub retry: Option<RetrySpec>,
    /// Where failed messages go besides the store's dead-letter table:
    /// `{ connector: bus, topic: dlq.crm }`.
    #[serde(default)]
    pub dead_letter: Option<Node>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Tries in all, the first included.
    pub attempts: u32,
    #[serde(default)]
    pub backoff: Backoff,
    #[serde(default)]
    pub initial: Option<ConfigDuration>,
    #[serde(default)]
    pub max: Option<ConfigDuration>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    #[default]
    Exponential,
    Fixed,
}

/// `api:` on a connector whose kind serves an HTTP API: where the gateway mounts it and who
/// may call it. `api: { path: /api, auth: partners, rate_limit: { per_second: 50 } }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSpec {
    /// The prefix the API is served under; it answers every path below it no route takes.
    pub path: Spanned<String>,
    /// As on an http source: a scheme from `auth:`, or `none`. Required.
    #[serde(default)]
    pub auth: Option<Spanned<String>>,
    #[serde(default)]
    pub rate_limit: Option<Spanned<RateLimitSpec>>,
    /// Largest accepted request body; default from `gateway.max_body`.
    #[serde(default)]
    pub max_body: Option<ByteSize>,
    /// Browser origins allowed to call the API (CORS), as on an http source.
    #[serde(default)]
    pub cors: Option<CorsSpec>,
}
