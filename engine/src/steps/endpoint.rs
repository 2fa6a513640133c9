//! What `to`, `request`, `enrich` and `wire_tap` share: `{ connector: NAME, …options }`.

use serde::Deserialize;

use crate::config::node::Node;

/// A connector and the options the connector reads (everything but `connector`).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub(crate) struct EndpointSpec(pub Node);
