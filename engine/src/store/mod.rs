//! The engine's own tables: SQLite by default, Postgres when `store: postgres://…`.
