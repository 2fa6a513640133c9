//! The Kafka side: producer, drain, and the plain rdkafka loop.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};

fn brokers(bus: &str) -> String {
    bus.trim_start_matches("kafka://").split('?').next().unwrap_or_default().to_owned()
}

fn config(bus: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers(bus));
    c
}

/// Creates `topic` (6 partitions) if it is missing: the broker does not create topics itself.
async fn ensure(bus: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = config(bus).create().expect("admin client");
    let _ = admin.create_topics(&[NewTopic::new(topic, 6, TopicReplication::Fixed(1))], &AdminOptions::new()).await;
}

/// Junction's producer settings: idempotent, `acks=all`, 5ms linger.
fn producer(bus: &str) -> FutureProducer {
    let mut c = config(bus);
    c.set("acks", "all").set("enable.idempotence", "true").set("linger.ms", "5");
    c.create().expect("producer")
}

/// The longest a fetch waits for records: `JUNCTION_BENCH_FETCH_WAIT_MS` (bench/bus.sh sets it
/// for every consumer of a run alike), else librdkafka's default.
fn fetch_wait() -> Option<String> {
    std::env::var("JUNCTION_BENCH_FETCH_WAIT_MS").ok().filter(|v| !v.is_empty())
}

fn consumer(bus: &str, group: &str, topic: &str) -> StreamConsumer {
    let mut c = config(bus);
    if let Some(wait) = fetch_wait() {
        c.set("fetch.wait.max.ms", wait);
    }
    c.set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "1000")
        .set("session.timeout.ms", "10000");
    let consumer: StreamConsumer = c.create().expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

fn sent_ns(headers: Option<&rdkafka::message::BorrowedHeaders>) -> Option<u64> {
    headers?.iter().find(|h| h.key == "sent-ns").and_then(|h| std::str::from_utf8(h.value?).ok()?.parse().ok())
}

pub(crate) async fn produce(bus: &str, topic: &str, count: u64, rate: u64, deal: &[u8]) {
    ensure(bus, topic).await;
    let producer = producer(bus);
    let pace = crate::pace(rate);
    let started = Instant::now();
    let mut pending = FuturesOrdered::new();
    for n in 0..count {
        if let Some(gap) = pace {
            let due = started + gap * n as u32;
            tokio::time::sleep_until(due.into()).await;
        }
        let key = n.to_string();
        let sent = crate::now_ns().to_string();
        let headers = OwnedHeaders::new().insert(Header { key: "sent-ns", value: Some(sent.as_bytes()) });
        let record = FutureRecord::to(topic).key(&key).payload(deal).headers(headers);
        let producer = producer.clone();
        let topic = topic.to_owned();
        let delivery = producer.send_result(record).map_err(|(e, _)| e).expect("queued");
        pending.push_back(async move {
            delivery.await.expect("delivered").map_err(|(e, _)| e).unwrap_or_else(|e| panic!("{topic}: {e}"));
        });
        while pending.len() > 10_000 {
            pending.next().await;
        }
    }
    while pending.next().await.is_some() {}
}

pub(crate) async fn drain(bus: &str, topic: &str, count: u64) -> String {
    ensure(bus, topic).await;
    let consumer = consumer(bus, &format!("drain-{}", crate::now_ns()), topic);
    // In the group before the other side starts: arrivals are timed as they come, not
    // found waiting after a slow join. The topic is empty until then.
    while consumer.assignment().map_or(0, |a| a.count()) == 0 {
        let _ = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await;
    }
    eprintln!("ready");
    let mut arrivals = crate::Arrivals::new(count);
    while arrivals.len() < count {
        let m = tokio::time::timeout(Duration::from_secs(120), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {count} arrived on {topic} in 120s", arrivals.len()))
            .expect("record");
        arrivals.arrived(sent_ns(m.headers()));
    }
    arrivals.report()
}

pub(crate) async fn baseline(bus: &str, from: &str, to: &str, group: &str) {
    ensure(bus, from).await;
    ensure(bus, to).await;
    let producer = producer(bus);
    let consumer = consumer(bus, group, from);
    println!("ready");
    // Deliveries in reading order: an offset is stored (and committed with the next auto commit)
    // only once its output was acknowledged and every message read before it was too.
    let mut in_flight = FuturesOrdered::new();
    loop {
        tokio::select! {
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                let (topic, partition, offset): (String, i32, i64) = done;
                consumer.store_offset(&topic, partition, offset).expect("store offset");
            }
            m = consumer.recv(), if in_flight.len() < crate::IN_FLIGHT => {
                let m = m.expect("record");
                let out = crate::transform(m.payload().unwrap_or_default());
                let mut headers = OwnedHeaders::new();
                if let Some(h) = m.headers() {
                    for h in h.iter() {
                        headers = headers.insert(Header { key: h.key, value: h.value });
                    }
                }
                let mut record = FutureRecord::to(to).payload(&out).headers(headers);
                if let Some(key) = m.key() {
                    record = record.key(key);
                }
                let delivery = producer.send_result(record).map_err(|(e, _)| e).expect("queued");
                let place = (m.topic().to_owned(), m.partition(), m.offset());
                in_flight.push_back(async move {
                    delivery.await.expect("delivered").map_err(|(e, _)| e).expect("acknowledged");
                    place
                });
            }
        }
    }
}
