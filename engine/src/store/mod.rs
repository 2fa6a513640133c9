//! The engine's own tables: SQLite by default, Postgres when `store: postgres://…`.
//!
//! Every query is written once, through sqlx's `Any` driver, in SQL both backends read:
//! `$N` placeholders, JSON as TEXT, times as BIGINT unix milliseconds. Each backend has its
//! own migrations in `engine/migrations/<backend>/`, run by [`Store::open`].

mod aggregates;
mod audit;
mod checkpoints;
mod dead_letters;
mod error;
mod idempotency;
mod instances;
mod leases;
mod open;
mod provenance;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use sqlx::AnyPool;
use tokio::sync::{Mutex, MutexGuard};

pub use aggregates::{AggregateRules, ClaimedGroup};
pub use audit::{AuditEntry, AuditFilter, AuditRecord};
pub use dead_letters::{DeadLetter, DeadLetterFilter, NewDeadLetter};
pub use error::StoreError;
pub use instances::InstanceCounts;
pub use provenance::ProvenanceStep;

/// Which step keeps state in the store: its route, and its label there (`1:aggregate`).
#[derive(Debug, Clone)]
pub struct StepAt {
    pub route: String,
    pub step: String,
}

/// A handle on the store; cheap to clone, all clones share one pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite admits one writer at a time and makes the others sleep-and-retry; queueing
    /// this process's writers here instead keeps them fair and fast.
    sqlite_writer: Arc<Mutex<()>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Store {
    /// Opens `sqlite://data/junction.db` (relative to the current directory; the directory
    /// and the file are created when missing) or `postgres://…`, and runs the migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Self::open_with(url, open::Tables::Engine).await
    }

    /// Opens a database as [`Store::open`] does but creates none of the engine's tables: for a
    /// crate that keeps only its own there (a `masterdeal` connector's `database:`).
    pub async fn open_other(url: &str) -> Result<Store, StoreError> {
        Self::open_with(url, open::Tables::None).await
    }

    async fn open_with(url: &str, tables: open::Tables) -> Result<Store, StoreError> {
        let location = open::locate(url)?;
        let pool = open::connect(&location, tables).await?;
        Ok(Store { pool, backend: location.backend, sqlite_writer: Arc::default() })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks the database answers, for readiness probes.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(StoreError::query("ping"))?;
        Ok(())
    }

    /// The pool, for crates that keep their own tables in the same database.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Hold the returned guard around a write statement. SQLite only; on Postgres, `None`.
    pub(crate) async fn write_guard(&self) -> Option<MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.sqlite_writer.lock().await),
            Backend::Postgres => None,
        }
    }
}

/// Now, as stored: unix milliseconds.
pub(crate) fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
