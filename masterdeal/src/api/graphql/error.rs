//! Store errors as GraphQL errors: the store's message, and in `extensions.code` what REST
//! says with its status (see `wire`'s `From<MasterDealStoreError> for ApiError`), so a
//! client can branch on the code without parsing text.

use async_graphql::{Error, ErrorExtensions};

use crate::store::MasterDealStoreError;

/// An error with `extensions.code`.
pub(super) fn coded(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(message).extend_with(|_, e| e.set("code", code))
}

/// Input the caller must fix (a malformed id, date or amount): `INVALID_INPUT`.
pub(super) fn invalid(message: impl std::fmt::Display) -> Error {
    coded("INVALID_INPUT", format!("invalid input: {message}"))
}

pub(super) fn store_error(e: MasterDealStoreError) -> Error {
    use MasterDealStoreError as E;
    let message = e.to_string();
    match e {
        E::NotFound { .. } => coded("NOT_FOUND", message),
        E::Conflict { expected, actual, .. } => Error::new(message).extend_with(|_, x| {
            x.set("code", "CONFLICT");
            x.set("expectedVersion", expected);
            x.set("currentVersion", actual);
        }),
        E::Transition(t) => Error::new(message).extend_with(|_, x| {
            x.set("code", "FORBIDDEN_TRANSITION");
            x.set("from", t.from);
            x.set("to", t.to);
            x.set("allowed", t.allowed.clone());
        }),
        E::Rule(_) => coded("RULE_VIOLATION", message),
        E::NotDeletable { .. } => coded("NOT_DELETABLE", message),
        E::VersionRequired { .. } => coded("PRECONDITION_REQUIRED", format!("{message}: send expectedVersion")),
        E::Invalid(_) => coded("INVALID_INPUT", message),
        E::Raced { .. } => coded("CONFLICT", message),
        E::Query { ref source, .. } if crate::store::is_constraint_violation(source) => coded("CONFLICT", message),
        E::Query { .. } | E::Migration { .. } | E::Publish { .. } | E::Unavailable { .. } => {
            tracing::warn!(error = %message, "masterdeal GraphQL: the store failed");
            coded("UNAVAILABLE", message)
        }
        E::Corrupt { .. } => {
            tracing::error!(error = %message, "masterdeal GraphQL: a stored row does not decode");
            coded("CORRUPT_RECORD", message)
        }
    }
}

/// `.coded()` on a store result: its error as [`store_error`]. A bare `?` would compile too
/// (async-graphql converts any `Display`), but lose the code.
pub(super) trait Coded<T> {
    fn coded(self) -> async_graphql::Result<T>;
}

impl<T> Coded<T> for Result<T, MasterDealStoreError> {
    fn coded(self) -> async_graphql::Result<T> {
        self.map_err(store_error)
    }
}
