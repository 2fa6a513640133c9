//! The `sql` connector as the DWH's loader, on SQLite and on PostgreSQL: rows from many
//! messages written in batches of upserts, a row sent twice (a redelivered message, a batch
//! sent again) stored once with its last values, bad rows refused at once.

mod common;

use common::{Junction, PgDatabase, junction, project, sqlite_store};
use serde_json::{Value, json};
use sqlx::Row;

const ADMIN: &str = "admin: { listen: 127.0.0.1:0, token: dwh-test-token }\n";

fn project_for(url: &str) -> tempfile::TempDir {
    project(&[
        (
            "junction.yaml",
            &format!(
                "routes: [routes/]\n{ADMIN}connectors:\n  dwh:\n    kind: sql\n    url: \"{url}\"\n    batch: {{ rows: 50, every: 200ms }}\n    tables:\n      campaign_stats:\n        key: [campaign_id, day]\n        columns: {{ campaign_id: integer, day: date, impressions: integer, clicks: integer, cost: numeric, paused: boolean, extra: json }}\n"
            ),
        ),
        (
            "routes/load.yaml",
            "route: load\nmax_in_flight: 64\nfrom: { http: { method: POST, path: /stats, auth: none } }\nsteps:\n  - to: { connector: dwh, table: campaign_stats }\n",
        ),
    ])
}

/// Posts 40 rows at once (10 campaigns × 4 days), then 5 of them again with new values.
async fn load(j: &Junction) {
    let c = reqwest::Client::new();
    let mut calls = Vec::new();
    for campaign in 0..10 {
        for day in 1..=4 {
            let row = json!({ "campaign_id": 700 + campaign, "day": format!("2026-12-0{day}"), "impressions": 1000 * day, "clicks": 10 * day, "cost": "123.45", "paused": false, "extra": { "source": "direct" } });
            let (c, url) = (c.clone(), j.url("/stats"));
            calls.push(tokio::spawn(async move { c.post(url).json(&row).send().await.map(|r| r.status().as_u16()) }));
        }
    }
    for call in calls {
        assert_eq!(call.await.expect("join").expect("send"), 200);
    }
    // The same keys again (a platform revising its recent days): updated, not added.
    let revised: Vec<Value> = (0..5)
        .map(|campaign| json!({ "campaign_id": 700 + campaign, "day": "2026-12-04", "impressions": 9999, "clicks": 99, "cost": 1.5, "paused": true }))
        .collect();
    let resp = c.post(j.url("/stats")).json(&revised).send().await.expect("send");
    assert_eq!(resp.status(), 200, "{}", j.logs());

    let bad = c
        .post(j.url("/stats"))
        .json(&json!({ "campaign_id": 1, "day": "2026-12-01", "cpm": 3 }))
        .send()
        .await
        .expect("send");
    assert_eq!(bad.status(), 422, "an unknown column is refused, not retried");
    let no_key = c.post(j.url("/stats")).json(&json!({ "impressions": 3 })).send().await.expect("send");
    assert_eq!(no_key.status(), 422);
}

/// How many batches the connector wrote (the histogram's count).
async fn batches(j: &Junction) -> f64 {
    let text =
        reqwest::Client::new().get(j.admin_url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    text.lines()
        .find(|l| l.starts_with("junction_batch_rows_count{") && l.contains("table=\"campaign_stats\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn check(pool: &sqlx::AnyPool) {
    let count: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM campaign_stats").fetch_one(pool).await.expect("count").get("n");
    assert_eq!(count, 40, "each (campaign, day) once");
    let row = sqlx::query("SELECT CAST(impressions AS BIGINT) AS i, CAST(clicks AS BIGINT) AS c FROM campaign_stats WHERE campaign_id = 702 AND day = '2026-12-04'")
        .fetch_one(pool)
        .await
        .expect("a revised row");
    assert_eq!((row.get::<i64, _>("i"), row.get::<i64, _>("c")), (9999, 99), "the last values win");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_load_in_batches_of_upserts_on_sqlite() {
    let (_tmp, store) = sqlite_store();
    let dwh = tempfile::tempdir().expect("tempdir");
    let file = dwh.path().join("dwh.db");
    let url = format!("sqlite://{}", file.display());
    let dir = project_for(&url);
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    load(&j).await;
    let written = batches(&j).await;
    assert!((1.0..20.0).contains(&written), "41 messages in {written} batches");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", file.display())).await.expect("open the DWH file");
    check(&pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_load_in_batches_of_upserts_on_postgres() {
    let (_tmp, store) = sqlite_store();
    let db = PgDatabase::create().await;
    let dir = project_for(&db.url);
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    load(&j).await;
    let written = batches(&j).await;
    assert!((1.0..20.0).contains(&written), "41 messages in {written} batches");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.expect("connect");
    check(&pool).await;
    let typed: (String, bool) = {
        let row = sqlx::query("SELECT pg_typeof(cost)::text AS t, paused FROM campaign_stats WHERE campaign_id = 701 AND day = '2026-12-04'")
            .fetch_one(&pool)
            .await
            .expect("typed row");
        (row.get("t"), row.get("paused"))
    };
    assert_eq!(typed, ("numeric".to_owned(), true));
}

#[test]
fn sql_options_are_checked_at_their_line_and_column() {
    let dir = project(&[(
        "junction.yaml",
        "routes: []\nconnectors:\n  dwh:\n    kind: sql\n    url: sqlite://dwh.db\n    tables:\n      stats: { key: [day], columns: { clicks: integer } }\n",
    )]);
    let (code, _, err) = junction(&["check", dir.path().to_str().expect("utf-8")], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("junction.yaml:7:7: table `stats`: key column `day` is not in `columns`"), "{err}");
}

#[test]
fn the_readmes_sql_connector_is_valid() {
    common::assert_readme_example_checks("connectors:\n  dwh:\n    kind: sql", &[]);
}
