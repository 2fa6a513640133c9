//! Junction's engine: everything between a route file and a running route.
//!
//! # Layout
//!
//! - [`config`]: reads `junction.yaml`, route files, transforms and schemas into validated
//!   specs; every error carries `file:line:col`. Pure: nothing starts here.
//! - [`script`]: the sandboxed Rhai engine and its small standard library.
//! - [`schema`]: JSON Schema validators that resolve `$ref` only inside `schemas/`.
//! - [`steps`]: one file per step (an EIP each), registered in `steps/mod.rs`.
//! - [`route`]: compiles specs into an immutable route table; runs a message through steps.
//! - [`runtime`]: a running project; delivery with retries and dead letters.
//! - [`connector`]: the traits connector kinds implement, and their registry.
//! - [`sources`]: bus consumers, schedules and step timers (HTTP comes through [`gateway`]).
//! - [`gateway`]: the one hyper server every `from: http` route is served by, and its layers.
//! - [`admin`]: the admin API on its own listener: routes, reload, pause, dead letters, audit.
//! - [`bus`]: the embedded, durable event bus kept in the store.
//! - [`store`]: the engine's own tables (SQLite by default, Postgres when configured).
//! - [`telemetry`]: Prometheus metrics of routes, steps, connectors, the gateway and reloads;
//!   OpenTelemetry spans of the same over OTLP, when configured.

pub mod admin;
pub mod bus;
pub mod cache;
pub mod config;
pub mod connector;
pub mod gateway;
pub mod graph;
pub mod json;
pub mod message;
pub mod provenance;
pub mod redact;
pub mod route;
pub mod runtime;
pub mod schema;
pub mod script;
pub mod sources;
pub mod steps;
pub mod store;
pub mod telemetry;
pub mod testing;
pub mod trace;

pub use message::{Body, Headers, Message, Meta};
