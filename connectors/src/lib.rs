//! Junction's connector kinds: one module per kind, one Cargo feature each.
//!
//! # Layout
//!
//! - `http`: outbound HTTP calls (`to`, `request`, `enrich`) with timeouts, headers from
//!   expressions, and `Retry-After` honoured by the route's retries.
//! - `kafka`: a Kafka cluster: publishing, consumer groups as route sources, the bus.
//! - `amqp`: RabbitMQ: confirmed publishing, queues and consumer groups as route sources, the bus.
//!
//! Adding a kind is one file (or folder) plus one line in [`register_all`]: the kind
//! implements `junction_engine::connector::Kind` (its typed `Config`, checked by the engine
//! at `file:line:col`) and its connector offers the roles it has (operations, a consumer, a
//! bus, an HTTP API, background tasks); the engine starts, wraps and stops it.

#[cfg(feature = "amqp")]
pub mod amqp;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "kafka")]
pub mod kafka;

use junction_engine::connector::Registry;

/// Registers every kind compiled in; the engine's built-ins (`bus`, `log`) are already there.
pub fn register_all(registry: &mut Registry) {
    #[cfg(feature = "http")]
    registry.register(http::HttpKind);
    #[cfg(feature = "kafka")]
    registry.register(kafka::KafkaKind);
    #[cfg(feature = "amqp")]
    registry.register(amqp::AmqpKind);
}

/// A registry with every kind this build knows.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    register_all(&mut r);
    r
}
