//! The MasterDeal domain: master deals, media plans, proposals, contracts and campaigns.
//!
//! # Layout
//!
//! - `domain`: the rules in pure Rust — aggregates, status lifecycles, money, INN/KPP and
//!   the invariants between them; no I/O.
//! - `store`: persistence of what `domain` accepts, and the migrations.
//! - Still to come: the `masterdeal` connector and the REST and GraphQL APIs.

pub mod domain;
pub mod store;
