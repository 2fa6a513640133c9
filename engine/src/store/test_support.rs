//! Throwaway stores on both backends, so one test body runs against SQLite and Postgres.
//!
//! Postgres tests use the server at `JUNCTION_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and a fresh database per test, so tests
//! running in parallel never see each other's rows. No server is a failure, never a skip.

use sqlx::AnyConnection;
use sqlx::{AssertSqlSafe, Connection, Executor};

use super::Store;
use crate::redact::url as redact;

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A store that cleans up after itself when dropped.
pub struct TestStore {
    pub store: Store,
    /// Held only to be dropped with the store: the temp dir, or the Postgres database.
    _cleanup: Box<dyn Send>,
}

/// Runs each named `async fn(Store)` as two tests: `sqlite::<name>` and `postgres::<name>`.
#[cfg(test)]
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let t = $crate::store::test_support::sqlite().await;
                    super::$test(t.store.clone()).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let t = $crate::store::test_support::postgres().await;
                    super::$test(t.store.clone()).await;
                }
            )+
        }
    };
}
#[cfg(test)]
pub(crate) use on_both_backends;

pub async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().expect("the tests need a temp dir");
    let url = format!("sqlite://{}", dir.path().join("junction.db").display());
    let store = Store::open(&url).await.unwrap_or_else(|e| panic!("opening a fresh SQLite store: {e}"));
    TestStore { store, _cleanup: Box::new(dir) }
}

pub async fn postgres() -> TestStore {
    let admin = std::env::var("JUNCTION_TEST_PG").unwrap_or_else(|_| DEFAULT_PG.to_owned());
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!(
            "the Postgres tests need a server at `{}` (set JUNCTION_TEST_PG to another \
             postgres:// URL whose user may CREATE DATABASE): {e}",
            redact(&admin)
        )
    });
    let name = format!("junction_test_{}", uuid::Uuid::new_v4().simple());
    conn.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
    let _ = conn.close().await;
    let cleanup = DropDatabase { admin: admin.clone(), name: name.clone() };
    let store = Store::open(&with_database(&admin, &name))
        .await
        .unwrap_or_else(|e| panic!("opening the fresh Postgres store {name}: {e}"));
    TestStore { store, _cleanup: Box::new(cleanup) }
}

/// The same server URL, pointing at another database.
fn with_database(url: &str, database: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let query = url.find('?').map_or("", |i| &url[i..]);
    let authority_end = url[authority_start..].find(['/', '?']).map_or(url.len(), |i| authority_start + i);
    format!("{}/{database}{query}", &url[..authority_end])
}

struct DropDatabase {
    admin: String,
    name: String,
}

impl Drop for DropDatabase {
    /// Drop is synchronous and may run on the test's runtime thread, so the cleanup gets a
    /// thread and a runtime of its own. `FORCE` ends the pool connections still open.
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let outcome = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            rt.block_on(async {
                let mut conn = AnyConnection::connect(&admin).await?;
                conn.execute(AssertSqlSafe(sql)).await?;
                conn.close().await
            })
            .map_err(|e| e.to_string())
        })
        .join();
        if let Ok(Err(e)) = outcome {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

#[test]
fn test_databases_live_on_the_same_server() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
        "postgres://postgres@127.0.0.1:5432/t1"
    );
    assert_eq!(with_database("postgres://u@h?sslmode=disable", "t1"), "postgres://u@h/t1?sslmode=disable");
}
