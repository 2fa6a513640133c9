//! The RabbitMQ side: producer, drain, and the plain lapin loop.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

const EXCHANGE: &str = "junction";

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

async fn channel(bus: &str) -> Channel {
    let connection = Connection::connect(bus, ConnectionProperties::default()).await.expect("connect to RabbitMQ");
    let channel = connection.create_channel().await.expect("channel");
    // The connection lives as long as the process: the channel needs it open.
    std::mem::forget(connection);
    let mut alternate = FieldTable::default();
    alternate.insert("alternate-exchange".into(), long("junction.unrouted"));
    let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    channel
        .exchange_declare(EXCHANGE.into(), ExchangeKind::Topic, durable, alternate)
        .await
        .expect("the junction exchange (as Junction declares it)");
    channel
}

/// The queue a group reads a topic from, with Junction's arguments.
async fn group_queue(channel: &Channel, topic: &str, group: &str) -> String {
    let name = format!("{topic}.{group}");
    let mut a = FieldTable::default();
    a.insert("x-queue-type".into(), long("quorum"));
    a.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(20));
    a.insert("x-dead-letter-exchange".into(), long("junction.dlx"));
    a.insert("x-dead-letter-strategy".into(), long("at-least-once"));
    a.insert("x-overflow".into(), long("reject-publish"));
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    channel.queue_declare(name.as_str().into(), durable, a).await.expect("group queue");
    bind(channel, &name, topic).await;
    name
}

async fn bind(channel: &Channel, queue: &str, topic: &str) {
    channel
        .queue_bind(queue.into(), EXCHANGE.into(), topic.into(), QueueBindOptions::default(), FieldTable::default())
        .await
        .expect("bind");
}

fn sent_ns(properties: &BasicProperties) -> Option<u64> {
    match properties.headers().as_ref()?.inner().get("sent-ns")? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.parse().ok(),
        _ => None,
    }
}

fn persistent(properties: BasicProperties) -> BasicProperties {
    properties.with_delivery_mode(2)
}

async fn publish(channel: &Channel, topic: &str, payload: &[u8], properties: BasicProperties) {
    let mandatory = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
    let confirm = channel
        .basic_publish(EXCHANGE.into(), topic.into(), mandatory, payload, persistent(properties))
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(confirm.is_ack() && confirm.take_message().is_none(), "RabbitMQ did not take a message for {topic}");
}

pub(crate) async fn produce(bus: &str, topic: &str, count: u64, rate: u64, deal: &[u8], group: Option<&str>) {
    let channel = channel(bus).await;
    if let Some(group) = group {
        // A backlog for a group that has not started yet: its queue has to be there first.
        group_queue(&channel, topic, group).await;
    }
    channel.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
    let pace = crate::pace(rate);
    let started = Instant::now();
    // Each publish runs by itself (sent now, not when its confirm is awaited), 1,000 at most.
    let mut pending = tokio::task::JoinSet::new();
    for n in 0..count {
        if let Some(gap) = pace {
            tokio::time::sleep_until((started + gap * n as u32).into()).await;
        }
        let mut headers = FieldTable::default();
        headers.insert("sent-ns".into(), long(&crate::now_ns().to_string()));
        let properties = BasicProperties::default().with_headers(headers);
        let (channel, topic, deal) = (channel.clone(), topic.to_owned(), deal.to_vec());
        pending.spawn(async move { publish(&channel, &topic, &deal, properties).await });
        while pending.len() > 1_000 {
            if let Some(r) = pending.join_next().await {
                r.expect("published");
            }
        }
    }
    while let Some(r) = pending.join_next().await {
        r.expect("published");
    }
}

pub(crate) async fn drain(bus: &str, topic: &str, count: u64) -> String {
    let channel = channel(bus).await;
    let queue = format!("{topic}.drain-{}", crate::now_ns());
    let options = QueueDeclareOptions { auto_delete: true, ..QueueDeclareOptions::default() };
    channel.queue_declare(queue.as_str().into(), options, FieldTable::default()).await.expect("drain queue");
    bind(&channel, &queue, topic).await;
    channel.basic_qos(1000, BasicQosOptions::default()).await.expect("qos");
    let no_ack = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
    let mut deliveries = channel
        .basic_consume(queue.as_str().into(), "drain".into(), no_ack, FieldTable::default())
        .await
        .expect("consume");
    eprintln!("ready");
    let mut arrivals = crate::Arrivals::new(count);
    while arrivals.len() < count {
        let d = tokio::time::timeout(Duration::from_secs(120), deliveries.next())
            .await
            .unwrap_or_else(|_| panic!("{} of {count} arrived on {topic} in 120s", arrivals.len()))
            .expect("a delivery")
            .expect("delivered");
        arrivals.arrived(sent_ns(&d.properties));
    }
    arrivals.report()
}

pub(crate) async fn baseline(bus: &str, from: &str, to: &str, group: &str) {
    let consuming = channel(bus).await;
    let publishing = channel(bus).await;
    publishing.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
    let queue = group_queue(&consuming, from, group).await;
    consuming.basic_qos(crate::IN_FLIGHT as u16, BasicQosOptions::default()).await.expect("qos");
    let mut deliveries = consuming
        .basic_consume(queue.as_str().into(), "baseline".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .expect("consume");
    println!("ready");
    // Acked only once its output was confirmed; prefetch bounds what is in flight.
    while let Some(d) = deliveries.next().await {
        let d = d.expect("delivered");
        let publishing = publishing.clone();
        let to = to.to_owned();
        tokio::spawn(async move {
            let out = crate::transform(&d.data);
            let properties =
                BasicProperties::default().with_headers(d.properties.headers().clone().unwrap_or_default());
            publish(&publishing, &to, &out, properties).await;
            d.acker.ack(BasicAckOptions::default()).await.expect("ack");
        });
    }
}
