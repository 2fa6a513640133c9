//! What can go wrong in MasterDeal's store, each variant saying what the caller can do.

/// An error from MasterDeal's tables or its outbox relay.
#[derive(Debug, thiserror::Error)]
pub enum MasterDealStoreError {
    #[error(
        "cannot migrate the MasterDeal tables: {source}; the database may have been migrated \
         by a newer Junction, or a migration was edited after it ran"
    )]
    Migration { source: sqlx::migrate::MigrateError },

    #[error("masterdeal store query `{op}` failed: {source}; check that the database is reachable")]
    Query { op: &'static str, source: sqlx::Error },

    #[error("master deal `{id}` does not exist; check the id")]
    NotFound { id: String },

    #[error(
        "master deal `{id}` is at version {actual}, not the expected {expected}: it changed \
         meanwhile; reload it and retry"
    )]
    Conflict { id: String, expected: i64, actual: i64 },

    #[error("master deal with CRM id `{crm_id}` kept changing while it was being written; retry")]
    Raced { crm_id: String },

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

    pub(super) fn corrupt(what: &'static str, id: &str, reason: impl std::fmt::Display) -> MasterDealStoreError {
        MasterDealStoreError::Corrupt { what, id: id.to_owned(), reason: reason.to_string() }
    }
}
