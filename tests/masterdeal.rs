//! The `masterdeal` connector through the running binary: an HTTP route upserts a master
//! deal, and the outbox relay publishes its creation to a bus route exactly once.

mod common;

use std::time::Duration;

use common::{Junction, PgDatabase, project, sqlite_store};

const DEAL: &str = r#"{"external_id": "crm:D-7", "name": "Spring campaign",
  "advertiser": {"name": "Romashka LLC", "inn": "7707083893", "kpp": "770701001"},
  "owner": "anna", "amount": 1250000.5, "currency": "RUB", "budget": 1250000.5,
  "status": "signed", "channels": ["search"], "source": "crm"}"#;

#[tokio::test]
async fn upserts_a_deal_and_relays_its_creation_once() {
    let dir = project(&[
        (
            "junction.yaml",
            "routes: [routes/]\nadmin: { listen: 127.0.0.1:0, token: test-admin-token }\nconnectors:\n  masterdeal: { kind: masterdeal }\n",
        ),
        (
            "routes/deals.yaml",
            "route: deals\nfrom: { http: { method: POST, path: /deals, auth: none } }\nsteps:\n  - request: { connector: masterdeal, op: upsert_deal_by_external_id }\n",
        ),
        (
            "routes/transition.yaml",
            "route: transition\nfrom: { http: { method: POST, path: /deals/transition, auth: none } }\nsteps:\n  - request: { connector: masterdeal, op: transition }\n",
        ),
        (
            "routes/created.yaml",
            "route: created\nfrom: { bus: { topic: masterdeal.deal } }\nsteps:\n  - filter: headers.event_type == \"masterdeal.deal.created\"\n  - log: \"created ${body.crm_id} (${headers.aggregate_seq})\"\n",
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let client = reqwest::Client::new();
    for expected in [true, false] {
        let resp = client.post(j.url("/deals")).body(DEAL).send().await.expect("send");
        assert_eq!(resp.status(), 200, "{}", j.logs());
        let reply: serde_json::Value = resp.json().await.expect("a JSON reply");
        assert_eq!(reply["created"], expected, "{reply}");
        assert_eq!(reply["crm_id"], "D-7");
    }
    // A move the lifecycle forbids is the caller's mistake: 422 naming the allowed moves,
    // not a 502 as for a broken dependency.
    let deal: serde_json::Value =
        client.post(j.url("/deals")).body(DEAL).send().await.expect("send").json().await.expect("json");
    let resp = client
        .post(j.url("/deals/transition"))
        .body(
            serde_json::json!({ "id": deal["id"], "to": "completed", "expected_version": deal["version"] }).to_string(),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 422);
    let problem: serde_json::Value = resp.json().await.expect("problem");
    assert_eq!(problem["type"], "https://junction.dev/problems/rejected", "{problem}");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("in_flight, cancelled"), "{problem}");
    // The deal's events arrive on its aggregate's topic, in order: created is its first.
    j.wait_for_log("created D-7 (1)", Duration::from_secs(10));
    // Several relay ticks: a second publish of the same event would show by now.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(j.logs().matches("created D-7").count(), 1, "{}", j.logs());
    // The relay measures its outbox: nothing waits once the event went out.
    let metrics = client.get(j.admin_url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    for series in [
        "junction_outbox_pending{connector=\"masterdeal\"}",
        "junction_outbox_oldest_age_seconds{connector=\"masterdeal\"}",
    ] {
        assert!(metrics.contains(series), "{series} missing in:\n{metrics}");
    }
    assert!(metrics.contains("junction_route_in_flight{route=\"created\"} 0"), "{metrics}");
    let lag = metrics.lines().find(|l| l.starts_with("junction_consumer_lag{") && l.contains("route=\"created\""));
    assert!(lag.is_some_and(|l| l.contains("topic=\"masterdeal.deal\"")), "{metrics}");
}

/// The deployment diagram keeps the MasterDeal operational DB apart from the integration DB:
/// with `database:` the domain's tables and its outbox live there, the engine's (bus, dead
/// letters, leases…) stay in `store:`, and each database gets only its own migrations.
#[tokio::test]
async fn the_masterdeal_tables_live_in_their_own_database() {
    use sqlx::Connection;
    let dir = project(&[
        (
            "junction.yaml",
            "routes: [routes/]\nadmin: { listen: 127.0.0.1:0, token: test-admin-token }\nconnectors:\n  masterdeal: { kind: masterdeal, database: \"${MASTERDEAL_DATABASE}\" }\n",
        ),
        (
            "routes/deals.yaml",
            "route: deals\nfrom: { http: { method: POST, path: /deals, auth: none } }\nsteps:\n  - request: { connector: masterdeal, op: upsert_deal_by_external_id }\n",
        ),
        (
            "routes/created.yaml",
            "route: created\nfrom: { bus: { topic: masterdeal.deal } }\nsteps:\n  - filter: headers.event_type == \"masterdeal.deal.created\"\n  - log: \"created ${body.crm_id} (${headers.aggregate_seq})\"\n",
        ),
    ]);
    let (tmp, store) = sqlite_store();
    let masterdeal = PgDatabase::create().await;
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store), ("MASTERDEAL_DATABASE", &masterdeal.url)]);
    let resp = reqwest::Client::new().post(j.url("/deals")).body(DEAL).send().await.expect("send");
    assert_eq!(resp.status(), 200, "{}", j.logs());
    // The relay reads the outbox in the MasterDeal database and publishes to the bus in the
    // integration database.
    j.wait_for_log("created D-7 (1)", Duration::from_secs(10));

    let mut pg = sqlx::PgConnection::connect(&masterdeal.url).await.expect("the MasterDeal database");
    let deals: i64 = sqlx::query_scalar("SELECT count(*) FROM master_deal WHERE crm_id = 'D-7'")
        .fetch_one(&mut pg)
        .await
        .expect("master_deal is in the MasterDeal database");
    assert_eq!(deals, 1);
    let published: i64 = sqlx::query_scalar("SELECT count(*) FROM masterdeal_outbox WHERE published_at IS NOT NULL")
        .fetch_one(&mut pg)
        .await
        .expect("its outbox too");
    assert_eq!(published, 1);
    let engine_tables: Option<String> = sqlx::query_scalar("SELECT to_regclass('_junction_engine_migrations')::text")
        .fetch_one(&mut pg)
        .await
        .expect("to_regclass");
    assert_eq!(engine_tables, None, "the engine's tables were created in the MasterDeal database");

    let file = tmp.path().join("junction.db");
    let mut sqlite =
        sqlx::SqliteConnection::connect(&format!("sqlite:{}", file.display())).await.expect("the integration database");
    let tables: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
        .fetch_all(&mut sqlite)
        .await
        .expect("tables");
    assert!(tables.iter().any(|t| t == "_junction_engine_migrations"), "{tables:?}");
    assert!(!tables.iter().any(|t| t == "master_deal" || t == "masterdeal_outbox"), "{tables:?}");
}

/// A MasterDeal database that cannot be reached is answered, not fatal: the API says 503 and
/// names the database, and Junction keeps serving the rest.
#[tokio::test]
async fn an_unreachable_masterdeal_database_is_answered_503() {
    let dir = project(&[
        (
            "junction.yaml",
            "routes: [routes/]\nadmin: { listen: 127.0.0.1:0, token: test-admin-token }\nconnectors:\n  masterdeal: { kind: masterdeal, database: \"postgres://postgres@127.0.0.1:1/none\", api: { path: /api/v1, auth: none } }\n",
        ),
        (
            "routes/ping.yaml",
            "route: ping\nfrom: { http: { method: GET, path: /ping, auth: none } }\nsteps:\n  - transform: '#{ ok: true }'\n",
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let client = reqwest::Client::new();
    let resp = client.get(j.url("/api/v1/deals")).send().await.expect("send");
    assert_eq!(resp.status(), 503, "{}", j.logs());
    let problem: serde_json::Value = resp.json().await.expect("problem");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("127.0.0.1:1"), "{problem}");
    let resp = client.get(j.url("/ping")).send().await.expect("send");
    assert_eq!(resp.status(), 200);
}

/// #18 §2 (h): one trace follows a deal across the outbox. A change made in a trace — by a
/// route's step, or through the API with the caller's `traceparent` — writes its event with
/// that trace, and the relay publishes it in it: the route the event sets off logs the same
/// `trace_id`.
#[tokio::test]
async fn a_changes_trace_goes_through_the_outbox_to_the_routes_it_sets_off() {
    let dir = project(&[
        (
            "junction.yaml",
            "routes: [routes/]\nadmin: { listen: 127.0.0.1:0, token: test-admin-token }\nconnectors:\n  masterdeal: { kind: masterdeal, api: { path: /api, auth: none } }\n",
        ),
        (
            "routes/deals.yaml",
            "route: deals\nfrom: { http: { method: POST, path: /deals, auth: none } }\nsteps:\n  - request: { connector: masterdeal, op: upsert_deal_by_external_id }\n",
        ),
        (
            "routes/changed.yaml",
            "route: changed\nfrom: { bus: { topic: masterdeal.deal } }\nsteps:\n  - log: \"changed ${body.crm_id} v${body.version}\"\n",
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let client = reqwest::Client::new();
    let logged_in = |line: &str| {
        let logs = j.logs();
        let found = logs.lines().find(|l| l.contains(line)).map(str::to_owned);
        found.and_then(|l| serde_json::from_str::<serde_json::Value>(&l).ok()).map(|v| v["trace_id"].clone())
    };

    // Through a route: the request's trace is the step's, and the event's.
    let route_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let resp = client
        .post(j.url("/deals"))
        .header("traceparent", format!("00-{route_trace}-00f067aa0ba902b7-01"))
        .body(DEAL)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200, "{}", j.logs());
    let deal: serde_json::Value = resp.json().await.expect("json");
    j.wait_for_log("changed D-7 v1", Duration::from_secs(10));
    assert_eq!(logged_in("changed D-7 v1"), Some(serde_json::json!(route_trace)), "{}", j.logs());

    // Through the API: the caller's trace.
    let api_trace = "0af7651916cd43dd8448eb211c80319c";
    let resp = client
        .post(j.url(&format!("/api/deals/{}/transitions", deal["id"].as_str().expect("an id"))))
        .header("traceparent", format!("00-{api_trace}-b7ad6b7169203331-01"))
        .header("if-match", "\"1\"")
        .json(&serde_json::json!({ "to": "in_flight" }))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap_or_default());
    j.wait_for_log("changed D-7 v2", Duration::from_secs(10));
    assert_eq!(logged_in("changed D-7 v2"), Some(serde_json::json!(api_trace)), "{}", j.logs());
}
