//! Leases: a name held by one instance until it expires. Whoever holds it renews it well
//! before then; a holder that dies stops renewing, and another instance takes the lease once
//! it expired. Times are each instance's own clock: keep them in sync (NTP), and keep the
//! time to live well above their skew.

use std::time::Duration;

use super::{Store, StoreError, now_millis};

impl Store {
    /// Takes `name` for `holder` until `ttl` from now, or renews it if `holder` has it;
    /// whether `holder` holds it now.
    pub async fn lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = now_millis();
        let until = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let _writer = self.write_guard().await;
        let taken = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(until)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(StoreError::query("lease"))?;
        Ok(taken.rows_affected() == 1)
    }

    /// Gives `name` up at once if `holder` has it, so another instance need not wait for it to expire.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let _writer = self.write_guard().await;
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await
            .map_err(StoreError::query("release lease"))?;
        Ok(())
    }

    /// Routes an admin has paused, as every instance sees them.
    pub async fn paused_routes(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT route FROM paused_routes ORDER BY route")
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::query("paused routes"))?;
        Ok(rows.into_iter().map(|(r,)| r).collect())
    }

    /// Records `route` as paused or not; whether that changed anything.
    pub async fn set_paused(&self, route: &str, paused: bool) -> Result<bool, StoreError> {
        let _writer = self.write_guard().await;
        let done = if paused {
            sqlx::query("INSERT INTO paused_routes (route, paused_at) VALUES ($1, $2) ON CONFLICT (route) DO NOTHING")
                .bind(route)
                .bind(now_millis())
                .execute(self.pool())
                .await
        } else {
            sqlx::query("DELETE FROM paused_routes WHERE route = $1").bind(route).execute(self.pool()).await
        };
        Ok(done.map_err(StoreError::query("set paused"))?.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::store::Store;

    async fn leases_are_held_by_one_holder_until_they_expire(store: Store) {
        let long = Duration::from_secs(60);
        assert!(store.lease("relay", "a", long).await.expect("lease"));
        assert!(!store.lease("relay", "b", long).await.expect("lease"), "a holds it");
        assert!(store.lease("relay", "a", long).await.expect("renew"), "the holder renews");
        assert!(store.lease("other", "b", long).await.expect("lease"), "names are apart");
        // A lease that expired goes to whoever asks next.
        assert!(store.lease("short", "a", Duration::from_millis(1)).await.expect("lease"));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(store.lease("short", "b", long).await.expect("take over"));
        assert!(!store.lease("short", "a", long).await.expect("lease"), "the old holder lost it");
        // Released: at once free for another.
        store.release_lease("relay", "b").await.expect("release by a non-holder does nothing");
        assert!(!store.lease("relay", "b", long).await.expect("lease"));
        store.release_lease("relay", "a").await.expect("release");
        assert!(store.lease("relay", "b", long).await.expect("lease after release"));
    }

    async fn pauses_are_stored(store: Store) {
        assert!(store.set_paused("r1", true).await.expect("pause"));
        assert!(!store.set_paused("r1", true).await.expect("pause again"), "no change");
        assert!(store.set_paused("r2", true).await.expect("pause"));
        assert_eq!(store.paused_routes().await.expect("list"), ["r1", "r2"]);
        assert!(store.set_paused("r1", false).await.expect("resume"));
        assert_eq!(store.paused_routes().await.expect("list"), ["r2"]);
    }

    crate::store::test_support::on_both_backends!(leases_are_held_by_one_holder_until_they_expire, pauses_are_stored);
}
