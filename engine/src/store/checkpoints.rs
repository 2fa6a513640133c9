//! Checkpoints: small key/value facts a source keeps across restarts, such as a schedule's
//! last fire time.

use sqlx::Row;

use super::{Store, StoreError, now_millis};

impl Store {
    pub async fn checkpoint_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM checkpoints WHERE name = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("checkpoint_get"))?;
        row.map(|r| r.try_get("value")).transpose().map_err(|e| StoreError::Corrupt {
            what: "checkpoint",
            id: key.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Sets `key` to `value`, replacing what was there.
    pub async fn checkpoint_put(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let _writer = self.write_guard().await;
        sqlx::query(
            "INSERT INTO checkpoints (name, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE \
             SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("checkpoint_put"))?;
        Ok(())
    }
}
