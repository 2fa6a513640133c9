//! The `clickhouse` connector through the binary: rows from many messages loaded in batches of
//! `INSERT … FORMAT JSONEachRow`, each deduplicated by a token made of its bytes. Against the
//! simulator, the failure paths (an insert that was written and then answered 500 is sent
//! again byte for byte and stored once; a 503 waited out; a row the table cannot take refused
//! alone); against a real ClickHouse engine (chDB, from PyPI, behind
//! `tests/clickhouse/chdb_http.py`, a thin shim of ClickHouse's HTTP interface), the tables
//! Junction creates, a batch sent twice stored once, and the engine's own errors.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::{Junction, post_json, project, sqlite_store};
use junction_simulators::Fault;
use junction_simulators::clickhouse::ClickHouse;
use serde_json::{Value, json};

fn project_for(url: &str, user: &str) -> tempfile::TempDir {
    project(&[
        (
            "junction.yaml",
            &format!(
                "routes: [routes/]\nconnectors:\n  olap:\n    kind: clickhouse\n    url: \"{url}\"\n    database: dwh\n    user: {user}\n    password: \"${{CH_PASSWORD}}\"\n    batch: {{ rows: 100, every: 100ms }}\n    tables:\n      campaign_stats:\n        key: [campaign_id, day]\n        columns: {{ campaign_id: UInt64, day: Date, clicks: UInt64, cost: \"Decimal(18, 2)\" }}\n"
            ),
        ),
        (
            "routes/load.yaml",
            "route: load\nmax_in_flight: 64\nfrom: { http: { method: POST, path: /stats, auth: none } }\nsteps:\n  - to: { connector: olap, table: campaign_stats }\n",
        ),
    ])
}

fn rows(campaign: u64, days: u32) -> Value {
    (1..=days)
        .map(
            |d| json!({ "campaign_id": campaign, "day": format!("2026-12-{d:02}"), "clicks": d * 10, "cost": "12.50" }),
        )
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_survive_a_lost_answer_a_503_and_a_bad_row_on_the_simulator() {
    let sim = ClickHouse::start("127.0.0.1:0", "loader", "s3cret").await.expect("simulator");
    let (_tmp, store) = sqlite_store();
    let dir = project_for(&sim.url, "loader");
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store), ("CH_PASSWORD", "s3cret")]);

    // The insert is written, then answered 500 (a lost answer): the connector sends the same
    // bytes with the same token again, and the table skips it.
    sim.fail_next([Fault::AfterCommit { status: 500 }]);
    let (status, body) = post_json(&j, "/stats", rows(701, 3)).await;
    assert_eq!(status, 200, "{body} {}", j.logs());
    assert_eq!(sim.rows("dwh.campaign_stats").len(), 3, "stored once: {:?}", sim.rows("dwh.campaign_stats"));
    assert_eq!(sim.deduplicated(), 1, "the second send was the same insert");

    // A 503 with Retry-After: waited out, then written.
    sim.fail_next([Fault::Status { status: 503, retry_after: Some(1) }]);
    let (status, body) = post_json(&j, "/stats", rows(702, 2)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sim.rows("dwh.campaign_stats").len(), 5);

    // A row the table has no column for is refused alone, before any batch.
    let (status, body) = post_json(&j, "/stats", json!({ "campaign_id": 9, "day": "2026-12-01", "cpm": 3 })).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("no column `cpm`"), "{body}");

    // Many messages at once share batches; every row lands once.
    let c = reqwest::Client::new();
    let calls: Vec<_> = (0..20)
        .map(|n| {
            let (c, url, row) = (c.clone(), j.url("/stats"), rows(800 + n, 1));
            tokio::spawn(async move { c.post(url).json(&row).send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("join").expect("send"), 200);
    }
    assert_eq!(sim.rows("dwh.campaign_stats").len(), 25);
    let inserts = sim.statements().iter().filter(|s| s.starts_with("INSERT INTO dwh.campaign_stats")).count();
    assert!(inserts < 20 + 4, "20 messages in batches, not one insert each: {inserts} inserts");

    let create = sim.statements().into_iter().find(|s| s.starts_with("CREATE TABLE")).expect("the table was created");
    assert!(
        create.contains("ENGINE = ReplacingMergeTree ORDER BY (campaign_id, day)")
            && create.contains("non_replicated_deduplication_window = 1000"),
        "{create}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_the_servers_trouble_not_the_rows() {
    let sim = ClickHouse::start("127.0.0.1:0", "loader", "s3cret").await.expect("simulator");
    let (_tmp, store) = sqlite_store();
    let dir = project_for(&sim.url, "loader");
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store), ("CH_PASSWORD", "wr0ng-pa55")]);
    // Unavailable (503), as a server down: not a verdict on the rows.
    let (status, body) = post_json(&j, "/stats", rows(1, 1)).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.to_string().contains("AUTHENTICATION_FAILED"), "{body}");
    assert!(!j.logs().contains("wr0ng-pa55"), "the password is not logged");
}

/// A real ClickHouse engine (chDB) behind ClickHouse's HTTP interface, killed on drop.
struct RealClickHouse {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Drop for RealClickHouse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Python with chDB: `$JUNCTION_PYTHON`, else the repository's `.venv` (./scripts/test
/// installs `chdb-core` there).
fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates: Vec<PathBuf> = std::env::var_os("JUNCTION_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([root.join(".venv/bin/python")])
        .collect();
    for python in &candidates {
        if Command::new(python).args(["-c", "import chdb"]).output().is_ok_and(|o| o.status.success()) {
            return python.clone();
        }
    }
    panic!(
        "no Python with chDB (tried {candidates:?}): run ./scripts/test, which installs chdb-core into .venv, \
         or pip install --no-deps chdb-core==26.9.0 into $JUNCTION_PYTHON's environment"
    );
}

fn real_clickhouse(user: &str, password: &str) -> RealClickHouse {
    let data = tempfile::tempdir().expect("temp dir");
    let shim = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clickhouse/chdb_http.py");
    let mut child = Command::new(python())
        .arg(shim)
        .args(["0", data.path().to_str().expect("utf-8"), "--user", user, "--password", password])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the chDB shim");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("the shim's first line");
    let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("the shim said {line:?}")).to_owned();
    RealClickHouse { child, url: format!("http://{addr}"), _data: data }
}

/// A query on the real engine, its text answer.
async fn select(ch: &RealClickHouse, sql: &str) -> String {
    let resp = reqwest::Client::new()
        .post(&ch.url)
        .header("X-ClickHouse-User", "loader")
        .header("X-ClickHouse-Key", "s3cret")
        .body(sql.to_owned())
        .send()
        .await
        .expect("query");
    let status = resp.status();
    let text = resp.text().await.expect("text");
    assert!(status.is_success(), "{sql}: {status} {text}");
    text.trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_sent_twice_is_stored_once_on_a_real_clickhouse() {
    let ch = real_clickhouse("loader", "s3cret");
    let (_tmp, store) = sqlite_store();
    let dwh = tempfile::tempdir().expect("tempdir");
    let file = dwh.path().join("dwh.db");
    history(&file, 5).await;
    let dir = project_for(&ch.url, "loader");
    let root = std::fs::read_to_string(dir.path().join("junction.yaml")).expect("root");
    std::fs::write(
        dir.path().join("junction.yaml"),
        format!(
            "{root}      stats:\n        key: [id]\n        columns: {{ id: UInt64, campaign_id: UInt64, day: Date, clicks: UInt64, cost: \"Decimal(18, 2)\" }}\n  dwh:\n    kind: sql\n    url: \"sqlite://{}\"\n    tables:\n      stats:\n        key: [id]\n        columns: {{ id: integer, campaign_id: integer, day: date, clicks: integer, cost: numeric }}\n",
            file.display()
        ),
    )
    .expect("root");
    std::fs::write(
        dir.path().join("routes/backfill.yaml"),
        "route: backfill\nfrom: { connector: dwh, backfill: { table: stats, rows: 100, every: 300ms } }\nsteps:\n  - to: { connector: olap, table: stats }\n",
    )
    .expect("route");
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store), ("CH_PASSWORD", "s3cret")]);
    let done = "backfill stats: 5 of 5 rows (100%)";
    j.wait_for_log(done, std::time::Duration::from_secs(30));
    assert_eq!(select(&ch, "SELECT count() FROM dwh.stats").await, "5");

    // The watermark lost (a kill after the batch went, before the watermark moved): the range
    // is read again — the same message id, the same bytes, the same token — and the engine
    // skips the insert, even in a table whose parts are not merged.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&store).await.expect("the store");
    sqlx::query("DELETE FROM checkpoints WHERE name LIKE 'sql:dwh:backfill:%'").execute(&pool).await.expect("delete");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while j.logs().matches(done).count() < 2 {
        assert!(std::time::Instant::now() < deadline, "the range was not read again: {}", j.logs());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(select(&ch, "SELECT count() FROM dwh.stats").await, "5", "stored once, not twice");

    // A row, then new values for its key: FINAL reads the last.
    let (status, _) =
        post_json(&j, "/stats", json!({ "campaign_id": 701, "day": "2026-12-01", "clicks": 99, "cost": 1.25 })).await;
    assert_eq!(status, 200);
    assert_eq!(
        select(&ch, "SELECT clicks, cost FROM dwh.campaign_stats FINAL WHERE campaign_id = 701 AND day = '2026-12-01'")
            .await,
        "99\t1.25"
    );
    let (status, _) =
        post_json(&j, "/stats", json!({ "campaign_id": 701, "day": "2026-12-01", "clicks": 98, "cost": 1.25 })).await;
    assert_eq!(status, 200);
    assert_eq!(select(&ch, "SELECT count() FROM dwh.campaign_stats FINAL").await, "1", "one row per key");

    let engine =
        select(&ch, "SELECT engine_full FROM system.tables WHERE database = 'dwh' AND name = 'campaign_stats'").await;
    assert!(
        engine.starts_with("ReplacingMergeTree") && engine.contains("non_replicated_deduplication_window = 1000"),
        "{engine}"
    );

    // A value changed and changed back: three messages, three inserts; the last values win
    // (content alone would take the third for the first sent again, and drop it).
    let row = |clicks: u64| json!({ "campaign_id": 702, "day": "2026-12-01", "clicks": clicks, "cost": "1.00" });
    for clicks in [1, 2, 1] {
        assert_eq!(post_json(&j, "/stats", row(clicks)).await.0, 200);
    }
    assert_eq!(
        select(&ch, "SELECT clicks FROM dwh.campaign_stats FINAL WHERE campaign_id = 702").await,
        "1",
        "the revert is stored"
    );

    // A bad value and good rows in one batch: the bad message alone is refused.
    let c = reqwest::Client::new();
    let good: Vec<_> = (0..4)
        .map(|n| {
            let (c, url) = (c.clone(), j.url("/stats"));
            let row = json!({ "campaign_id": 800 + n, "day": "2026-12-02", "clicks": 1, "cost": "1.00" });
            tokio::spawn(async move { c.post(url).json(&row).send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    let (status, _) = post_json(&j, "/stats", json!({ "campaign_id": 900, "day": "not a day", "clicks": 1 })).await;
    assert_eq!(status, 422);
    for call in good {
        assert_eq!(call.await.expect("join").expect("send"), 200, "a good row is not refused with its batch");
    }
    assert_eq!(select(&ch, "SELECT count() FROM dwh.campaign_stats FINAL WHERE campaign_id >= 800").await, "4");

    // A value the engine cannot parse is the engine's refusal, not a retry.
    let (status, body) = post_json(&j, "/stats", json!({ "campaign_id": 1, "day": "not a day", "clicks": 1 })).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("Code: "), "ClickHouse's own error: {body}");
}

#[test]
fn the_readmes_clickhouse_connector_is_valid() {
    common::assert_readme_example_checks(
        "connectors:\n  clickhouse:\n    kind: clickhouse",
        &[("CLICKHOUSE_USER", "loader"), ("CLICKHOUSE_PASSWORD", "x")],
    );
}

/// A table of `n` rows in a SQLite file, as a DWH's history to backfill.
async fn history(file: &std::path::Path, n: i64) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}?mode=rwc", file.display())).await.expect("open");
    sqlx::query(
        "CREATE TABLE stats (id INTEGER PRIMARY KEY, campaign_id INTEGER, day TEXT, clicks INTEGER, cost NUMERIC)",
    )
    .execute(&pool)
    .await
    .expect("create");
    let mut tx = pool.begin().await.expect("begin");
    for id in 1..=n {
        sqlx::query("INSERT INTO stats VALUES ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(700 + id % 10)
            .bind(format!("2026-{:02}-{:02}", 1 + id / 280, 1 + id % 28))
            .bind(id * 3)
            .bind(format!("{}.25", id))
            .execute(&mut *tx)
            .await
            .expect("insert");
    }
    tx.commit().await.expect("commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_resumes_from_its_watermark_after_a_kill_and_loads_each_row_once() {
    let sim = ClickHouse::start("127.0.0.1:0", "default", "").await.expect("simulator");
    let dwh = tempfile::tempdir().expect("tempdir");
    let file = dwh.path().join("dwh.db");
    history(&file, 1000).await;
    let (_tmp, store) = sqlite_store();
    let dir = project(&[
        (
            "junction.yaml",
            &format!(
                "routes: [routes/]\nconnectors:\n  dwh:\n    kind: sql\n    url: \"sqlite://{}\"\n    tables:\n      stats:\n        key: [id]\n        columns: {{ id: integer, campaign_id: integer, day: date, clicks: integer, cost: numeric }}\n  olap:\n    kind: clickhouse\n    url: \"{}\"\n    database: dwh\n    batch: {{ rows: 100, every: 5s }}\n    tables:\n      stats:\n        key: [id]\n        columns: {{ id: UInt64, campaign_id: UInt64, day: Date, clicks: UInt64, cost: \"Decimal(18, 2)\" }}\n",
                file.display(),
                sim.url
            ),
        ),
        (
            "routes/backfill.yaml",
            "route: backfill\nfrom: { connector: dwh, backfill: { table: stats, rows: 100, every: 1s } }\nsteps:\n  - to: { connector: olap, table: stats }\n",
        ),
    ]);
    // Slow inserts, so that the kill comes mid-way.
    sim.fail_next((0..12).map(|_| Fault::Delay { ms: 250 }));
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let inserts = || sim.statements().iter().filter(|s| s.starts_with("INSERT")).count();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while inserts() < 3 {
        assert!(std::time::Instant::now() < deadline, "no backfill batches: {}", j.logs());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let first = j.crash_keeping_log();
    assert!(first.contains("backfill stats: 100 of 1000 rows (10%)"), "a progress line per batch: {first}");
    let before = inserts();
    assert!(before < 10, "killed mid-way ({before} inserts)");

    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    j.wait_for_log("backfill stats: 1000 of 1000 rows (100%)", std::time::Duration::from_secs(60));
    let second = j.logs();
    assert!(
        !second.contains("backfill stats: 100 of 1000 rows"),
        "the second run resumed from the watermark: {second}"
    );
    // Each batch is the same rows when read again: one cut short by the kill is stored once.
    let stored = sim.rows("dwh.stats");
    let ids: std::collections::BTreeSet<u64> = stored.iter().filter_map(|r| r["id"].as_u64()).collect();
    assert_eq!((stored.len(), ids.len()), (1000, 1000), "every row once (deduplicated: {})", sim.deduplicated());
    assert!(inserts() <= 10 + 1, "at most the interrupted batch sent again: {} inserts", inserts());
    assert_eq!(stored.iter().find(|r| r["id"] == 7).map(|r| r["cost"].clone()), Some(json!("7.25")));
}
