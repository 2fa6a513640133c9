//! The repository and the outbox against both backends.

use std::collections::BTreeMap;
use std::sync::Mutex;

use junction_engine::store::Store;
use rust_decimal::Decimal;
use sqlx::AssertSqlSafe;

use super::test_db::on_both_backends;
use super::*;
use crate::domain::{DealStatus, Lifecycle};

on_both_backends!(
    upsert_creates_then_updates_by_crm_id,
    concurrent_status_changes_at_one_version_let_exactly_one_win,
    status_change_of_a_missing_deal_is_not_found,
    the_store_refuses_a_move_the_lifecycle_forbids_whoever_asks,
    a_failed_outbox_append_rolls_back_the_change,
    relay_publishes_in_order_and_resumes_after_a_failure,
    committed_but_unpublished_events_survive_a_crash,
    money_round_trips_exactly,
    list_pages_by_id_and_filters,
);

fn deal(crm_id: &str) -> NewDeal {
    NewDeal {
        crm_id: crm_id.to_owned(),
        external_ids: BTreeMap::from([("amo".to_owned(), format!("amo-{crm_id}"))]),
        advertiser_name: "ООО Ромашка".to_owned(),
        advertiser_inn: "7701234567".to_owned(),
        advertiser_kpp: Some("770101001".to_owned()),
        owner: "anna".to_owned(),
        title: "Spring campaign".to_owned(),
        budget: "1250000.50".parse().expect("a decimal literal"),
        currency: "RUB".to_owned(),
        period_from: "2025-03-01".parse().expect("a date literal"),
        period_to: "2025-05-31".parse().expect("a date literal"),
        status: None,
    }
}

fn event_types(events: &[OutboxEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

#[derive(Debug, thiserror::Error)]
#[error("the bus is down")]
struct BusDown;

async fn upsert_creates_then_updates_by_crm_id(store: Store) {
    let (created, was_created) = upsert_by_crm_id(&store, deal("crm-1")).await.expect("create");
    assert!(was_created);
    assert_eq!(created.version, 1);

    let (updated, was_created) =
        upsert_by_crm_id(&store, NewDeal { title: "Renamed".to_owned(), ..deal("crm-1") }).await.expect("update");
    assert!(!was_created);
    assert_eq!((updated.id, updated.version, updated.title.as_str()), (created.id, 2, "Renamed"));
    assert_eq!(get(&store, created.id).await.expect("get"), Some(updated.clone()));

    let events = pending(&store, 10).await.expect("pending");
    assert_eq!(event_types(&events), ["masterdeal.deal.created", "masterdeal.deal.updated"]);
    assert_eq!(events.iter().map(|e| e.aggregate_seq).collect::<Vec<_>>(), [1, 2]);
    assert!(events.iter().all(|e| e.aggregate_id == created.id.to_string()));
    assert_eq!(events[1].payload, serde_json::to_value(&updated).expect("a row serializes"));
}

async fn concurrent_status_changes_at_one_version_let_exactly_one_win(store: Store) {
    let (d, _) = upsert_by_crm_id(&store, deal("crm-1")).await.expect("create");
    let (a, b) = tokio::join!(
        transition_deal(&store, d.id, d.version, DealStatus::Planning),
        transition_deal(&store, d.id, d.version, DealStatus::Cancelled),
    );
    let (won, lost) = match (a, b) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
        other => panic!("expected one winner and one conflict, got {other:?}"),
    };
    assert_eq!(won.version, 2);
    assert!(
        matches!(lost, MasterDealStoreError::Conflict { expected: 1, actual: 2, .. }),
        "the loser should see a conflict: {lost:?}"
    );
    let events = pending(&store, 10).await.expect("pending");
    assert_eq!(event_types(&events), ["masterdeal.deal.created", "masterdeal.deal.status_changed"]);
    assert_eq!(events[1].payload["status"], won.status.as_str());
}

async fn status_change_of_a_missing_deal_is_not_found(store: Store) {
    let err = transition_deal(&store, uuid::Uuid::now_v7(), 1, DealStatus::Planning).await.expect_err("no such deal");
    assert!(matches!(err, MasterDealStoreError::NotFound { .. }), "{err:?}");
}

/// The lifecycle and the version are checked by the store itself, for every surface: a
/// forbidden move, an update that would change the status, a stale version.
async fn the_store_refuses_a_move_the_lifecycle_forbids_whoever_asks(store: Store) {
    let (d, _) = upsert_by_crm_id(&store, deal("crm-1")).await.expect("create");
    assert_eq!(d.status, DealStatus::Draft, "draft when the writer names none");
    let err = transition_deal(&store, d.id, 1, DealStatus::Signed).await.expect_err("draft → signed");
    assert!(matches!(&err, MasterDealStoreError::Transition(t) if t.allowed == ["planning", "cancelled"]), "{err:?}");
    let err = transition_deal(&store, d.id, 7, DealStatus::Planning).await.expect_err("stale");
    assert!(matches!(err, MasterDealStoreError::Conflict { expected: 7, actual: 1, .. }), "{err:?}");
    let sneaky = NewDeal { status: Some(DealStatus::Signed), ..deal("crm-1") };
    let err = update_deal(&store, d.id, 1, sneaky).await.expect_err("an update cannot move the status");
    assert!(err.to_string().contains("change it with a transition"), "{err}");
    let kept =
        update_deal(&store, d.id, 1, NewDeal { title: "Renamed".into(), ..deal("crm-1") }).await.expect("update");
    assert_eq!((kept.status, kept.version, kept.title.as_str()), (DealStatus::Draft, 2, "Renamed"));
    let err = save_deal(&store, deal("crm-1"), None).await.expect_err("exists: a version is required");
    assert!(matches!(err, MasterDealStoreError::VersionRequired { actual: 2, .. }), "{err:?}");
    let (saved, created) = save_deal(&store, deal("crm-1"), Some(2)).await.expect("saved at its version");
    assert_eq!((created, saved.version), (false, 3));
}

async fn a_failed_outbox_append_rolls_back_the_change(store: Store) {
    let (d, _) = upsert_by_crm_id(&store, deal("crm-1")).await.expect("create");
    // One event per deal from now on: the status change's UPDATE succeeds, its append fails.
    sqlx::query(AssertSqlSafe("CREATE UNIQUE INDEX one_event_per_deal ON masterdeal_outbox (aggregate_id)"))
        .execute(store.pool())
        .await
        .expect("creating the poison index");

    let err = transition_deal(&store, d.id, 1, DealStatus::Planning).await.expect_err("the append must fail");
    assert!(matches!(err, MasterDealStoreError::Query { op: "outbox append", .. }), "{err:?}");
    assert_eq!(get(&store, d.id).await.expect("get"), Some(d), "the change must roll back with its event");
    assert_eq!(pending(&store, 10).await.expect("pending").len(), 1);
}

async fn relay_publishes_in_order_and_resumes_after_a_failure(store: Store) {
    let (d, _) = upsert_by_crm_id(&store, deal("crm-1")).await.expect("create");
    let d = transition_deal(&store, d.id, 1, DealStatus::Planning).await.expect("status");
    upsert_by_crm_id(&store, deal("crm-2")).await.expect("create another");
    transition_deal(&store, d.id, 2, DealStatus::ProposalSent).await.expect("status");
    let waiting = pending(&store, 10).await.expect("pending");
    let all: Vec<i64> = waiting.iter().map(|e| e.seq).collect();
    assert_eq!(all.len(), 4);
    let oldest = waiting.iter().map(|e| e.created_at.timestamp_millis()).min();
    assert_eq!(backlog(&store).await.expect("backlog"), (4, oldest), "what the relay's metrics read");

    let seen = Mutex::new(Vec::new());
    let fail_third = |e: &OutboxEvent| {
        let (seq, seen) = (e.seq, &seen);
        async move {
            let mut seen = seen.lock().expect("not poisoned");
            if seen.len() == 2 {
                return Err(BusDown);
            }
            seen.push(seq);
            Ok(())
        }
    };
    let err = relay_once(&store, fail_third).await.expect_err("the third publish fails");
    assert!(matches!(err, MasterDealStoreError::Publish { published: 2, .. }), "{err:?}");
    assert_eq!(pending(&store, 10).await.expect("pending").len(), 2, "the failed one and the rest stay");

    let collect = |e: &OutboxEvent| {
        let (seq, seen) = (e.seq, &seen);
        async move {
            seen.lock().expect("not poisoned").push(seq);
            Ok::<(), BusDown>(())
        }
    };
    assert_eq!(relay_once(&store, collect).await.expect("relay"), 2);
    assert_eq!(*seen.lock().expect("not poisoned"), all, "every event once, in order");
    assert!(pending(&store, 10).await.expect("pending").is_empty());
    assert_eq!(backlog(&store).await.expect("backlog"), (0, None));
    assert_eq!(relay_once(&store, collect).await.expect("relay"), 0);
}

async fn committed_but_unpublished_events_survive_a_crash(store: Store) {
    upsert_by_crm_id(&store, deal("crm-1")).await.expect("create");
    // The process dies after the commit: nothing relayed. A new process's relay finds it.
    let restarted = store.clone();
    let seen = Mutex::new(Vec::new());
    let collect = |e: &OutboxEvent| {
        let (event_type, seen) = (e.event_type.clone(), &seen);
        async move {
            seen.lock().expect("not poisoned").push(event_type);
            Ok::<(), BusDown>(())
        }
    };
    assert_eq!(relay_once(&restarted, collect).await.expect("relay"), 1);
    assert_eq!(*seen.lock().expect("not poisoned"), ["masterdeal.deal.created"]);
}

async fn money_round_trips_exactly(store: Store) {
    let point_three = Decimal::new(1, 1) + Decimal::new(2, 1);
    for (crm_id, budget) in [("a", "1250000.50".parse().expect("decimal")), ("b", point_three)] {
        let (d, _) = upsert_by_crm_id(&store, NewDeal { budget, ..deal(crm_id) }).await.expect("create");
        let read = get(&store, d.id).await.expect("get").expect("present");
        assert_eq!(read.budget.to_string(), budget.to_string());
    }
    assert_eq!(point_three.to_string(), "0.3");
}

async fn list_pages_by_id_and_filters(store: Store) {
    for crm_id in ["1", "2", "3"] {
        upsert_by_crm_id(&store, deal(crm_id)).await.expect("create");
    }
    let (other, _) = upsert_by_crm_id(&store, NewDeal { owner: "boris".to_owned(), ..deal("4") }).await.expect("x");

    let first = list(&store, &DealFilter { owner: Some("anna".to_owned()), limit: Some(2), ..Default::default() })
        .await
        .expect("list");
    assert_eq!(first.iter().map(|d| d.crm_id.as_str()).collect::<Vec<_>>(), ["1", "2"]);
    let after_id = first.last().map(|d| d.id);
    let rest = list(&store, &DealFilter { owner: Some("anna".to_owned()), after_id, ..Default::default() })
        .await
        .expect("list");
    assert_eq!(rest.iter().map(|d| d.crm_id.as_str()).collect::<Vec<_>>(), ["3"]);

    let boris = list(&store, &DealFilter { owner: Some("boris".to_owned()), ..Default::default() }).await.expect("l");
    assert_eq!(boris, [other]);
    let none = list(&store, &DealFilter { status: Some(DealStatus::Signed), ..Default::default() }).await.expect("l");
    assert!(none.is_empty());
}
