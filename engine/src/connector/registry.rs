//! The one list of connector kinds a process knows.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::ConnectorKind;
use super::builtin::LogKind;

/// Connector kinds by name. The engine registers its built-in `log`; the connectors crate
/// adds the rest, one line each. (The embedded bus is no kind: it is what `bus: embedded`
/// means.)
#[derive(Clone)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<dyn ConnectorKind>>,
}

impl Registry {
    pub fn new() -> Self {
        let mut r = Self { kinds: BTreeMap::new() };
        r.register(LogKind);
        r
    }

    pub fn register(&mut self, kind: impl ConnectorKind) {
        self.kinds.insert(kind.name(), Arc::new(kind));
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn ConnectorKind>> {
        self.kinds.get(name)
    }

    /// The kind a `bus: <scheme>://…` URL names.
    pub fn by_scheme(&self, scheme: &str) -> Option<&Arc<dyn ConnectorKind>> {
        self.kinds.values().find(|k| k.schemes().contains(&scheme))
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }

    /// Every scheme a `bus:` URL may use.
    pub fn schemes(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.values().flat_map(|k| k.schemes().iter().copied())
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}
