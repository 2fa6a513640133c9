//! Provenance rows: one per step of a recorded run (see `crate::provenance`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError};

/// What one step of a recorded run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProvenanceStep {
    pub run_id: String,
    pub route: String,
    pub message_id: String,
    pub trace_id: Option<String>,
    pub key: Option<String>,
    /// The step's place in its run, from 0.
    pub seq: i64,
    /// The step's label: `2:transform`.
    pub step: String,
    pub at: DateTime<Utc>,
    pub took_us: i64,
    /// `ok`, `dropped` or `failed`.
    pub outcome: String,
    pub error: Option<String>,
    pub headers: Value,
    pub before: Value,
    /// What came out: a body, an array of them after a split; `None` when dropped or failed.
    pub after: Option<Value>,
}

/// At most this many steps are returned for one search.
const MAX_FOUND: i64 = 2000;

impl Store {
    /// Stores recorded steps, all or none.
    pub async fn put_provenance(&self, steps: &[ProvenanceStep]) -> Result<(), StoreError> {
        if steps.is_empty() {
            return Ok(());
        }
        let err = || StoreError::query("put_provenance");
        let _writer = self.write_guard().await;
        let mut tx = self.pool.begin().await.map_err(err())?;
        for s in steps {
            sqlx::query(
                "INSERT INTO provenance (run_id, route, message_id, trace_id, business_key, seq, step, at, took_us, \
                 outcome, error, headers, body_before, body_after) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(&s.run_id)
            .bind(&s.route)
            .bind(&s.message_id)
            .bind(s.trace_id.as_deref())
            .bind(s.key.as_deref())
            .bind(s.seq)
            .bind(&s.step)
            .bind(s.at.timestamp_millis())
            .bind(s.took_us)
            .bind(&s.outcome)
            .bind(s.error.as_deref())
            .bind(s.headers.to_string())
            .bind(s.before.to_string())
            .bind(s.after.as_ref().map(Value::to_string))
            .execute(&mut *tx)
            .await
            .map_err(err())?;
        }
        tx.commit().await.map_err(err())
    }

    /// The recorded steps of every run `q` names — a message id, trace id, business key or
    /// run id — and of every run in the same traces (the routes those messages caused over
    /// the bus), in the order they ran.
    pub async fn find_provenance(&self, q: &str) -> Result<Vec<ProvenanceStep>, StoreError> {
        const COLUMNS: &str = "run_id, route, message_id, trace_id, business_key, seq, step, at, took_us, outcome, \
                               error, headers, body_before, body_after";
        let direct = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM provenance \
             WHERE message_id = $1 OR trace_id = $1 OR business_key = $1 OR run_id = $1 \
             ORDER BY at, run_id, seq LIMIT $2"
        )))
        .bind(q)
        .bind(MAX_FOUND)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("find_provenance"))?;
        let mut steps: Vec<ProvenanceStep> = direct.iter().map(decode).collect::<Result<_, _>>()?;
        let mut traces: Vec<String> = steps.iter().filter_map(|s| s.trace_id.clone()).filter(|t| t != q).collect();
        traces.sort();
        traces.dedup();
        for trace in traces.iter().take(20) {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM provenance WHERE trace_id = $1 ORDER BY at, run_id, seq LIMIT $2"
            )))
            .bind(trace)
            .bind(MAX_FOUND)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("find_provenance"))?;
            for row in &rows {
                let step = decode(row)?;
                if !steps.iter().any(|s| s.run_id == step.run_id && s.seq == step.seq) {
                    steps.push(step);
                }
            }
        }
        steps.sort_by(|a, b| (a.at, &a.run_id, a.seq).cmp(&(b.at, &b.run_id, b.seq)));
        Ok(steps)
    }

    /// Deletes what is older than `before`, and all but the newest `keep` rows.
    pub async fn prune_provenance(&self, keep: i64, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let _writer = self.write_guard().await;
        let done = sqlx::query(
            "DELETE FROM provenance WHERE at < $1 OR id <= (SELECT COALESCE(MAX(id), 0) - $2 FROM provenance)",
        )
        .bind(before.timestamp_millis())
        .bind(keep)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("prune_provenance"))?;
        Ok(done.rows_affected())
    }
}

fn decode(row: &AnyRow) -> Result<ProvenanceStep, StoreError> {
    let get = |e| StoreError::query("find_provenance")(e);
    let json = |text: String| serde_json::from_str(&text).unwrap_or(Value::String(text));
    let at: i64 = row.try_get("at").map_err(get)?;
    Ok(ProvenanceStep {
        run_id: row.try_get("run_id").map_err(get)?,
        route: row.try_get("route").map_err(get)?,
        message_id: row.try_get("message_id").map_err(get)?,
        trace_id: row.try_get("trace_id").map_err(get)?,
        key: row.try_get("business_key").map_err(get)?,
        seq: row.try_get("seq").map_err(get)?,
        step: row.try_get("step").map_err(get)?,
        at: DateTime::from_timestamp_millis(at).unwrap_or_default(),
        took_us: row.try_get("took_us").map_err(get)?,
        outcome: row.try_get("outcome").map_err(get)?,
        error: row.try_get("error").map_err(get)?,
        headers: json(row.try_get("headers").map_err(get)?),
        before: json(row.try_get("body_before").map_err(get)?),
        after: row.try_get::<Option<String>, _>("body_after").map_err(get)?.map(json),
    })
}
