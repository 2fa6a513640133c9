//! The store's contract, run against SQLite and Postgres alike.

use serde_json::json;

use super::test_support::on_both_backends;
use super::*;
use crate::message::{Body, Message};

on_both_backends!(
    placeholders_bind_by_number,
    dead_letter_round_trips,
    dead_letters_list_newest_first_and_filter,
    dead_letters_page_with_before,
    dead_letters_filter_by_error_text_and_time,
    instance_counts_replace_and_are_forgotten,
    provenance_is_found_by_id_trace_and_key_and_pruned,
    replay_is_marked_once,
    checkpoints_keep_the_last_value,
    concurrent_writers_all_succeed,
);

fn dead_letter(route: &str, n: u32) -> NewDeadLetter {
    NewDeadLetter {
        route: route.to_owned(),
        step: Some(format!("step-{n}")),
        error: format!("connector `crm` answered 503 (attempt {n})"),
        attempts: n,
        message: Message::json(json!({ "n": n })),
    }
}

async fn put(store: &Store, dl: &NewDeadLetter) -> String {
    store.put_dead_letter(dl).await.expect("put_dead_letter")
}

async fn list(store: &Store, filter: DeadLetterFilter) -> Vec<DeadLetter> {
    store.list_dead_letters(&filter).await.expect("list_dead_letters")
}

/// Every query is written with `$N`; SQLite must bind by the number, not by position.
async fn placeholders_bind_by_number(store: Store) {
    store.ping().await.expect("ping");
    let row = sqlx::query("SELECT $2 AS second, $1 AS first")
        .bind("a")
        .bind("b")
        .fetch_one(store.pool())
        .await
        .expect("query");
    let second: String = sqlx::Row::try_get(&row, "second").expect("second");
    let first: String = sqlx::Row::try_get(&row, "first").expect("first");
    assert_eq!((first.as_str(), second.as_str()), ("a", "b"));
}

async fn dead_letter_round_trips(store: Store) {
    let mut message = Message::new(Body::Bytes(bytes::Bytes::from_static(&[0, 159, 1])));
    message.headers.insert("tenant".into(), json!("acme"));
    let new = NewDeadLetter { step: None, message, ..dead_letter("crm-deal-won", 5) };
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let id = put(&store, &new).await;

    let got = store.get_dead_letter(&id).await.expect("get").expect("found");
    assert_eq!(got.id, id);
    assert_eq!(got.route, "crm-deal-won");
    assert_eq!(got.step, None);
    assert_eq!(got.error, new.error);
    assert_eq!(got.attempts, 5);
    assert_eq!(got.message, new.message);
    assert!(got.created_at > before, "{} > {before}", got.created_at);
    assert_eq!(got.replayed_at, None);

    let missing = store.get_dead_letter("no-such-id").await.expect("get");
    assert!(missing.is_none());
}

async fn dead_letters_list_newest_first_and_filter(store: Store) {
    let a1 = put(&store, &dead_letter("a", 1)).await;
    let b2 = put(&store, &dead_letter("b", 2)).await;
    let a3 = put(&store, &dead_letter("a", 3)).await;

    let ids = |v: Vec<DeadLetter>| v.into_iter().map(|d| d.id).collect::<Vec<_>>();
    let all = list(&store, DeadLetterFilter::default()).await;
    assert_eq!(ids(all), [a3.clone(), b2.clone(), a1.clone()]);

    let only_a = DeadLetterFilter { route: Some("a".into()), ..Default::default() };
    assert_eq!(ids(list(&store, only_a.clone()).await), [a3.clone(), a1.clone()]);

    assert!(store.mark_dead_letter_replayed(&a3).await.expect("mark"));
    assert_eq!(ids(list(&store, only_a.clone()).await), std::slice::from_ref(&a1));
    let with_replayed = DeadLetterFilter { include_replayed: true, ..only_a };
    assert_eq!(ids(list(&store, with_replayed).await), [a3, a1]);

    let one = DeadLetterFilter { limit: Some(1), ..Default::default() };
    assert_eq!(ids(list(&store, one).await), [b2]);
}

async fn dead_letters_filter_by_error_text_and_time(store: Store) {
    let a1 = put(&store, &dead_letter("a", 1)).await;
    let odd = NewDeadLetter { error: "schema: 100% of `budget_total` is wrong".into(), ..dead_letter("a", 2) };
    let a2 = put(&store, &odd).await;
    let ids = |v: Vec<DeadLetter>| v.into_iter().map(|d| d.id).collect::<Vec<_>>();
    let text = |t: &str| DeadLetterFilter { error: Some(t.into()), ..Default::default() };
    assert_eq!(ids(list(&store, text("answered 503")).await), std::slice::from_ref(&a1));
    // % and _ are matched as themselves, not as patterns.
    assert_eq!(ids(list(&store, text("100%")).await), std::slice::from_ref(&a2));
    assert!(list(&store, text("1_0")).await.is_empty());
    assert_eq!(ids(list(&store, text("budget_total")).await), std::slice::from_ref(&a2));
    let later = DeadLetterFilter { since: Some(chrono::Utc::now() + chrono::Duration::hours(1)), ..Default::default() };
    assert!(list(&store, later).await.is_empty());
    let earlier =
        DeadLetterFilter { since: Some(chrono::Utc::now() - chrono::Duration::hours(1)), ..Default::default() };
    assert_eq!(list(&store, earlier).await.len(), 2);
}

async fn instance_counts_replace_and_are_forgotten(store: Store) {
    let counts = |instance: &str, received: i64| InstanceCounts {
        instance: instance.into(),
        route: "r".into(),
        received,
        completed: received,
        dead_lettered: 0,
        in_flight: 1,
        updated_at: chrono::Utc::now(),
    };
    store.put_instance_counts(&[counts("a", 1)]).await.expect("put");
    store.put_instance_counts(&[counts("a", 5), counts("b", 2)]).await.expect("put again");
    let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let seen = store.instance_counts(hour_ago).await.expect("read");
    let got: Vec<(&str, i64)> = seen.iter().map(|c| (c.instance.as_str(), c.received)).collect();
    assert_eq!(got, [("a", 5), ("b", 2)]);
    assert!(store.instance_counts(chrono::Utc::now() + chrono::Duration::hours(1)).await.expect("read").is_empty());
    assert_eq!(store.forget_instance_counts(chrono::Utc::now() + chrono::Duration::hours(1)).await.expect("forget"), 2);
    assert!(store.instance_counts(hour_ago).await.expect("read").is_empty());
}

async fn provenance_is_found_by_id_trace_and_key_and_pruned(store: Store) {
    let step = |run: &str, message: &str, trace: &str, key: Option<&str>, seq: i64| ProvenanceStep {
        run_id: run.into(),
        route: format!("route-{run}"),
        message_id: message.into(),
        trace_id: Some(trace.into()),
        key: key.map(str::to_owned),
        seq,
        step: format!("{}:transform", seq + 1),
        at: chrono::Utc::now(),
        took_us: 12,
        outcome: "ok".into(),
        error: None,
        headers: json!({ "h": 1 }),
        before: json!({ "n": seq }),
        after: Some(json!({ "n": seq + 1 })),
    };
    // Run 1 (key K) caused run 2 over the bus (same trace); run 3 is unrelated.
    store
        .put_provenance(&[
            step("1", "m1", "t1", Some("K"), 0),
            step("1", "m1", "t1", Some("K"), 1),
            step("2", "m2", "t1", None, 0),
        ])
        .await
        .expect("put");
    store.put_provenance(&[step("3", "m3", "t3", Some("L"), 0)]).await.expect("put");
    let runs = |steps: Vec<ProvenanceStep>| steps.into_iter().map(|s| (s.run_id, s.seq)).collect::<Vec<_>>();
    let both = vec![("1".to_owned(), 0), ("1".to_owned(), 1), ("2".to_owned(), 0)];
    assert_eq!(runs(store.find_provenance("K").await.expect("by key")), both);
    assert_eq!(runs(store.find_provenance("m1").await.expect("by message")), both);
    assert_eq!(runs(store.find_provenance("m2").await.expect("the caused run leads back")), both);
    assert_eq!(runs(store.find_provenance("t3").await.expect("by trace")), [("3".to_owned(), 0)]);
    let found = store.find_provenance("m3").await.expect("by message");
    assert_eq!(found[0].after, Some(json!({ "n": 1 })));
    assert_eq!(found[0].headers, json!({ "h": 1 }));
    // Keeping the newest two rows drops the two oldest.
    assert_eq!(store.prune_provenance(2, chrono::Utc::now() - chrono::Duration::hours(1)).await.expect("prune"), 2);
    assert!(store.find_provenance("K").await.expect("by key").is_empty());
    assert_eq!(runs(store.find_provenance("t1").await.expect("by trace")), [("2".to_owned(), 0)]);
}

async fn dead_letters_page_with_before(store: Store) {
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(put(&store, &dead_letter("r", n)).await);
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page =
            list(&store, DeadLetterFilter { limit: Some(2), before: before.clone(), ..Default::default() }).await;
        let Some(last) = page.last() else { break };
        before = Some(last.id.clone());
        seen.extend(page.into_iter().map(|d| d.id));
    }
    assert_eq!(seen, ids);
}

async fn replay_is_marked_once(store: Store) {
    let id = put(&store, &dead_letter("r", 1)).await;
    assert!(store.mark_dead_letter_replayed(&id).await.expect("mark"));
    assert!(!store.mark_dead_letter_replayed(&id).await.expect("mark again"));
    assert!(!store.mark_dead_letter_replayed("nope").await.expect("mark unknown"));
    let got = store.get_dead_letter(&id).await.expect("get").expect("found");
    assert!(got.replayed_at.is_some_and(|at| at >= got.created_at));
}

async fn checkpoints_keep_the_last_value(store: Store) {
    let key = "schedule:nightly-sync:last_fire";
    assert_eq!(store.checkpoint_get(key).await.expect("get"), None);
    store.checkpoint_put(key, "2025-01-01T00:00:00Z").await.expect("put");
    store.checkpoint_put(key, "2025-01-02T00:00:00Z").await.expect("overwrite");
    store.checkpoint_put("other", "x").await.expect("put other");
    let got = store.checkpoint_get(key).await.expect("get");
    assert_eq!(got.as_deref(), Some("2025-01-02T00:00:00Z"));
}

/// SQLite admits one writer at a time; the others must wait their turn, not fail.
async fn concurrent_writers_all_succeed(store: Store) {
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..25 {
                    store.put_dead_letter(&dead_letter("load", n)).await?;
                    store.checkpoint_put(&format!("k{t}"), &n.to_string()).await?;
                }
                Ok::<_, StoreError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer task").expect("every write succeeds");
    }
    let all = DeadLetterFilter { limit: Some(1000), ..Default::default() };
    assert_eq!(list(&store, all).await.len(), 200);
    assert_eq!(store.checkpoint_get("k7").await.expect("get").as_deref(), Some("24"));
}

#[tokio::test]
async fn sqlite_creates_its_directory_and_uses_wal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("nested/deeper/junction.db");
    let url = format!("sqlite://{}", file.display());

    let store = Store::open(&url).await.expect("open");
    assert_eq!(store.backend(), Backend::Sqlite);
    store.checkpoint_put("k", "v").await.expect("put");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(store.pool()).await.expect("pragma");
    assert_eq!(mode, "wal");
    store.pool().close().await;

    // Reopening runs the migrations again (a no-op) and finds the data.
    let again = Store::open(&url).await.expect("reopen");
    assert_eq!(again.checkpoint_get("k").await.expect("get").as_deref(), Some("v"));
}

#[tokio::test]
async fn unreachable_postgres_is_named_without_its_password() {
    let err =
        Store::open("postgres://junction:s3cret@127.0.0.1:1/junction").await.expect_err("nothing listens on port 1");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{text}");
    assert!(text.contains("postgres://junction:***@127.0.0.1:1/junction"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}
