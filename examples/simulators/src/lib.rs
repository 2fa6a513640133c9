//! Simulators of the outside systems Junction's adapters speak to. Each serves the vendor's
//! API shapes (paths, bodies, status codes, auth) on a local port, keeps its state in memory,
//! and can be told to fail the way the real one does (a 503, a 429 with or without
//! `Retry-After`, a truncated body, a slow reply, a revoked token).
//!
//! Tests start one in process ([`amocrm::Amocrm::start`]) and poke its state directly; the
//! `junction-simulators` binary serves them for the offline demo, with a control API under
//! `/_sim/`.

pub mod amocrm;
pub mod direct;
mod faults;
pub mod onec;

pub use faults::Fault;
