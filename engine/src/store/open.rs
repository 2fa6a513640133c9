//! Opening a store from its URL: which backend, where the SQLite file lives, the pool, the
//! migrations.

use std::path::PathBuf;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool};
use sqlx::{Connection, Executor};

use super::{Backend, StoreError};
use crate::redact::url as redact;

/// Where the engine records which of its migrations ran. Not sqlx's default table, so the
/// domain crates can run their own migrators on the same database without either one
/// reporting the other's migrations as "missing".
const MIGRATIONS_TABLE: &str = "_junction_engine_migrations";

/// How long a SQLite writer waits for another process's write to finish before failing.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

/// A parsed store URL: the backend and the URL to hand to sqlx.
#[derive(Debug, PartialEq)]
pub(super) struct Location {
    pub(super) backend: Backend,
    pub(super) url: String,
    /// The URL as the user wrote it, password hidden, for messages.
    pub(super) shown: String,
    /// The SQLite file, whose directory may have to be created first.
    pub(super) file: Option<PathBuf>,
}

pub(super) fn locate(url: &str) -> Result<Location, StoreError> {
    let unsupported = || StoreError::UnsupportedUrl { url: redact(url) };
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, params) = match rest.split_once('?') {
            Some((path, params)) => (path, Some(params)),
            None => (rest, None),
        };
        // Through the Any driver every pooled connection re-parses the URL, so each would
        // get its own private in-memory database: refuse rather than lose data silently.
        if path.is_empty() || path == ":memory:" || params.is_some_and(|q| q.contains("memory")) {
            return Err(unsupported());
        }
        // `mode=rwc` creates the file on first start, unless the URL already chose a mode.
        let params = match params {
            Some(q) if q.split('&').any(|kv| kv.starts_with("mode=")) => q.to_owned(),
            Some(q) => format!("{q}&mode=rwc"),
            None => "mode=rwc".to_owned(),
        };
        return Ok(Location {
            backend: Backend::Sqlite,
            url: format!("sqlite:{path}?{params}"),
            shown: redact(url),
            file: Some(PathBuf::from(path)),
        });
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Location { backend: Backend::Postgres, url: url.to_owned(), shown: redact(url), file: None });
    }
    Err(unsupported())
}

/// Whether a database opened gets the engine's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tables {
    Engine,
    None,
}

/// Connects, prepares the backend and, for the engine's store, runs its migrations.
pub(super) async fn connect(location: &Location, tables: Tables) -> Result<AnyPool, StoreError> {
    sqlx::any::install_default_drivers();
    let shown = &location.shown;
    let unreachable = |source| StoreError::Unreachable { url: shown.clone(), source };

    if let Some(dir) = location.file.as_ref().and_then(|f| f.parent())
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir { path: dir.to_owned(), source })?;
    }

    // One plain connection first: the pool would retry a refused connection until its
    // acquire timeout and then only say "timed out", hiding the driver's own reason.
    let mut probe = AnyConnection::connect(&location.url).await.map_err(unreachable)?;
    if location.backend == Backend::Sqlite {
        // WAL lets readers (bus consumers, the admin API) run while one writer commits. It
        // is a property of the file, so setting it once here covers every connection.
        // `synchronous` stays at SQLite's FULL: a publish that returned survives a power cut.
        probe.execute("PRAGMA journal_mode = WAL").await.map_err(unreachable)?;
    }
    // The probe has done its job; a failure to say goodbye changes nothing.
    let _ = probe.close().await;

    let pool = pool_options(location.backend).connect(&location.url).await.map_err(unreachable)?;
    if tables == Tables::None {
        return Ok(pool);
    }

    let mut migrator = match location.backend {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
    };
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator.run(&pool).await.map_err(|source| StoreError::Migration { url: shown.clone(), source })?;
    Ok(pool)
}

fn pool_options(backend: Backend) -> AnyPoolOptions {
    match backend {
        // SQLite has one writer at a time whatever the pool size; a few connections are
        // enough for readers to proceed alongside it.
        Backend::Sqlite => AnyPoolOptions::new().max_connections(4).after_connect(|conn, _| {
            Box::pin(async move {
                // Set explicitly rather than trusting sqlx's default: concurrent writers
                // from other processes must wait, not fail with "database is locked".
                let pragma = format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}");
                conn.execute(sqlx::AssertSqlSafe(pragma)).await?;
                Ok(())
            })
        }),
        Backend::Postgres => AnyPoolOptions::new().max_connections(10).acquire_timeout(Duration::from_secs(10)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_become_files_created_on_first_start() {
        let loc = locate("sqlite://data/junction.db").expect("supported");
        assert_eq!(loc.backend, Backend::Sqlite);
        assert_eq!(loc.url, "sqlite:data/junction.db?mode=rwc");
        assert_eq!(loc.file, Some(PathBuf::from("data/junction.db")));

        let abs = locate("sqlite:///var/lib/junction/j.db?mode=rw").expect("supported");
        assert_eq!(abs.url, "sqlite:/var/lib/junction/j.db?mode=rw");
    }

    #[test]
    fn unsupported_urls_are_refused_with_the_forms_that_work() {
        for url in ["sqlite::memory:", "sqlite://", "mysql://x/y", "data/junction.db"] {
            let err = locate(url).expect_err(url).to_string();
            assert!(err.contains("sqlite://path/to/file.db"), "{err}");
        }
    }
}
