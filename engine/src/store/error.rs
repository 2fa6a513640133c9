//! What can go wrong with the store, each variant saying what the operator can do about it.

use std::path::PathBuf;

/// An error from the store. URLs in messages never carry a password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "store URL `{url}` is not supported: use `sqlite://path/to/file.db` (a file; in-memory \
         SQLite is not supported) or `postgres://user@host:5432/database`"
    )]
    UnsupportedUrl { url: String },

    #[error(
        "cannot create the directory `{}` for the SQLite store: {source}; \
         check the path and its permissions",
        path.display()
    )]
    CreateDir { path: PathBuf, source: std::io::Error },

    #[error(
        "cannot connect to the database at `{url}`: {source}; check that the database server \
         is running, the database exists and its URL (`store:`, JUNCTION_STORE, or a \
         connector's `database:`) is right"
    )]
    Unreachable { url: String, source: sqlx::Error },

    #[error(
        "cannot migrate the store at `{url}`: {source}; the database may have been migrated \
         by a newer Junction, or a migration was edited after it ran"
    )]
    Migration { url: String, source: sqlx::migrate::MigrateError },

    #[error("store query `{op}` failed: {source}; check that the database is reachable")]
    Query { op: &'static str, source: sqlx::Error },

    #[error(
        "stored {what} `{id}` does not decode: {reason}; the row was edited by hand or \
         written by an incompatible Junction: fix or delete it"
    )]
    Corrupt { what: &'static str, id: String, reason: String },
}

impl StoreError {
    /// Wraps a failed query, naming the operation so a log line says which one failed.
    pub(crate) fn query(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Query { op, source }
    }
}
