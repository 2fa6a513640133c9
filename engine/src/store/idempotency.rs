//! Idempotency keys: the keys an `idempotent` step let through, until they expire, so a
//! duplicate is recognised after a restart too. A key is written once its message was
//! delivered; a message that failed leaves no key, so the replay of its dead letter passes.

use sqlx::Row;

use super::{StepAt, Store, StoreError};

impl Store {
    /// Whether `key` was let through by this step and has not expired at `now` (unix ms).
    pub async fn idempotency_seen(&self, at: &StepAt, key: &str, now: i64) -> Result<bool, StoreError> {
        let row =
            sqlx::query("SELECT expires_at FROM idempotency_keys WHERE route = $1 AND step = $2 AND idem_key = $3")
                .bind(&at.route)
                .bind(&at.step)
                .bind(key)
                .fetch_optional(self.pool())
                .await
                .map_err(StoreError::query("idempotency seen"))?;
        let Some(row) = row else { return Ok(false) };
        let expires_at: i64 = row.try_get("expires_at").map_err(StoreError::query("idempotency seen"))?;
        Ok(expires_at > now)
    }

    /// Records `key` as let through until `expires_at` (unix ms), replacing an expired record.
    pub async fn idempotency_record(&self, at: &StepAt, key: &str, expires_at: i64) -> Result<(), StoreError> {
        let _writer = self.write_guard().await;
        sqlx::query(
            "INSERT INTO idempotency_keys (route, step, idem_key, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (route, step, idem_key) DO UPDATE SET expires_at = excluded.expires_at",
        )
        .bind(&at.route)
        .bind(&at.step)
        .bind(key)
        .bind(expires_at)
        .execute(self.pool())
        .await
        .map_err(StoreError::query("idempotency record"))?;
        Ok(())
    }

    /// Deletes the keys expired at `now` (unix ms), every step's; says how many.
    pub async fn idempotency_purge(&self, now: i64) -> Result<u64, StoreError> {
        let _writer = self.write_guard().await;
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= $1")
            .bind(now)
            .execute(self.pool())
            .await
            .map_err(StoreError::query("idempotency purge"))?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::on_both_backends;

    on_both_backends!(keys_are_seen_until_they_expire_and_per_step);

    async fn keys_are_seen_until_they_expire_and_per_step(store: Store) {
        let at = StepAt { route: "r".into(), step: "1:idempotent".into() };
        let other = StepAt { route: "r".into(), step: "3:idempotent".into() };
        assert!(!store.idempotency_seen(&at, "k", 1_000).await.expect("seen"));
        store.idempotency_record(&at, "k", 2_000).await.expect("record");
        assert!(store.idempotency_seen(&at, "k", 1_000).await.expect("seen"));
        assert!(!store.idempotency_seen(&other, "k", 1_000).await.expect("seen"), "another step's keys are its own");
        assert!(!store.idempotency_seen(&at, "k", 2_000).await.expect("seen"), "expired");
        // Recording again after expiry extends it.
        store.idempotency_record(&at, "k", 5_000).await.expect("record");
        assert!(store.idempotency_seen(&at, "k", 3_000).await.expect("seen"));
        store.idempotency_record(&other, "old", 1_500).await.expect("record");
        assert_eq!(store.idempotency_purge(3_000).await.expect("purge"), 1, "only `old` expired");
        assert!(store.idempotency_seen(&at, "k", 3_000).await.expect("seen"));
    }
}
