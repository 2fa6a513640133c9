//! Where a `masterdeal` connector keeps its tables: in the engine's store (the default), or in
//! a database of its own (`database:`), as the deployment diagram keeps the MasterDeal
//! operational DB apart from the integration DB. Either way it is opened and migrated once per
//! process, on first use.

use std::sync::Arc;

use junction_engine::store::Store;
use tokio::sync::OnceCell;

use super::{MasterDealStoreError, migrate};

/// A handle on the MasterDeal database; clones share one pool and one migration.
#[derive(Clone)]
pub struct Database {
    source: Source,
    ready: Arc<OnceCell<Store>>,
}

#[derive(Clone)]
enum Source {
    /// The engine's store; `None` under `junction check`, which opens nothing.
    Engine(Option<Store>),
    /// The connector's `database:` URL, opened when first needed.
    Own(String),
}

impl Database {
    /// The tables in the engine's store.
    pub fn engine(store: Option<Store>) -> Database {
        Database { source: Source::Engine(store), ready: Arc::default() }
    }

    /// The tables in their own database (`sqlite://…` or `postgres://…`), which gets none of
    /// the engine's tables.
    pub fn own(url: String) -> Database {
        Database { source: Source::Own(url), ready: Arc::default() }
    }

    /// The database, opened and migrated. A failure is not kept: the next call tries again,
    /// so a database that was down at start is used once it is back.
    pub async fn get(&self) -> Result<&Store, MasterDealStoreError> {
        self.ready
            .get_or_try_init(|| async {
                let store = match &self.source {
                    Source::Engine(Some(store)) => store.clone(),
                    Source::Engine(None) => {
                        return Err(MasterDealStoreError::Unavailable {
                            reason: "Junction runs without a store".into(),
                        });
                    }
                    Source::Own(url) => Store::open_other(url)
                        .await
                        .map_err(|e| MasterDealStoreError::Unavailable { reason: e.to_string() })?,
                };
                migrate(&store).await?;
                Ok(store)
            })
            .await
    }
}
