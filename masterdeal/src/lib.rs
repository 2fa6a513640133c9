//! The MasterDeal domain: master deals, media plans, proposals, contracts and campaigns.
//!
//! # Layout
//!
//! - `domain`: the rules in pure Rust — aggregates, status lifecycles, money, INN/KPP and
//!   the invariants between them; no I/O.
//! - `store`: persistence of what `domain` accepts, and the migrations.
//! - `connector`: `kind: masterdeal`, the store's operations for routes, and the outbox
//!   relay that publishes its events to the bus.
//! - `api`: the REST and GraphQL APIs the connector serves on the gateway (`api:`).
//! - `cache`: media plans read through the project's cache.

pub mod api;
pub mod cache;
pub mod connector;
pub mod domain;
pub mod store;
