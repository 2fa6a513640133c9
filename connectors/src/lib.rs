//! Junction's connector kinds: one module per kind, one Cargo feature each.
//!
//! # Layout
//!
//! - `http`: outbound HTTP calls (`to`, `request`, `enrich`) with timeouts, headers from
//!   expressions, and `Retry-After` honoured by the route's retries.
//! - `kafka`: a Kafka cluster: publishing, consumer groups as route sources, the bus.
//! - `amqp`: RabbitMQ: confirmed publishing, queues and consumer groups as route sources, the bus.
//! - `amocrm`: the amoCRM API v4 (OAuth2 with rotated refresh tokens, leads, notes, tasks; a
//!   source walking the leads changed since a checkpoint).
//! - `onec_odata`: 1C:Enterprise over OData v3 (invoices created once per key, posted, changed
//!   with `If-Match`; any entity set read page by page).
//! - `yandex_direct`: Yandex Direct API v5 (campaigns added once per key, suspended, resumed;
//!   reports polled until built; daily statistics as a source with trailing re-reads).
//! - `vk_ads`: the VK Ads API (ad plans created once per key, paused, resumed; daily
//!   statistics as a source; one stored token shared by every instance, since VK allows five).
//! - `sql`: a SQL database (SQLite, Postgres) as a sink loaded in batches of upserts (the DWH).
//! - `clickhouse`: ClickHouse over HTTP as a sink loaded in batches, each insert deduplicated
//!   by a token made of its bytes.
//! - `llm`: language models (OpenAI-compatible) behind `complete`: prompt packages held to a
//!   lock, answers checked against their schema and repaired, a fallback chain of targets.
//! - `web`: what the connectors speaking to HTTP APIs share (credentials, replies checked,
//!   paging sources); not a kind.
//! - `batch`: rows from many messages gathered into batches, for the table sinks; not a kind.
//!
//! Adding a kind is one file (or folder) plus one line in [`register_all`]: the kind
//! implements `junction_engine::connector::Kind` (its typed `Config`, checked by the engine
//! at `file:line:col`) and its connector offers the roles it has (operations, a consumer, a
//! bus, an HTTP API, background tasks); the engine starts, wraps and stops it.

#[cfg(feature = "amocrm")]
pub mod amocrm;
#[cfg(feature = "amqp")]
pub mod amqp;
#[cfg(any(feature = "sql", feature = "clickhouse"))]
pub mod batch;
#[cfg(feature = "clickhouse")]
pub mod clickhouse;
#[cfg(feature = "yandex_direct")]
pub mod direct;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "llm")]
pub mod llm;
#[cfg(feature = "onec_odata")]
pub mod onec;
#[cfg(feature = "sql")]
pub mod sql;
#[cfg(feature = "vk_ads")]
pub mod vk;
#[cfg(feature = "http")]
pub mod web;

use junction_engine::connector::Registry;

/// Registers every kind compiled in; the engine's built-ins (`bus`, `log`) are already there.
pub fn register_all(registry: &mut Registry) {
    #[cfg(feature = "http")]
    registry.register(http::HttpKind);
    #[cfg(feature = "kafka")]
    registry.register(kafka::KafkaKind);
    #[cfg(feature = "amqp")]
    registry.register(amqp::AmqpKind);
    #[cfg(feature = "amocrm")]
    registry.register(amocrm::AmoCrmKind);
    #[cfg(feature = "onec_odata")]
    registry.register(onec::OneCKind);
    #[cfg(feature = "sql")]
    registry.register(sql::SqlKind);
    #[cfg(feature = "yandex_direct")]
    registry.register(direct::DirectKind);
    #[cfg(feature = "clickhouse")]
    registry.register(clickhouse::ClickHouseKind);
    #[cfg(feature = "vk_ads")]
    registry.register(vk::VkAdsKind);
    #[cfg(feature = "llm")]
    registry.register(llm::LlmKind);
}

/// A registry with every kind this build knows.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    register_all(&mut r);
    r
}
