//! Budgets: what an `llm` connector may spend — provider calls, tokens, money — for the whole
//! connector, per route or per key (a deal), in all or per day in a time zone. The ledger is two
//! tables in the store's database, so every instance on one store draws on one budget.
//!
//! Before each provider call (every repair and every fallback is one) its worst case is
//! reserved in one transaction: a call, the prompt's tokens bounded from above (a token is at
//! least one byte in the byte-level and byte-fallback tokenizers these providers use, plus
//! each message's framing) plus the package's `max_tokens`, and their price. A budget the
//! reservation does not fit refuses the call before any provider is asked. After the call the
//! reservation is settled to the usage the provider reported. A reservation never settled (its
//! process was killed) expires after the call's timeout and is given back. A ledger that cannot
//! be reached refuses the call (fail closed).
//!
//! ```yaml
//! llm:
//!   kind: llm
//!   time_zone: Europe/Moscow                 # the day of `period: day` (default UTC)
//!   prices:                                  # per million tokens, in the budgets' currency
//!     gpt-4o-mini: { input: 0.15, output: 0.60 }
//!   budgets:
//!     - { name: daily, period: day, cost: 20.00 }
//!     - { name: per-route, per: route, calls: 5000 }
//!     - { name: per-deal, per: body.deal_id, tokens: 200000 }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Days, TimeZone, Utc};
use chrono_tz::Tz;
use junction_engine::Message;
use junction_engine::config::node::{Node, NodeError};
use junction_engine::connector::ConnectorError;
use junction_engine::script::{Script, ScriptEngine};
use junction_engine::store::Store;
use serde::Deserialize;
use serde_json::Value;
use sqlx::{AnyPool, Row};
use tokio::sync::OnceCell;

use super::Conversation;

/// One entry of `budgets:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BudgetSpec {
    /// Names the budget in errors, metrics and the ledger.
    name: String,
    /// `route` (each route apart), or an expression over the message whose value is the key
    /// (`body.deal_id`: each deal apart); without it, the whole connector.
    #[serde(default)]
    per: Option<String>,
    #[serde(default)]
    period: Period,
    /// Provider calls, at most.
    #[serde(default)]
    calls: Option<u64>,
    /// Input and output tokens together, at most.
    #[serde(default)]
    tokens: Option<u64>,
    /// Money, at most, priced by `prices`.
    #[serde(default)]
    cost: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Period {
    /// Never renews.
    #[default]
    Total,
    /// Renews at midnight in the connector's `time_zone`.
    Day,
}

/// A model's price per million tokens.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Price {
    input: f64,
    output: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Unit {
    Calls,
    Tokens,
    /// Millionths of the budgets' currency.
    Cost,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Calls => "calls",
            Unit::Tokens => "tokens",
            Unit::Cost => "cost",
        }
    }
}

enum Per {
    Connector,
    Route,
    Key(Script),
}

struct Budget {
    name: String,
    per: Per,
    period: Period,
    /// Each unit's limit (cost in millionths).
    limits: Vec<(Unit, i64)>,
}

/// What a call spent, or may spend at worst.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Spend {
    calls: i64,
    tokens: i64,
    /// In millionths of the currency.
    cost: i64,
}

impl Spend {
    fn of(&self, unit: Unit) -> i64 {
        match unit {
            Unit::Calls => self.calls,
            Unit::Tokens => self.tokens,
            Unit::Cost => self.cost,
        }
    }
}

/// `prices:`, each model's price per million tokens, and the targets' models.
#[derive(Debug, Default)]
pub(super) struct Prices {
    of: HashMap<String, Price>,
    models: Vec<String>,
}

impl Prices {
    pub(super) fn new(prices: BTreeMap<String, Price>, models: Vec<String>) -> Self {
        Self { of: prices.into_iter().collect(), models }
    }

    /// A target's model without a price.
    fn missing(&self) -> Option<&str> {
        self.models.iter().find(|m| !self.has(m)).map(String::as_str)
    }

    fn has(&self, model: &str) -> bool {
        self.of.contains_key(model)
    }

    /// In millionths of the currency, rounded up; 0 for a model without a price.
    fn cost(&self, model: &str, input: i64, output: i64) -> i64 {
        self.of.get(model).map_or(0, |p| (input as f64 * p.input + output as f64 * p.output).ceil() as i64)
    }

    /// The price of what `usage` reports, in millionths, when the model has one.
    pub(super) fn cost_of(&self, model: &str, usage: &Value) -> Option<u64> {
        if !self.has(model) {
            return None;
        }
        let input = usage.get("prompt_tokens").and_then(Value::as_i64)?;
        let output = usage.get("completion_tokens").and_then(Value::as_i64)?;
        u64::try_from(self.cost(model, input, output)).ok()
    }
}

/// A connector's budgets and its ledger.
pub(super) struct Budgets {
    connector: String,
    list: Vec<Budget>,
    zone: Tz,
    prices: Arc<Prices>,
    /// How long a reservation is held before it is taken for abandoned.
    hold_for: Duration,
    scripts: Arc<ScriptEngine>,
    ledger: OnceCell<AnyPool>,
    store: std::sync::OnceLock<Store>,
}

fn node_error(message: impl Into<String>, node: Option<&Node>, fallback: &Node) -> NodeError {
    NodeError { message: message.into(), pos: Some(node.map_or(fallback.pos, |n| n.pos)) }
}

impl Budgets {
    /// Reads `budgets` and `time_zone`; `None` without budgets.
    pub(super) fn from_options(
        connector: &str,
        specs: Vec<BudgetSpec>,
        prices: &Arc<Prices>,
        zone: Option<&str>,
        timeout: Duration,
        options: &Node,
        scripts: &Arc<ScriptEngine>,
    ) -> Result<Option<Budgets>, NodeError> {
        let zone = match zone {
            None => Tz::UTC,
            Some(name) => name.parse::<Tz>().map_err(|_| {
                node_error(
                    format!("`{name}` is not a time zone of the tz database (e.g. Europe/Moscow, UTC)"),
                    options.get("time_zone"),
                    options,
                )
            })?,
        };
        if specs.is_empty() {
            return Ok(None);
        }
        let nodes = match options.get("budgets").map(|n| &n.value) {
            Some(junction_engine::config::node::NodeValue::Seq(items)) => items.clone(),
            _ => Vec::new(),
        };
        let mut list = Vec::new();
        for (i, spec) in specs.into_iter().enumerate() {
            let at = nodes.get(i).unwrap_or(options);
            let per = match spec.per.as_deref() {
                None => Per::Connector,
                Some("route") => Per::Route,
                Some(expr) => Per::Key(
                    scripts
                        .compile_expression(&format!("budget {}", spec.name), expr)
                        .map_err(|e| node_error(format!("Rhai: {}", e.message), at.get("per"), at))?,
                ),
            };
            let mut limits = Vec::new();
            if let Some(calls) = spec.calls {
                limits.push((Unit::Calls, i64::try_from(calls).unwrap_or(i64::MAX)));
            }
            if let Some(tokens) = spec.tokens {
                limits.push((Unit::Tokens, i64::try_from(tokens).unwrap_or(i64::MAX)));
            }
            if let Some(cost) = spec.cost {
                if !(cost.is_finite() && cost >= 0.0) {
                    return Err(node_error("`cost` is an amount of money, 0 or more", at.get("cost"), at));
                }
                limits.push((Unit::Cost, micros(cost)));
                if let Some(model) = prices.missing() {
                    return Err(node_error(
                        format!(
                            "budget `{}` counts money, and `prices` has no price for the model `{model}`",
                            spec.name
                        ),
                        options.get("prices"),
                        at,
                    ));
                }
            }
            if limits.is_empty() {
                return Err(node_error(
                    format!("budget `{}` limits nothing: give it `calls`, `tokens` or `cost`", spec.name),
                    Some(at),
                    at,
                ));
            }
            if list.iter().any(|b: &Budget| b.name == spec.name) {
                return Err(node_error(format!("two budgets are named `{}`", spec.name), at.get("name"), at));
            }
            list.push(Budget { name: spec.name, per, period: spec.period, limits });
        }
        Ok(Some(Budgets {
            connector: connector.to_owned(),
            list,
            zone,
            prices: prices.clone(),
            // A call may fetch a token, be refused with a 401, fetch another and go again: two
            // timeouts and room for the rest. `call_bound` keeps every call within it.
            hold_for: timeout * 2 + Duration::from_secs(10),
            scripts: scripts.clone(),
            ledger: OnceCell::new(),
            store: std::sync::OnceLock::new(),
        }))
    }

    /// Whether calls must state their `max_tokens` (a budget counts tokens or money).
    pub(super) fn bounds_tokens(&self) -> bool {
        self.list.iter().any(|b| b.limits.iter().any(|(u, _)| *u != Unit::Calls))
    }

    /// The longest a provider call may take: well within its reservation's life.
    pub(super) fn call_bound(&self) -> Duration {
        self.hold_for.saturating_sub(Duration::from_secs(3))
    }

    pub(super) fn start(&self, store: &Store) {
        let _ = self.store.set(store.clone());
    }

    /// The buckets a call of `msg` draws on: for each budget and unit, its ledger key, limit
    /// and name. Fails when a budget's key cannot be read from the message.
    pub(super) fn account(&self, msg: &Message) -> Result<Account, ConnectorError> {
        let now = Utc::now();
        let mut buckets = Vec::new();
        for b in &self.list {
            let scope = match &b.per {
                Per::Connector => "*".to_owned(),
                Per::Route => format!("route={}", msg.meta.route),
                // Hashed: the ledger keeps no personal data (a key may be an e-mail).
                Per::Key(script) => match super::key_of(&self.scripts, script, msg) {
                    Ok(key) => format!("key={}", key_hash(&key)),
                    Err(why) => {
                        return Err(ConnectorError::rejected(format!(
                            "budget `{}` is kept per key, whose value {why}",
                            b.name
                        )));
                    }
                },
            };
            let (period, renews) = match b.period {
                Period::Total => ("all".to_owned(), None),
                Period::Day => {
                    let local = now.with_timezone(&self.zone);
                    let next = local
                        .date_naive()
                        .checked_add_days(Days::new(1))
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                        .and_then(|t| self.zone.from_local_datetime(&t).earliest());
                    (local.format("%Y-%m-%d").to_string(), next.map(|n| n.with_timezone(&Utc)))
                }
            };
            for (unit, limit) in &b.limits {
                buckets.push(Bucket {
                    key: format!("{}|{}|{}|{}|{}", self.connector, b.name, scope, period, unit.as_str()),
                    unit: *unit,
                    limit: *limit,
                    budget: b.name.clone(),
                    renews,
                    shown: matches!(b.per, Per::Connector),
                });
            }
        }
        // One order for every transaction: two reservations never wait on each other in a circle.
        buckets.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Account { buckets })
    }

    /// The worst a call of `conversation` to `model` may spend; `extra` bytes go with the
    /// prompt (the schema, as a response format or a function).
    pub(super) fn worst_case(
        &self,
        model: &str,
        conversation: &Conversation,
        extra: usize,
        max_tokens: Option<u32>,
    ) -> Spend {
        let prompt: usize = conversation.messages().iter().map(|(_, text)| text.len() + 4).sum::<usize>() + 3 + extra;
        let input = i64::try_from(prompt).unwrap_or(i64::MAX);
        let output = i64::from(max_tokens.unwrap_or(0));
        Spend { calls: 1, tokens: input.saturating_add(output), cost: self.price(model, input, output) }
    }

    /// What a call reported it spent: `usage` as the providers give it (`prompt_tokens`,
    /// `completion_tokens`); without it, the worst case stands.
    pub(super) fn reported(&self, model: &str, usage: &Value, worst: Spend) -> Spend {
        let count = |field: &str| usage.get(field).and_then(Value::as_i64);
        match (count("prompt_tokens"), count("completion_tokens")) {
            (Some(input), Some(output)) => {
                Spend { calls: 1, tokens: input + output, cost: self.price(model, input, output) }
            }
            _ => worst,
        }
    }

    /// What a failed call spent: nothing when the provider was never reached; a call and no
    /// tokens when it answered an error; otherwise (a timeout, a broken answer) the worst
    /// case, since the provider may have charged for it.
    pub(super) fn failed(e: &ConnectorError, worst: Spend) -> Spend {
        match e {
            ConnectorError::Unavailable { .. } => Spend::default(),
            _ if crate::web::answered(e).is_some() => Spend { calls: 1, ..Spend::default() },
            _ => worst,
        }
    }

    fn price(&self, model: &str, input: i64, output: i64) -> i64 {
        self.prices.cost(model, input, output)
    }

    async fn ledger(&self) -> Result<&AnyPool, ConnectorError> {
        self.ledger
            .get_or_try_init(|| async {
                let store =
                    self.store.get().ok_or_else(|| ConnectorError::unavailable("the budget ledger is not open yet"))?;
                create_tables(store.pool()).await.map_err(|e| unreachable(&e))?;
                Ok(store.pool().clone())
            })
            .await
    }

    /// Reserves `worst` on every bucket of `account`, all or none: the hold to settle, or the
    /// error that refuses the call (a budget it does not fit; the ledger out of reach).
    pub(super) async fn reserve(&self, account: &Account, worst: Spend) -> Result<Hold, ConnectorError> {
        let pool = self.ledger().await?;
        reclaim(pool).await.map_err(|e| unreachable(&e))?;
        let id = uuid::Uuid::now_v7().to_string();
        let expires_at = (Utc::now() + self.hold_for).timestamp_millis();
        let mut tx = pool.begin().await.map_err(|e| unreachable(&e))?;
        let mut left = Vec::new();
        for bucket in &account.buckets {
            let amount = worst.of(bucket.unit);
            sqlx::query("INSERT INTO junction_llm_spent (bucket, used) VALUES ($1, 0) ON CONFLICT (bucket) DO NOTHING")
                .bind(&bucket.key)
                .execute(&mut *tx)
                .await
                .map_err(|e| unreachable(&e))?;
            let used: Option<i64> = sqlx::query(
                "UPDATE junction_llm_spent SET used = used + $2 WHERE bucket = $1 AND used + $2 <= $3 RETURNING used",
            )
            .bind(&bucket.key)
            .bind(amount)
            .bind(bucket.limit)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| unreachable(&e))?
            .map(|row| row.try_get::<i64, _>(0))
            .transpose()
            .map_err(|e| unreachable(&e))?;
            let Some(used) = used else {
                drop(tx);
                return Err(self.exhausted(bucket, amount));
            };
            sqlx::query("INSERT INTO junction_llm_holds (id, bucket, amount, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(&id)
                .bind(&bucket.key)
                .bind(amount)
                .bind(expires_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| unreachable(&e))?;
            left.push((bucket, used));
        }
        tx.commit().await.map_err(|e| unreachable(&e))?;
        for (bucket, used) in left {
            self.show(bucket, used);
        }
        Ok(Hold { id, worst })
    }

    /// Settles `hold` to what the call `spent`. A hold that expired meanwhile was given back:
    /// what was spent is counted all the same.
    pub(super) async fn settle(&self, account: &Account, hold: Hold, spent: Spend) {
        if let Err(e) = self.try_settle(account, &hold, spent).await {
            tracing::warn!(connector = %self.connector, hold = %hold.id, error = %e, "cannot settle a budget reservation; it is given back when it expires, and this call's spending is not counted");
        }
    }

    async fn try_settle(&self, account: &Account, hold: &Hold, spent: Spend) -> Result<(), sqlx::Error> {
        let pool = self.ledger().await.map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        let mut tx = pool.begin().await?;
        let held: HashMap<String, i64> =
            sqlx::query("DELETE FROM junction_llm_holds WHERE id = $1 RETURNING bucket, amount")
                .bind(&hold.id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| Ok((row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)?)))
                .collect::<Result<_, sqlx::Error>>()?;
        let mut now = Vec::new();
        for bucket in &account.buckets {
            let change = spent.of(bucket.unit) - held.get(&bucket.key).copied().unwrap_or(0);
            let used: i64 =
                sqlx::query("UPDATE junction_llm_spent SET used = used + $2 WHERE bucket = $1 RETURNING used")
                    .bind(&bucket.key)
                    .bind(change)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?;
            now.push((bucket, used));
        }
        tx.commit().await?;
        for (bucket, used) in now {
            self.show(bucket, used);
        }
        Ok(())
    }

    fn exhausted(&self, bucket: &Bucket, amount: i64) -> ConnectorError {
        let what = match bucket.unit {
            Unit::Calls => "a call".to_owned(),
            Unit::Tokens => format!("{amount} tokens at worst"),
            Unit::Cost => format!("{:.6} at worst", amount as f64 / 1e6),
        };
        let when = bucket.renews.map_or_else(|| "it does not renew".to_owned(), |at| format!("it renews at {at}"));
        let after = bucket.renews.and_then(|at| (at - Utc::now()).to_std().ok());
        metrics::counter!("junction_llm_budget_refusals_total", "connector" => self.connector.clone(), "budget" => bucket.budget.clone())
            .increment(1);
        ConnectorError::exhausted(
            format!(
                "budget `{}` of connector {} has no room for this call ({what}; the limit is {} {}); {when}",
                bucket.budget,
                self.connector,
                if bucket.unit == Unit::Cost {
                    format!("{:.2}", bucket.limit as f64 / 1e6)
                } else {
                    bucket.limit.to_string()
                },
                bucket.unit.as_str(),
            ),
            after,
        )
    }

    /// `junction_llm_budget_remaining{connector, budget, unit}` of the connector-wide budgets
    /// (per-route and per-key budgets would be a series per key), and their refusals counted
    /// from zero, so that the first refusal is an increase an alert sees.
    fn show(&self, bucket: &Bucket, used: i64) {
        if bucket.shown {
            metrics::counter!("junction_llm_budget_refusals_total", "connector" => self.connector.clone(), "budget" => bucket.budget.clone())
                .increment(0);
            let left = (bucket.limit - used) as f64;
            let left = if bucket.unit == Unit::Cost { left / 1e6 } else { left };
            metrics::gauge!("junction_llm_budget_remaining", "connector" => self.connector.clone(), "budget" => bucket.budget.clone(), "unit" => bucket.unit.as_str())
                .set(left);
        }
    }
}

/// The buckets one call draws on.
pub(super) struct Account {
    buckets: Vec<Bucket>,
}

struct Bucket {
    /// `connector|budget|scope|period|unit`.
    key: String,
    unit: Unit,
    limit: i64,
    budget: String,
    /// When its period ends (a daily budget), for `Retry-After`.
    renews: Option<DateTime<Utc>>,
    /// Whether its remainder is a metric.
    shown: bool,
}

/// A reservation made for one call.
pub(super) struct Hold {
    id: String,
    pub(super) worst: Spend,
}

/// The ledger's name for a budget's key: the first 16 hex digits of its SHA-256.
pub(super) fn key_hash(key: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(key.as_bytes()))[..16].to_owned()
}

fn micros(amount: f64) -> i64 {
    (amount * 1e6).round() as i64
}

fn unreachable(e: &dyn std::fmt::Display) -> ConnectorError {
    ConnectorError::unavailable(format!("the llm budget ledger cannot be reached, so no call is made: {e}"))
}

/// The ledger's tables, written in SQL both store backends read. Instances starting together
/// may race to create them: a failure is tried again once they exist.
async fn create_tables(pool: &AnyPool) -> Result<(), sqlx::Error> {
    const TABLES: [&str; 3] = [
        "CREATE TABLE IF NOT EXISTS junction_llm_spent (bucket TEXT PRIMARY KEY, used BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS junction_llm_holds (id TEXT NOT NULL, bucket TEXT NOT NULL, \
         amount BIGINT NOT NULL, expires_at BIGINT NOT NULL, PRIMARY KEY (id, bucket))",
        "CREATE INDEX IF NOT EXISTS junction_llm_holds_expiry ON junction_llm_holds (expires_at)",
    ];
    let mut last = None;
    for _ in 0..3 {
        let mut failed = None;
        for sql in TABLES {
            if let Err(e) = sqlx::query(sql).execute(pool).await {
                failed = Some(e);
                break;
            }
        }
        match failed {
            None => return Ok(()),
            Some(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last.unwrap_or(sqlx::Error::PoolClosed))
}

/// Gives back what expired reservations held: their calls were never settled.
async fn reclaim(pool: &AnyPool) -> Result<(), sqlx::Error> {
    let now = Utc::now().timestamp_millis();
    let expired: Option<i64> = sqlx::query("SELECT MIN(expires_at) FROM junction_llm_holds")
        .fetch_one(pool)
        .await?
        .try_get::<Option<i64>, _>(0)?;
    if expired.is_none_or(|at| at >= now) {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    let rows = sqlx::query("DELETE FROM junction_llm_holds WHERE expires_at < $1 RETURNING bucket, amount")
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
    let mut back: BTreeMap<String, i64> = BTreeMap::new();
    for row in rows {
        *back.entry(row.try_get::<String, _>(0)?).or_default() += row.try_get::<i64, _>(1)?;
    }
    for (bucket, amount) in &back {
        sqlx::query("UPDATE junction_llm_spent SET used = used - $2 WHERE bucket = $1")
            .bind(bucket)
            .bind(amount)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    if !back.is_empty() {
        tracing::info!(buckets = back.len(), "gave back the budget of calls whose reservations expired unsettled");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_per_million_tokens_in_millionths() {
        assert_eq!(micros(5.0), 5_000_000);
        let prices = Prices::new(
            BTreeMap::from([("gpt-4o-mini".to_owned(), Price { input: 0.15, output: 0.60 })]),
            vec!["gpt-4o-mini".into(), "qwen".into()],
        );
        // 1,000 input tokens at 0.15 and 500 output at 0.60 per million: 0.00045.
        assert_eq!(prices.cost("gpt-4o-mini", 1000, 500), 450);
        assert_eq!(prices.cost("gpt-4o-mini", 1, 0), 1, "rounded up");
        assert_eq!(prices.missing(), Some("qwen"));
        let usage = serde_json::json!({ "prompt_tokens": 1000, "completion_tokens": 500 });
        assert_eq!(prices.cost_of("gpt-4o-mini", &usage), Some(450));
        assert_eq!(prices.cost_of("qwen", &usage), None);
    }
}
