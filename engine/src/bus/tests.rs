//! The bus's contract, run against SQLite and Postgres alike.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use tokio::time::timeout;

use super::*;
use crate::store::test_support::on_both_backends;

on_both_backends!(
    publish_then_recv_in_order,
    every_group_gets_every_message,
    unacked_deliveries_are_redelivered,
    acked_deliveries_are_not_redelivered,
    out_of_order_acks_commit_only_the_prefix,
    publish_wakes_a_waiting_consumer_at_once,
    other_processes_are_seen_by_polling,
    max_in_flight_holds_recv_until_an_ack,
    concurrent_publishers_lose_nothing,
    retention_removes_only_what_every_group_processed,
    a_full_topic_refuses_publishes_until_its_slowest_group_catches_up,
    a_topic_no_group_reads_is_bounded_too,
    groups_are_listed_with_their_backlog_and_can_be_forgotten,
);

fn msg(n: u64) -> Message {
    Message::json(json!({ "n": n }))
}

async fn publish(bus: &EmbeddedBus, topic: &str, n: u64) -> i64 {
    bus.publish(topic, &msg(n)).await.expect("publish")
}

async fn subscribe(bus: &EmbeddedBus, group: &str, topic: &str) -> Subscription {
    bus.subscribe(group, topic, 16).await.expect("subscribe")
}

async fn recv(sub: &mut Subscription) -> Delivery {
    timeout(Duration::from_secs(5), sub.recv()).await.expect("a delivery within 5 s").expect("recv")
}

/// Nothing more to deliver: recv is still waiting after a while.
async fn assert_nothing_more(sub: &mut Subscription) {
    let more = timeout(Duration::from_millis(100), sub.recv()).await;
    assert!(more.is_err(), "unexpected delivery: {:?}", more.map(|d| d.map(|d| d.offset)));
}

async fn publish_then_recv_in_order(store: Store) {
    let bus = EmbeddedBus::new(store);
    let mut sent = Vec::new();
    for n in 0..3 {
        let m = msg(n);
        let offset = bus.publish("deals", &m).await.expect("publish");
        sent.push((offset, m));
        publish(&bus, "other-topic", n).await;
    }
    assert!(sent.windows(2).all(|w| w[0].0 < w[1].0), "offsets increase");

    let mut sub = subscribe(&bus, "g", "deals").await;
    for (offset, message) in sent {
        let d = recv(&mut sub).await;
        assert_eq!((d.offset, &d.topic, &d.message), (offset, &"deals".to_owned(), &message));
        d.ack();
    }
    assert_nothing_more(&mut sub).await;
}

async fn every_group_gets_every_message(store: Store) {
    let bus = EmbeddedBus::new(store);
    let early = subscribe(&bus, "billing", "t").await;
    let offsets = [publish(&bus, "t", 1).await, publish(&bus, "t", 2).await];
    // A group subscribing after the publishes starts at the beginning too.
    let late = subscribe(&bus, "dwh", "t").await;
    for mut sub in [early, late] {
        for &offset in &offsets {
            let d = recv(&mut sub).await;
            assert_eq!(d.offset, offset);
            d.ack();
        }
    }
}

async fn unacked_deliveries_are_redelivered(store: Store) {
    let bus = EmbeddedBus::new(store);
    let o1 = publish(&bus, "t", 1).await;
    let o2 = publish(&bus, "t", 2).await;

    let mut first = subscribe(&bus, "g", "t").await;
    let d1 = recv(&mut first).await;
    let d2 = recv(&mut first).await;
    first.flush().await.expect("flush");
    drop((d1, d2, first)); // a crash: nothing acked

    let mut second = subscribe(&bus, "g", "t").await;
    assert_eq!(recv(&mut second).await.offset, o1);
    assert_eq!(recv(&mut second).await.offset, o2);
}

async fn acked_deliveries_are_not_redelivered(store: Store) {
    let bus = EmbeddedBus::new(store.clone());
    let o1 = publish(&bus, "t", 1).await;
    let o2 = publish(&bus, "t", 2).await;
    let o3 = publish(&bus, "t", 3).await;

    let mut first = subscribe(&bus, "g", "t").await;
    let d = recv(&mut first).await;
    assert_eq!(d.offset, o1);
    d.ack();
    first.flush().await.expect("flush");
    drop(first);

    let mut second = subscribe(&bus, "g", "t").await;
    let d = recv(&mut second).await;
    assert_eq!(d.offset, o2);
    d.ack();
    drop(second);
    // Without a flush the background committer gets there moments later.
    let committed = async {
        while log::committed(&store, "g", "t").await.expect("committed") < o2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    timeout(Duration::from_secs(2), committed).await.expect("committed within 2 s");

    let mut third = subscribe(&bus, "g", "t").await;
    assert_eq!(recv(&mut third).await.offset, o3);
}

async fn out_of_order_acks_commit_only_the_prefix(store: Store) {
    let bus = EmbeddedBus::new(store.clone());
    let offsets: Vec<i64> =
        [publish(&bus, "t", 1).await, publish(&bus, "t", 2).await, publish(&bus, "t", 3).await].into();

    let mut first = subscribe(&bus, "g", "t").await;
    let d1 = recv(&mut first).await;
    let d2 = recv(&mut first).await;
    d2.ack();
    first.flush().await.expect("flush");
    drop((d1, first));

    let mut second = subscribe(&bus, "g", "t").await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(recv(&mut second).await);
    }
    assert_eq!(got.iter().map(|d| d.offset).collect::<Vec<_>>(), offsets);

    // Acks 3 then 1: only 1 is a prefix; 2 holds back 3 until it is acked too.
    let [d1, d2, d3] = <[Delivery; 3]>::try_from(got).expect("three deliveries");
    d3.ack();
    d1.ack();
    second.flush().await.expect("flush");
    assert_eq!(log::committed(&store, "g", "t").await.expect("committed"), offsets[0]);
    d2.ack();
    second.flush().await.expect("flush");
    assert_eq!(log::committed(&store, "g", "t").await.expect("committed"), offsets[2]);
}

async fn publish_wakes_a_waiting_consumer_at_once(store: Store) {
    let bus = EmbeddedBus::new(store);
    let mut sub = subscribe(&bus, "g", "t").await;
    let waiting = tokio::spawn(async move { sub.recv().await.map(|d| d.offset) });
    tokio::time::sleep(Duration::from_millis(100)).await; // it found nothing and waits
    let offset = publish(&bus, "t", 1).await;
    // 200 ms is well under the 500 ms poll: only the in-process wake-up is this fast.
    let got = timeout(Duration::from_millis(200), waiting)
        .await
        .expect("woken within 200 ms of the publish")
        .expect("consumer task")
        .expect("recv");
    assert_eq!(got, offset);
}

async fn other_processes_are_seen_by_polling(store: Store) {
    let consumer_side = EmbeddedBus::new(store.clone());
    let other_process = EmbeddedBus::new(store);
    let mut sub = subscribe(&consumer_side, "g", "t").await;
    let waiting = tokio::spawn(async move { sub.recv().await.map(|d| d.offset) });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let offset = publish(&other_process, "t", 1).await;
    let got = timeout(Duration::from_secs(2), waiting)
        .await
        .expect("seen by the next poll")
        .expect("consumer task")
        .expect("recv");
    assert_eq!(got, offset);
}

async fn max_in_flight_holds_recv_until_an_ack(store: Store) {
    let bus = EmbeddedBus::new(store);
    for n in 0..3 {
        publish(&bus, "t", n).await;
    }
    let mut sub = bus.subscribe("g", "t", 2).await.expect("subscribe");
    let d1 = recv(&mut sub).await;
    let _d2 = recv(&mut sub).await;
    let full = timeout(Duration::from_millis(150), sub.recv()).await;
    assert!(full.is_err(), "recv returned with 2 of 2 deliveries unacked");
    d1.ack();
    let d3 = timeout(Duration::from_millis(500), sub.recv()).await.expect("an ack frees a slot").expect("recv");
    assert_eq!(d3.message.body.to_json(), json!({ "n": 2 }));
}

/// Postgres hands out offsets before commit; without per-topic ordering a consumer
/// reading while publishers race would skip offsets that commit late.
async fn concurrent_publishers_lose_nothing(store: Store) {
    let bus = EmbeddedBus::new(store);
    let mut sub = bus.subscribe("g", "t", 64).await.expect("subscribe");
    let consumer = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < 200 {
            let d = sub.recv().await?;
            seen.push((d.offset, d.message.id.clone()));
            d.ack();
        }
        Ok::<_, BusError>(seen)
    });
    let publishers: Vec<_> = (0..4)
        .map(|_| {
            let bus = bus.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in 0..50 {
                    let m = msg(n);
                    bus.publish("t", &m).await?;
                    ids.push(m.id);
                }
                Ok::<_, BusError>(ids)
            })
        })
        .collect();
    let mut published = HashSet::new();
    for p in publishers {
        published.extend(p.await.expect("publisher task").expect("publish"));
    }
    let seen = timeout(Duration::from_secs(10), consumer)
        .await
        .expect("all 200 consumed within 10 s of the last publish")
        .expect("consumer task")
        .expect("recv");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "offsets strictly increase");
    let seen_ids: HashSet<_> = seen.into_iter().map(|(_, id)| id).collect();
    assert_eq!(seen_ids.len(), 200);
    assert_eq!(seen_ids, published);
}

async fn retention_removes_only_what_every_group_processed(store: Store) {
    let bus = EmbeddedBus::new(store);
    let o1 = publish(&bus, "t", 1).await;
    let o2 = publish(&bus, "t", 2).await;
    let o3 = publish(&bus, "t", 3).await;
    let lonely = publish(&bus, "nobody-reads", 4).await;

    let mut g = subscribe(&bus, "g", "t").await;
    for expected in [o1, o2] {
        let d = recv(&mut g).await;
        assert_eq!(d.offset, expected);
        d.ack();
    }
    g.flush().await.expect("flush");
    // `h` has subscribed but processed nothing: it holds everything.
    let mut h = subscribe(&bus, "h", "t").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(bus.purge(Duration::ZERO).await.expect("purge"), 0, "h has processed nothing yet");

    let d = recv(&mut h).await;
    assert_eq!(d.offset, o1);
    d.ack();
    h.flush().await.expect("flush");
    assert_eq!(bus.purge(Duration::from_secs(3600)).await.expect("purge"), 0, "nothing is an hour old");
    assert_eq!(bus.purge(Duration::ZERO).await.expect("purge"), 1, "o1 went; o2 is h's still");

    // A new group starts at the oldest message kept; a topic nobody reads kept everything.
    let mut late = subscribe(&bus, "late", "t").await;
    assert_eq!(recv(&mut late).await.offset, o2);
    let mut reader = subscribe(&bus, "reader", "nobody-reads").await;
    assert_eq!(recv(&mut reader).await.offset, lonely);
    assert_eq!(recv(&mut g).await.offset, o3);
}

async fn a_full_topic_refuses_publishes_until_its_slowest_group_catches_up(store: Store) {
    let bus = EmbeddedBus::new(store.clone()).with_max_backlog(3);
    let mut slow = subscribe(&bus, "slow", "t").await;
    let mut fast = subscribe(&bus, "fast", "t").await;
    for n in 0..3 {
        publish(&bus, "t", n).await;
    }
    for _ in 0..3 {
        recv(&mut fast).await.ack();
    }
    fast.flush().await.expect("flush");
    let err = bus.publish("t", &msg(3)).await.expect_err("the slow group has 3 to process");
    assert!(matches!(err, BusError::Full { backlog: 3, limit: 3, .. }), "{err}");
    assert!(err.to_string().contains("topic `t` holds 3 messages"), "{err}");
    publish(&bus, "other", 0).await;

    // The slow group processes two: once that is committed, there is room for two more.
    for _ in 0..2 {
        recv(&mut slow).await.ack();
    }
    slow.flush().await.expect("flush");
    tokio::time::sleep(RECOUNT_AFTER).await;
    publish(&bus, "t", 3).await;
    publish(&bus, "t", 4).await;
    assert!(matches!(bus.publish("t", &msg(5)).await, Err(BusError::Full { .. })));
    // Another process's bus counts the same backlog from the store.
    let other = EmbeddedBus::new(store).with_max_backlog(3);
    assert!(matches!(other.publish("t", &msg(5)).await, Err(BusError::Full { .. })));

    // Nothing refused was stored, nothing accepted was lost.
    for n in 2..5 {
        let d = recv(&mut slow).await;
        assert_eq!(d.message.body.to_json()["n"], n);
        d.ack();
    }
    assert_nothing_more(&mut slow).await;
}

async fn a_topic_no_group_reads_is_bounded_too(store: Store) {
    let bus = EmbeddedBus::new(store).with_max_backlog(2);
    publish(&bus, "unread", 0).await;
    publish(&bus, "unread", 1).await;
    assert!(matches!(bus.publish("unread", &msg(2)).await, Err(BusError::Full { backlog: 2, .. })));
    // A group that subscribes now gets them, and processing them makes room.
    let mut sub = subscribe(&bus, "late", "unread").await;
    recv(&mut sub).await.ack();
    sub.flush().await.expect("flush");
    tokio::time::sleep(RECOUNT_AFTER).await;
    publish(&bus, "unread", 2).await;
}

async fn groups_are_listed_with_their_backlog_and_can_be_forgotten(store: Store) {
    let bus = EmbeddedBus::new(store).with_max_backlog(2);
    let _gone = subscribe(&bus, "gone", "t").await;
    let mut live = subscribe(&bus, "live", "t").await;
    let first = publish(&bus, "t", 0).await;
    publish(&bus, "t", 1).await;
    for _ in 0..2 {
        recv(&mut live).await.ack();
    }
    live.flush().await.expect("flush");
    let groups = bus.groups().await.expect("groups");
    let shown: Vec<(&str, u64)> = groups.iter().map(|g| (g.group.as_str(), g.backlog)).collect();
    assert_eq!(shown, vec![("gone", 2), ("live", 0)]);
    assert!(groups[1].committed > first);
    // `gone` holds the topic full; forgetting it makes room at once.
    assert!(matches!(bus.publish("t", &msg(2)).await, Err(BusError::Full { .. })));
    assert!(bus.forget_group("gone", "t").await.expect("forget"));
    assert!(!bus.forget_group("gone", "t").await.expect("forget"), "already forgotten");
    publish(&bus, "t", 2).await;
    let groups = bus.groups().await.expect("groups");
    assert_eq!(groups.iter().map(|g| g.group.as_str()).collect::<Vec<_>>(), vec!["live"]);
}
