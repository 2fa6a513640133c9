//! Throwaway migrated stores on both backends, so one test body runs against SQLite and
//! Postgres: the engine's test stores (its `test-support` feature) with MasterDeal's tables.

use junction_engine::store::test_support;

/// A migrated store that cleans up after itself when dropped.
pub(crate) struct TestStore {
    pub(crate) store: junction_engine::store::Store,
    /// The engine's throwaway store: its temp dir or Postgres database goes with it.
    _engine: test_support::TestStore,
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
    migrated(test_support::sqlite().await).await
}

pub(crate) async fn postgres() -> TestStore {
    migrated(test_support::postgres().await).await
}

async fn migrated(t: test_support::TestStore) -> TestStore {
    super::migrate(&t.store).await.unwrap_or_else(|e| panic!("migrating a fresh store: {e}"));
    TestStore { store: t.store.clone(), _engine: t }
}
