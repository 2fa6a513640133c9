//! The aggregation repository (Camel's `JdbcAggregationRepository`): the messages an
//! `aggregate` step holds, kept in the store so an open group outlives a crash or a restart.
//!
//! A message is written before its source is acked. A group that completes is not deleted
//! but *claimed*: its rows get a completion id and the claiming process's id, and are deleted
//! only once the group's message has been delivered or dead-lettered
//! ([`Store::aggregate_settle`]). A process that starts finds the groups another process
//! claimed but never settled (it died meanwhile) and releases them again: at-least-once, as
//! everywhere else in Junction.
//!
//! The store serves one running Junction at a time, as for the bus's consumer groups: a
//! process started next to a running one would take over the groups that one is delivering.
//!
//! Every change to one aggregate's groups happens in one transaction under a lock on that
//! aggregate (SQLite's single writer; a Postgres advisory lock), so two messages can never
//! both complete the same group, even from an old and a new version of a reloaded route.

use std::sync::LazyLock;

use sqlx::{Any, Row, Transaction};

use super::{Backend, StepAt, Store, StoreError, now_millis};
use crate::message::Message;

/// First key of the Postgres advisory locks on one aggregate's groups ("JAGG").
const AGGREGATE_LOCK_CLASS: i32 = 0x4A41_4747;

/// This process, as recorded on the groups it claims.
static PROCESS: LazyLock<String> = LazyLock::new(|| uuid::Uuid::new_v4().to_string());

/// How an aggregate's groups complete.
#[derive(Debug, Clone, Copy)]
pub struct AggregateRules {
    /// A group completes with this many messages.
    pub size: usize,
    /// Open groups at most; a new key past it completes the oldest.
    pub max_groups: usize,
}

/// A group that was completed and claimed: deliver its messages, then settle it.
#[derive(Debug)]
pub struct ClaimedGroup {
    pub key: String,
    pub completion: String,
    /// In arrival order.
    pub messages: Vec<Message>,
}

impl Store {
    /// Adds `msg` to the group `key` and returns the group this completed, if any: the
    /// message's own once it holds `size` messages, or the oldest open group when `key`
    /// would open one group more than `max_groups`.
    pub async fn aggregate_add(
        &self,
        at: &StepAt,
        key: &str,
        msg: &Message,
        rules: AggregateRules,
    ) -> Result<Option<ClaimedGroup>, StoreError> {
        let json = serde_json::to_string(msg).expect("a Message always serializes: its maps have string keys");
        let _writer = self.write_guard().await;
        let mut tx = self.locked(at).await?;
        sqlx::query(
            "INSERT INTO aggregate_messages (route, step, group_key, message, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&at.route)
        .bind(&at.step)
        .bind(key)
        .bind(json)
        .bind(now_millis())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("aggregate add"))?;
        let held: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM aggregate_messages \
             WHERE route = $1 AND step = $2 AND group_key = $3 AND completion IS NULL",
        )
        .bind(&at.route)
        .bind(&at.step)
        .bind(key)
        .fetch_one(&mut *tx)
        .await
        .and_then(|row| row.try_get("n"))
        .map_err(StoreError::query("aggregate group size"))?;

        let complete = if usize::try_from(held).unwrap_or(usize::MAX) >= rules.size {
            Some(key.to_owned())
        } else if held == 1 {
            one_too_many(&mut tx, at, key, rules.max_groups).await?
        } else {
            None
        };
        let claimed = match complete {
            Some(key) => Some(claim(&mut tx, at, &key).await?),
            None => None,
        };
        tx.commit().await.map_err(StoreError::query("aggregate add commit"))?;
        Ok(claimed)
    }

    /// Completes and claims the open groups whose first message arrived before `before`
    /// (unix milliseconds).
    pub async fn aggregate_expired(&self, at: &StepAt, before: i64) -> Result<Vec<ClaimedGroup>, StoreError> {
        // Most ticks find nothing: look before taking the lock.
        let due = expired_keys(self.pool(), at, before).await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let _writer = self.write_guard().await;
        let mut tx = self.locked(at).await?;
        // Again under the lock: a group may have completed by size meanwhile.
        let due = expired_keys(&mut *tx, at, before).await?;
        let mut claimed = Vec::with_capacity(due.len());
        for key in due {
            claimed.push(claim(&mut tx, at, &key).await?);
        }
        tx.commit().await.map_err(StoreError::query("aggregate expire commit"))?;
        Ok(claimed)
    }

    /// The groups another process claimed and never settled: it stopped before their
    /// delivery finished. Deliver them again, then settle them.
    pub async fn aggregate_unsettled(&self, at: &StepAt) -> Result<Vec<ClaimedGroup>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT completion, claimed_by FROM aggregate_messages \
             WHERE route = $1 AND step = $2 AND completion IS NOT NULL AND claimed_by <> $3",
        )
        .bind(&at.route)
        .bind(&at.step)
        .bind(&*PROCESS)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::query("aggregate unsettled"))?;
        let mut groups = Vec::with_capacity(rows.len());
        for row in rows {
            let completion: String = row.try_get("completion").map_err(StoreError::query("aggregate unsettled"))?;
            let seen: String = row.try_get("claimed_by").map_err(StoreError::query("aggregate unsettled"))?;
            let _writer = self.write_guard().await;
            let mut tx = self.locked(at).await?;
            // Taken over by this process, unless another one starting at the same time was first.
            let taken = sqlx::query(
                "UPDATE aggregate_messages SET claimed_by = $1 \
                 WHERE route = $2 AND step = $3 AND completion = $4 AND claimed_by = $5",
            )
            .bind(&*PROCESS)
            .bind(&at.route)
            .bind(&at.step)
            .bind(&completion)
            .bind(&seen)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("aggregate take over"))?;
            if taken.rows_affected() == 0 {
                continue;
            }
            let (key, messages) = claimed_rows(&mut tx, at, &completion).await?;
            tx.commit().await.map_err(StoreError::query("aggregate take over commit"))?;
            if let Some(key) = key {
                groups.push(ClaimedGroup { key, completion, messages });
            }
        }
        Ok(groups)
    }

    /// Forgets a claimed group: its message was delivered or dead-lettered.
    pub async fn aggregate_settle(&self, at: &StepAt, completion: &str) -> Result<(), StoreError> {
        let _writer = self.write_guard().await;
        sqlx::query("DELETE FROM aggregate_messages WHERE route = $1 AND step = $2 AND completion = $3")
            .bind(&at.route)
            .bind(&at.step)
            .bind(completion)
            .execute(self.pool())
            .await
            .map_err(StoreError::query("aggregate settle"))?;
        Ok(())
    }

    /// Every aggregate with messages in the store, and how many it has (open or claimed).
    pub async fn aggregate_holders(&self) -> Result<Vec<(StepAt, u64)>, StoreError> {
        let rows = sqlx::query("SELECT route, step, COUNT(*) AS n FROM aggregate_messages GROUP BY route, step")
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::query("aggregate holders"))?;
        rows.iter()
            .map(|row| {
                let at = StepAt { route: row.try_get("route")?, step: row.try_get("step")? };
                Ok((at, u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0)))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::query("aggregate holders"))
    }

    /// A transaction holding the lock on this aggregate's groups. On SQLite the caller holds
    /// the writer guard, which is that lock.
    async fn locked(&self, at: &StepAt) -> Result<Transaction<'static, Any>, StoreError> {
        let mut tx = self.pool().begin().await.map_err(StoreError::query("aggregate begin"))?;
        if self.backend() == Backend::Postgres {
            // count(*) because the lock function returns `void`, which the Any driver cannot carry.
            sqlx::query("SELECT count(*) FROM (SELECT pg_advisory_xact_lock($1, hashtext($2))) AS locked")
                .bind(AGGREGATE_LOCK_CLASS)
                .bind(format!("{}\n{}", at.route, at.step))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("aggregate lock"))?;
        }
        Ok(tx)
    }
}

/// When `key` just opened a group past `max_groups`: the oldest other open group, the one
/// holding the oldest row, which completes early to make room.
async fn one_too_many(
    tx: &mut Transaction<'static, Any>,
    at: &StepAt,
    key: &str,
    max_groups: usize,
) -> Result<Option<String>, StoreError> {
    if max_groups == usize::MAX {
        return Ok(None);
    }
    let open: i64 = sqlx::query(
        "SELECT COUNT(DISTINCT group_key) AS n FROM aggregate_messages \
         WHERE route = $1 AND step = $2 AND completion IS NULL",
    )
    .bind(&at.route)
    .bind(&at.step)
    .fetch_one(&mut **tx)
    .await
    .and_then(|row| row.try_get("n"))
    .map_err(StoreError::query("aggregate open groups"))?;
    if usize::try_from(open).unwrap_or(usize::MAX) <= max_groups {
        return Ok(None);
    }
    sqlx::query(
        "SELECT group_key FROM aggregate_messages \
         WHERE route = $1 AND step = $2 AND completion IS NULL AND group_key <> $3 \
         ORDER BY id LIMIT 1",
    )
    .bind(&at.route)
    .bind(&at.step)
    .bind(key)
    .fetch_optional(&mut **tx)
    .await
    .and_then(|row| row.map(|r| r.try_get("group_key")).transpose())
    .map_err(StoreError::query("aggregate oldest group"))
}

/// The open groups whose first message arrived before `before`.
async fn expired_keys<'e, E>(db: E, at: &StepAt, before: i64) -> Result<Vec<String>, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let rows = sqlx::query(
        "SELECT group_key FROM aggregate_messages \
         WHERE route = $1 AND step = $2 AND completion IS NULL \
         GROUP BY group_key HAVING MIN(created_at) < $3",
    )
    .bind(&at.route)
    .bind(&at.step)
    .bind(before)
    .fetch_all(db)
    .await
    .map_err(StoreError::query("aggregate expired"))?;
    rows.iter().map(|row| row.try_get("group_key").map_err(StoreError::query("aggregate expired"))).collect()
}

/// Completes the open group `key`: its rows get a completion id and this process's name.
async fn claim(tx: &mut Transaction<'static, Any>, at: &StepAt, key: &str) -> Result<ClaimedGroup, StoreError> {
    let completion = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "UPDATE aggregate_messages SET completion = $1, claimed_by = $2 \
         WHERE route = $3 AND step = $4 AND group_key = $5 AND completion IS NULL",
    )
    .bind(&completion)
    .bind(&*PROCESS)
    .bind(&at.route)
    .bind(&at.step)
    .bind(key)
    .execute(&mut **tx)
    .await
    .map_err(StoreError::query("aggregate claim"))?;
    let (_, messages) = claimed_rows(tx, at, &completion).await?;
    Ok(ClaimedGroup { key: key.to_owned(), completion, messages })
}

/// The messages of a claimed group in arrival order, and its key (`None` when it has no rows).
async fn claimed_rows(
    tx: &mut Transaction<'static, Any>,
    at: &StepAt,
    completion: &str,
) -> Result<(Option<String>, Vec<Message>), StoreError> {
    let rows = sqlx::query(
        "SELECT id, group_key, message FROM aggregate_messages \
         WHERE route = $1 AND step = $2 AND completion = $3 ORDER BY id",
    )
    .bind(&at.route)
    .bind(&at.step)
    .bind(completion)
    .fetch_all(&mut **tx)
    .await
    .map_err(StoreError::query("aggregate read group"))?;
    let mut key = None;
    let mut messages = Vec::with_capacity(rows.len());
    for row in &rows {
        let corrupt = |reason: String| StoreError::Corrupt {
            what: "aggregated message (table aggregate_messages, id)",
            id: row.try_get::<i64, _>("id").unwrap_or_default().to_string(),
            reason,
        };
        let json: String = row.try_get("message").map_err(|e| corrupt(e.to_string()))?;
        messages.push(serde_json::from_str(&json).map_err(|e| corrupt(e.to_string()))?);
        if key.is_none() {
            key = Some(row.try_get("group_key").map_err(|e| corrupt(e.to_string()))?);
        }
    }
    Ok((key, messages))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::store::test_support::on_both_backends;

    on_both_backends!(
        groups_complete_by_size_in_arrival_order,
        a_new_key_past_max_groups_claims_the_oldest_group,
        groups_past_their_time_are_claimed_once,
        groups_another_process_claimed_are_taken_over_once,
        concurrent_adds_complete_every_group_exactly_once,
    );

    fn at() -> StepAt {
        StepAt { route: "r".into(), step: "1:aggregate".into() }
    }

    async fn add(store: &Store, key: &str, n: i64, size: usize, max_groups: usize) -> Option<ClaimedGroup> {
        let msg = Message::json(json!({ "k": key, "n": n }));
        store.aggregate_add(&at(), key, &msg, AggregateRules { size, max_groups }).await.expect("aggregate_add")
    }

    fn ns(group: &ClaimedGroup) -> Vec<Value> {
        group.messages.iter().map(|m| m.body.to_json()["n"].clone()).collect()
    }

    /// How many messages the aggregate holds in open groups, and in how many groups.
    async fn open(store: &Store) -> (i64, i64) {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, COUNT(DISTINCT group_key) AS g FROM aggregate_messages \
             WHERE route = $1 AND step = $2 AND completion IS NULL",
        )
        .bind(&at().route)
        .bind(&at().step)
        .fetch_one(store.pool())
        .await
        .expect("open groups");
        (row.try_get("n").expect("n"), row.try_get("g").expect("g"))
    }

    async fn rows(store: &Store) -> i64 {
        sqlx::query("SELECT COUNT(*) AS n FROM aggregate_messages")
            .fetch_one(store.pool())
            .await
            .and_then(|r| r.try_get("n"))
            .expect("count")
    }

    async fn groups_complete_by_size_in_arrival_order(store: Store) {
        assert!(add(&store, "a", 1, 3, 10).await.is_none());
        assert!(add(&store, "b", 2, 3, 10).await.is_none());
        assert!(add(&store, "a", 3, 3, 10).await.is_none());
        let a = add(&store, "a", 4, 3, 10).await.expect("a holds 3 now");
        assert_eq!((a.key.as_str(), ns(&a)), ("a", vec![json!(1), json!(3), json!(4)]));
        assert_eq!(open(&store).await, (1, 1), "only b is open");
        assert_eq!(rows(&store).await, 4, "a's rows stay until it is settled");
        store.aggregate_settle(&at(), &a.completion).await.expect("settle");
        assert_eq!(rows(&store).await, 1);
        // The next `a` opens a new group.
        assert!(add(&store, "a", 5, 3, 10).await.is_none());
        assert_eq!(open(&store).await, (2, 2));
    }

    async fn a_new_key_past_max_groups_claims_the_oldest_group(store: Store) {
        assert!(add(&store, "a", 1, 3, 2).await.is_none());
        assert!(add(&store, "b", 2, 3, 2).await.is_none());
        assert!(add(&store, "a", 3, 3, 2).await.is_none(), "a known key never releases a group");
        let a = add(&store, "c", 4, 3, 2).await.expect("c is one group too many");
        assert_eq!((a.key.as_str(), ns(&a)), ("a", vec![json!(1), json!(3)]));
        assert_eq!(open(&store).await, (2, 2), "b and c");
    }

    async fn groups_past_their_time_are_claimed_once(store: Store) {
        add(&store, "a", 1, 10, 10).await;
        add(&store, "a", 2, 10, 10).await;
        let now = now_millis();
        assert!(store.aggregate_expired(&at(), now - 60_000).await.expect("expired").is_empty(), "a is new");
        let due = store.aggregate_expired(&at(), now + 1).await.expect("expired");
        assert_eq!(due.len(), 1);
        assert_eq!(ns(&due[0]), vec![json!(1), json!(2)]);
        assert!(store.aggregate_expired(&at(), now + 1).await.expect("expired").is_empty(), "claimed already");
        assert_eq!(open(&store).await, (0, 0));
        assert!(store.aggregate_unsettled(&at()).await.expect("unsettled").is_empty(), "this process's own claim");
    }

    async fn groups_another_process_claimed_are_taken_over_once(store: Store) {
        let a = add(&store, "a", 1, 1, 10).await.expect("size 1 completes at once");
        // As if the process that claimed it had died before delivering it.
        sqlx::query("UPDATE aggregate_messages SET claimed_by = 'a-process-gone'")
            .execute(store.pool())
            .await
            .expect("update");
        let taken = store.aggregate_unsettled(&at()).await.expect("unsettled");
        assert_eq!(taken.len(), 1);
        assert_eq!((taken[0].completion.as_str(), taken[0].key.as_str()), (a.completion.as_str(), "a"));
        assert_eq!(ns(&taken[0]), vec![json!(1)]);
        assert!(store.aggregate_unsettled(&at()).await.expect("unsettled").is_empty(), "taken over by this process");
        store.aggregate_settle(&at(), &a.completion).await.expect("settle");
        assert_eq!(rows(&store).await, 0);
    }

    async fn concurrent_adds_complete_every_group_exactly_once(store: Store) {
        let tasks: Vec<_> = (0..40)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move { add(&store, "k", n, 5, 10).await })
            })
            .collect();
        let mut seen = Vec::new();
        for task in tasks {
            if let Some(group) = task.await.expect("task") {
                assert_eq!(group.messages.len(), 5, "a group completes at its size, never past it");
                seen.extend(ns(&group));
            }
        }
        seen.sort_by_key(|n| n.as_i64());
        assert_eq!(seen, (0..40).map(|n| json!(n)).collect::<Vec<_>>(), "every message in exactly one group");
    }
}
