//! A paging source: an API walked page by page on a schedule, from a checkpoint kept in the
//! store, each item a message of the route. A kind says how to get one page and how far a
//! page moved the checkpoint ([`Pages`]); [`PagingSource`] does the rest, as a consumer like
//! any other (the engine's inbox, retries, dead letters; one instance at a time, under a
//! lease).
//!
//! The checkpoint moves only once every item of a page was delivered (or dead-lettered): a
//! process that dies mid-page walks that page again (at least once). Pages are asked from the
//! checkpoint as it is after the page before (keyset paging), so items changed during a walk
//! are neither skipped nor lost.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use junction_engine::Message;
use junction_engine::connector::{ConnectorError, Consumer, Inbox, slept};
use junction_engine::store::Store;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// One page of items and where the next one starts (`None`: this was the last).
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Value>,
    pub next: Option<String>,
    /// Where this page is, for kinds whose checkpoint is a page (`None` for the others).
    pub at: Option<String>,
}

/// How a kind reads an API page by page.
#[async_trait]
pub trait Pages: Send + Sync + 'static {
    /// The page at `cursor` (`None`: the first) of what changed since `checkpoint` (`None`:
    /// from the beginning). Keyset paging: after a page moved the checkpoint, the walk asks
    /// again from the new checkpoint's first page; the cursor only moves past a page that
    /// brought nothing new.
    async fn page(&self, checkpoint: Option<&str>, cursor: Option<&str>) -> Result<Page, ConnectorError>;

    /// Whether `item` was delivered already, as `checkpoint` records (an API that filters by
    /// "changed at or after" gives the newest delivered items again).
    fn seen(&self, checkpoint: Option<&str>, item: &Value) -> bool;

    /// The checkpoint once `items` (the new ones of the page `at`, whose next page is `next`)
    /// are delivered after `checkpoint`.
    fn advance(
        &self,
        checkpoint: Option<String>,
        items: &[Value],
        at: Option<&str>,
        next: Option<&str>,
    ) -> Option<String>;

    /// The message an item becomes.
    fn message(&self, item: Value) -> Message;

    /// What the source reads, for `junction routes` and the graph.
    fn describe(&self) -> String;
}

pub struct PagingSource<P> {
    pub pages: P,
    /// The pause between two walks.
    pub every: Duration,
    /// The checkpoint's key in the store.
    pub key: String,
    /// Set when the connector starts.
    pub store: Arc<OnceLock<Store>>,
}

/// How long a walk that failed waits before it tries again (doubling up to `every`).
const FIRST_RETRY: Duration = Duration::from_secs(1);

#[async_trait]
impl<P: Pages> Consumer for PagingSource<P> {
    async fn run(&self, inbox: Arc<dyn Inbox>, mut stop: watch::Receiver<bool>) {
        let route = inbox.route().to_owned();
        let mut wait = FIRST_RETRY;
        loop {
            let pause = match self.walk(&inbox, &mut stop).await {
                Ok(Walked::Done { items, pages }) => {
                    wait = FIRST_RETRY;
                    tracing::debug!(route, items, pages, source = %self.pages.describe(), "walked every page");
                    self.every
                }
                Ok(Walked::Stopped) => return,
                Err(e) => {
                    tracing::warn!(route, error = %e, source = %self.pages.describe(), "cannot read a page; trying again");
                    let w = wait;
                    wait = (wait * 2).min(self.every.max(FIRST_RETRY));
                    w
                }
            };
            if !slept(pause, &mut stop).await {
                return;
            }
        }
    }

    fn describe(&self) -> String {
        self.pages.describe()
    }

    /// One walker at a time: two would deliver every item twice.
    fn exclusive(&self) -> bool {
        true
    }
}

enum Walked {
    Done { items: usize, pages: usize },
    Stopped,
}

impl<P: Pages> PagingSource<P> {
    async fn walk(&self, inbox: &Arc<dyn Inbox>, stop: &mut watch::Receiver<bool>) -> Result<Walked, ConnectorError> {
        let store = self.store.get().ok_or_else(|| ConnectorError::unavailable("the connector is not started"))?;
        let mut checkpoint = store
            .checkpoint_get(&self.key)
            .await
            .map_err(|e| ConnectorError::unavailable(format!("cannot read checkpoint {}: {e}", self.key)))?;
        let (mut cursor, mut items, mut pages) = (None, 0, 0);
        loop {
            // Each page is asked from the checkpoint as it is now: an item changed during the
            // walk moves to the end of what is left, so page numbers of a fixed query would skip
            // what shifted into pages already read.
            let page = self.pages.page(checkpoint.as_deref(), cursor.as_deref()).await?;
            pages += 1;
            let fresh: Vec<Value> =
                page.items.into_iter().filter(|item| !self.pages.seen(checkpoint.as_deref(), item)).collect();
            let mut running = JoinSet::new();
            for item in &fresh {
                let Some(admission) = inbox.admit(stop).await else {
                    // Stopping: what runs finishes; the page is walked again next time.
                    let _ = super::all_settled(&mut running).await;
                    return Ok(Walked::Stopped);
                };
                let (inbox, msg) = (inbox.clone(), self.pages.message(item.clone()));
                running.spawn(async move { inbox.deliver(msg, admission).await });
            }
            if !super::all_settled(&mut running).await {
                // A stop left some undelivered: the checkpoint stays, the page is walked again.
                return Ok(Walked::Stopped);
            }
            items += fresh.len();
            let next = self.pages.advance(checkpoint.clone(), &fresh, page.at.as_deref(), page.next.as_deref());
            let moved = next != checkpoint;
            if moved && let Some(value) = &next {
                store
                    .checkpoint_put(&self.key, value)
                    .await
                    .map_err(|e| ConnectorError::unavailable(format!("cannot store checkpoint {}: {e}", self.key)))?;
                checkpoint = next;
            }
            match page.next {
                None => return Ok(Walked::Done { items, pages }),
                // From the new checkpoint, its first page; a page with nothing new (more items
                // share the checkpoint's instant than a page holds) moves on by the cursor.
                Some(_) if moved => cursor = None,
                Some(n) => cursor = Some(n),
            }
        }
    }
}
