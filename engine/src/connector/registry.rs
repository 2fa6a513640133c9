//! The one list of connector kinds a process knows.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::ConnectorKind;
use super::builtin::{BusKind, LogKind};

/// Connector kinds by name. The engine registers its built-ins (`bus`, `log`); the
/// connectors crate adds the rest, one line each.
#[derive(Clone)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<dyn ConnectorKind>>,
}

impl Registry {
    pub fn new() -> Self {
        let mut r = Self { kinds: BTreeMap::new() };
        r.register(BusKind);
        r.register(LogKind);
        r
    }

    pub fn register(&mut self, kind: impl ConnectorKind) {
        self.kinds.insert(kind.name(), Arc::new(kind));
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn ConnectorKind>> {
        self.kinds.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}
