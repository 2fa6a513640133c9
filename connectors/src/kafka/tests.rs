//! The kind's options, checked without a broker. Its behaviour against a real broker is in
//! the bus conformance suite (`tests/bus_conformance.rs`) and `tests/kafka.rs`.

use junction_engine::connector::Kind;

use super::*;

#[test]
fn a_url_names_the_brokers_and_the_topic_settings() {
    let c = KafkaKind.config_from_url("kafka://a:9092,b:9092?partitions=6&replication=3").expect("valid");
    assert_eq!((c.brokers.as_str(), c.partitions, c.replication), ("a:9092,b:9092", 6, 3));
    let plain = KafkaKind.config_from_url("kafka://127.0.0.1:9092").expect("valid");
    assert_eq!((plain.partitions, plain.create_topics, plain.producer.idempotent), (1, true, true));
    assert_eq!(plain.topic_prefix, "");
    let prefixed = KafkaKind.config_from_url("kafka://a:9092?topic_prefix=staging.&partitions=2").expect("valid");
    assert_eq!((prefixed.topic_prefix.as_str(), prefixed.partitions), ("staging.", 2));
    let e = KafkaKind.config_from_url("kafka://a:9092?linger=5").expect_err("unknown option");
    assert!(e.contains("`linger` is not a kafka:// URL option"), "{e}");
    let e = KafkaKind.config_from_url("kafka://a:9092?partitions=many").expect_err("not a number");
    assert!(e.contains("not a number"), "{e}");
}

#[test]
fn security_options_become_librdkafka_properties() {
    let mut c = KafkaKind.config_from_url("kafka://a:9093").expect("valid");
    c.tls = Some(TlsConfig { ca: Some("/etc/ca.pem".into()) });
    c.sasl = Some(SaslConfig { mechanism: "scram-sha-512".into(), username: "u".into(), password: "p".into() });
    let client = client_config("events", &c).expect("valid");
    assert_eq!(client.get("security.protocol"), Some("sasl_ssl"));
    assert_eq!(client.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
    assert_eq!(client.get("ssl.ca.location"), Some("/etc/ca.pem"));
    assert_eq!(client.get("client.id"), Some("junction-events"));
    c.sasl = Some(SaslConfig { mechanism: "KERBEROS".into(), username: "u".into(), password: "p".into() });
    assert!(client_config("events", &c).expect_err("refused").contains("not a SASL mechanism"));
}

#[test]
fn the_producer_is_idempotent_with_acks_all_and_the_consumer_commits_by_hand() {
    let c = KafkaKind.config_from_url("kafka://a:9092").expect("valid");
    let client = client_config("events", &c).expect("valid");
    let p = producer_config(&client, &c);
    assert_eq!((p.get("acks"), p.get("enable.idempotence")), (Some("all"), Some("true")));
    let k = consumer_config(&client, &c.consumer);
    assert_eq!(k.get("enable.auto.commit"), Some("false"));
    assert_eq!(k.get("enable.auto.offset.store"), Some("false"));
    assert_eq!(k.get("auto.offset.reset"), Some("earliest"));
}
