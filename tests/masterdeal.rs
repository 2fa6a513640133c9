//! The `masterdeal` connector through the running binary: an HTTP route upserts a master
//! deal, and the outbox relay publishes its creation to a bus route exactly once.

mod common;

use std::time::Duration;

use common::{Junction, project, sqlite_store};

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
