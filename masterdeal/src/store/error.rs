//! What can go wrong in MasterDeal's store, each variant saying what the caller can do.

use crate::domain::{RuleError, TransitionError};

/// An error from MasterDeal's tables or its outbox relay.
#[derive(Debug, thiserror::Error)]
pub enum MasterDealStoreError {
    #[error(
        "cannot migrate the MasterDeal tables: {source}; the database may have been migrated \
         by a newer Junction, or a migration was edited after it ran"
    )]
    Migration { source: sqlx::migrate::MigrateError },

    /// The MasterDeal database cannot be opened now (503, retried).
    #[error("the MasterDeal database is unavailable: {reason}")]
    Unavailable { reason: String },

    #[error("masterdeal store query `{op}` failed: {source}; check that the database is reachable")]
    Query { op: &'static str, source: sqlx::Error },

    /// The REST layer answers 404.
    #[error("{what} `{id}` does not exist; check the id")]
    NotFound { what: &'static str, id: String },

    /// A stale `expected_version`; the REST layer answers 409.
    #[error(
        "{what} `{id}` is at version {actual}, not the expected {expected}: it changed \
         meanwhile; reload it and retry"
    )]
    Conflict { what: &'static str, id: String, expected: i64, actual: i64 },

    /// A status move the lifecycle forbids; the message lists the allowed ones (409).
    #[error(transparent)]
    Transition(#[from] TransitionError),

    /// The write would break a domain invariant; the message says how to fix the data (422).
    #[error(transparent)]
    Rule(#[from] RuleError),

    /// The input itself is malformed, whatever the stored data (400 or 422).
    #[error("invalid input: {0}")]
    Invalid(String),

    /// An upsert found the record existing and its caller named no version to change (428).
    #[error("{what} `{id}` exists (version {actual}): send the version you read to change it")]
    VersionRequired { what: &'static str, id: String, actual: i64 },

    /// A delete of a record with a history or with records that refer to it (409).
    #[error("{what} `{id}` cannot be deleted: {reason}")]
    NotDeletable { what: &'static str, id: String, reason: String },

    #[error("{what} `{key}` kept changing while it was being written; retry")]
    Raced { what: &'static str, key: String },

    #[error(
        "stored {what} `{id}` does not decode: {reason}; the row was edited by hand or \
         written by an incompatible Junction: fix or delete it"
    )]
    Corrupt { what: &'static str, id: String, reason: String },

    #[error(
        "publishing outbox event {seq} (`{event_type}`) failed after {published} were \
         published: {source}; it stays pending and the next relay starts from it"
    )]
    Publish { seq: i64, event_type: String, published: usize, source: Box<dyn std::error::Error + Send + Sync> },
}

impl MasterDealStoreError {
    /// Wraps a failed query, naming the operation so a log line says which one failed.
    pub(super) fn query(op: &'static str) -> impl FnOnce(sqlx::Error) -> MasterDealStoreError {
        move |source| MasterDealStoreError::Query { op, source }
    }

    pub(crate) fn not_found(what: &'static str, id: impl std::fmt::Display) -> MasterDealStoreError {
        MasterDealStoreError::NotFound { what, id: id.to_string() }
    }

    pub(super) fn corrupt(what: &'static str, id: &str, reason: impl std::fmt::Display) -> MasterDealStoreError {
        MasterDealStoreError::Corrupt { what, id: id.to_owned(), reason: reason.to_string() }
    }
}
