//! The kind's options, checked without a broker. Its behaviour against RabbitMQ is in the bus
//! conformance suite (`tests/bus_conformance.rs`) and `tests/amqp.rs`.

use junction_engine::connector::Kind;

use super::*;

#[test]
fn a_url_keeps_the_uri_and_takes_the_connectors_own_settings_out() {
    let c = AmqpKind
        .config_from_url(
            "amqp://guest:guest@127.0.0.1:5672/%2f?heartbeat=10&exchange=events&single_active_consumer=true",
        )
        .expect("valid");
    assert_eq!(c.url, "amqp://guest:guest@127.0.0.1:5672/%2f?heartbeat=10");
    assert_eq!((c.exchange.as_str(), c.single_active_consumer, c.delivery_limit), ("events", true, 20));
    let plain = AmqpKind.config_from_url("amqp://127.0.0.1:5672/%2f").expect("valid");
    assert_eq!((plain.url.as_str(), plain.exchange.as_str()), ("amqp://127.0.0.1:5672/%2f", "junction"));
    let e = AmqpKind.config_from_url("amqp://h/%2f?single_active_consumer=yes").expect_err("not a bool");
    assert!(e.contains("true or false"), "{e}");
}

#[test]
fn queue_and_group_names_map_to_one_queue_per_topic() {
    assert_eq!(link::group_queue("deals", "billing"), "deals.billing");
}
