//! The sandboxed Rhai engine and its small standard library.
