//! A connector kind declares its options as a type; the engine reads them with positions
//! and hands the kind a typed value. [`Kind`] is what a kind implements; [`ConnectorKind`]
//! is the same with the type erased, as the registry holds it.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::{BuildCx, Connector};
use crate::config::node::{Node, NodeError, Pos};

/// A connector kind: one file or folder in the connectors crate, one registry line.
pub trait Kind: Send + Sync + 'static {
    /// The `kind:` string, the file name and the Cargo feature.
    const NAME: &'static str;

    /// URL schemes `bus:` may name this kind by (`kafka` for `bus: kafka://host:9092`).
    const SCHEMES: &'static [&'static str] = &[];

    /// The connector's options in `junction.yaml` (without `kind` and `api`). A serde type
    /// with `deny_unknown_fields`; its `///` comments are the reference docs.
    type Config: DeserializeOwned;

    /// Builds a connector from its checked options. Pure: no I/O until it is started.
    /// `options` is where the config came from, for errors a type cannot catch (a URL that
    /// does not parse), at the field's position.
    fn build(
        &self,
        name: &str,
        config: Self::Config,
        options: &Node,
        cx: &BuildCx<'_>,
    ) -> Result<Arc<dyn Connector>, NodeError>;

    /// The options a `bus: <scheme>://…` URL stands for.
    fn config_from_url(&self, url: &str) -> Result<Self::Config, String> {
        Err(format!("a `{}` connector cannot be named by a URL ({url})", Self::NAME))
    }
}

/// A kind with its options type erased.
pub trait ConnectorKind: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    fn schemes(&self) -> &'static [&'static str];

    /// Reads a connector's options (its mapping in `junction.yaml`, without `kind`).
    fn build(&self, name: &str, options: &Node, cx: &BuildCx<'_>) -> Result<Arc<dyn Connector>, NodeError>;

    /// Builds the connector a `bus:` URL stands for; errors are reported at `at`.
    fn build_from_url(&self, name: &str, url: &str, at: Pos, cx: &BuildCx<'_>)
    -> Result<Arc<dyn Connector>, NodeError>;
}

impl<K: Kind> ConnectorKind for K {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn schemes(&self) -> &'static [&'static str] {
        K::SCHEMES
    }

    fn build(&self, name: &str, options: &Node, cx: &BuildCx<'_>) -> Result<Arc<dyn Connector>, NodeError> {
        let config: K::Config = options.parse()?;
        Kind::build(self, name, config, options, cx)
    }

    fn build_from_url(
        &self,
        name: &str,
        url: &str,
        at: Pos,
        cx: &BuildCx<'_>,
    ) -> Result<Arc<dyn Connector>, NodeError> {
        let config = self.config_from_url(url).map_err(|message| NodeError { message, pos: Some(at) })?;
        let options = Node { pos: at, value: crate::config::node::NodeValue::Map(Vec::new()) };
        Kind::build(self, name, config, &options, cx)
    }
}
