//! Junction's engine: everything between a route file and a running route.
//!
//! # Layout
//!
//! - [`config`]: reads `junction.yaml`, route files, transforms and schemas into validated
//!   specs; every error carries `file:line:col`. Pure: nothing starts here.
//! - [`script`]: the sandboxed Rhai engine and its small standard library.
//! - [`schema`]: JSON Schema validators that resolve `$ref` only inside `schemas/`.
//! - [`steps`]: one file per step (an EIP each), registered in `steps/mod.rs`.
//! - [`route`]: compiles specs into an immutable route table.
//! - [`runtime`]: runs messages through routes: retries, dead letters, back-pressure.
//! - [`connector`]: the trait connector kinds implement, and their registry.
//! - [`sources`]: where messages come from: HTTP (through [`gateway`]), schedules, the bus.
//! - [`gateway`]: the one hyper server every `from: http` route is served by.
//! - [`bus`]: the embedded, durable event bus kept in the store.
//! - [`store`]: the engine's own tables (SQLite by default, Postgres when configured).
//! - [`testing`]: route tests (`junction test`): recorders in place of connectors.

pub mod bus;
pub mod message;
pub mod script;
pub mod store;

pub use message::{Body, Headers, Message, Meta};
