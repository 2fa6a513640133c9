//! Throwaway migrated stores on both backends, so one test body runs against SQLite and
//! Postgres. A trimmed copy of the engine's `test_support`, which is private to its crate.
//!
//! Postgres is the server at `JUNCTION_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), a fresh database per test. No server is
//! a failure, never a skip.

use junction_engine::store::Store;
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Executor};

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A store that cleans up after itself when dropped.
pub(crate) struct TestStore {
    pub(crate) store: Store,
    /// Held only to be dropped with the store: the temp dir, or the Postgres database.
    _cleanup: Box<dyn Send>,
}

/// Runs each named `async fn(Store)` as two tests: `sqlite::<name>` and `postgres::<name>`.
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let t = $crate::store::test_db::sqlite().await;
                    super::$test(t.store.clone()).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let t = $crate::store::test_db::postgres().await;
                    super::$test(t.store.clone()).await;
                }
            )+
        }
    };
}
pub(crate) use on_both_backends;

pub(crate) async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().expect("the tests need a temp dir");
    let url = format!("sqlite://{}", dir.path().join("junction.db").display());
    let store = Store::open(&url).await.unwrap_or_else(|e| panic!("opening a fresh SQLite store: {e}"));
    migrated(TestStore { store, _cleanup: Box::new(dir) }).await
}

pub(crate) async fn postgres() -> TestStore {
    let admin = std::env::var("JUNCTION_TEST_PG").unwrap_or_else(|_| DEFAULT_PG.to_owned());
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("the Postgres tests need a server at JUNCTION_TEST_PG or {DEFAULT_PG}: {e}"));
    let name = format!("junction_test_{}", uuid::Uuid::new_v4().simple());
    conn.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
    let _ = conn.close().await;
    let url = format!("{}/{name}", admin.rsplit_once('/').map_or(admin.as_str(), |(server, _)| server));
    let cleanup = DropDatabase { admin, name: name.clone() };
    let store = Store::open(&url).await.unwrap_or_else(|e| panic!("opening the fresh Postgres store {name}: {e}"));
    migrated(TestStore { store, _cleanup: Box::new(cleanup) }).await
}

async fn migrated(t: TestStore) -> TestStore {
    super::migrate(&t.store).await.unwrap_or_else(|e| panic!("migrating a fresh store: {e}"));
    t
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
