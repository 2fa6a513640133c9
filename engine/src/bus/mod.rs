//! The embedded event bus: durable topics in the store, consumer groups with acks.
