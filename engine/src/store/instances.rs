//! Each instance's route counters, shared through the store for the console.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError, now_millis};

/// One instance's counts for one route, as it last wrote them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceCounts {
    pub instance: String,
    pub route: String,
    pub received: i64,
    pub completed: i64,
    pub dead_lettered: i64,
    pub in_flight: i64,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// Deletes what instances wrote before `before` (instances long gone).
    pub async fn forget_instance_counts(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let _writer = self.write_guard().await;
        let done = sqlx::query("DELETE FROM instance_counters WHERE updated_at < $1")
            .bind(before.timestamp_millis())
            .execute(&self.pool)
            .await
            .map_err(StoreError::query("forget_instance_counts"))?;
        Ok(done.rows_affected())
    }

    /// Writes this instance's counts for its routes (replacing what it wrote before).
    pub async fn put_instance_counts(&self, counts: &[InstanceCounts]) -> Result<(), StoreError> {
        let err = || StoreError::query("put_instance_counts");
        let now = now_millis();
        let _writer = self.write_guard().await;
        let mut tx = self.pool.begin().await.map_err(err())?;
        for c in counts {
            sqlx::query(
                "INSERT INTO instance_counters (instance, route, received, completed, dead_lettered, in_flight, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (instance, route) DO UPDATE SET received = excluded.received, \
                 completed = excluded.completed, dead_lettered = excluded.dead_lettered, \
                 in_flight = excluded.in_flight, updated_at = excluded.updated_at",
            )
            .bind(&c.instance)
            .bind(&c.route)
            .bind(c.received)
            .bind(c.completed)
            .bind(c.dead_lettered)
            .bind(c.in_flight)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(err())?;
        }
        tx.commit().await.map_err(err())
    }

    /// What every instance seen since `since` wrote, by instance then route.
    pub async fn instance_counts(&self, since: DateTime<Utc>) -> Result<Vec<InstanceCounts>, StoreError> {
        let err = || StoreError::query("instance_counts");
        let rows = sqlx::query(
            "SELECT instance, route, received, completed, dead_lettered, in_flight, updated_at \
             FROM instance_counters WHERE updated_at >= $1 ORDER BY instance, route",
        )
        .bind(since.timestamp_millis())
        .fetch_all(&self.pool)
        .await
        .map_err(err())?;
        rows.iter()
            .map(|r| {
                let at: i64 = r.try_get("updated_at").map_err(err())?;
                Ok(InstanceCounts {
                    instance: r.try_get("instance").map_err(err())?,
                    route: r.try_get("route").map_err(err())?,
                    received: r.try_get("received").map_err(err())?,
                    completed: r.try_get("completed").map_err(err())?,
                    dead_lettered: r.try_get("dead_lettered").map_err(err())?,
                    in_flight: r.try_get("in_flight").map_err(err())?,
                    updated_at: DateTime::from_timestamp_millis(at).unwrap_or_default(),
                })
            })
            .collect()
    }
}
