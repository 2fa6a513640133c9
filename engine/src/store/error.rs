//! What can go wrong with the store, each variant saying what the operator can do about it.

use std::path::PathBuf;

/// An error from the store. URLs in messages never carry a password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "store URL `{url}` is not supported: use `sqlite://path/to/file.db` (a file; in-memory \
         SQLite is not supported) or `postgres://user@host:5432/database`"
    )]
    UnsupportedUrl { url: String },

    #[error(
        "cannot create the directory `{}` for the SQLite store: {source}; \
         check the path and its permissions",
        path.display()
    )]
    CreateDir { path: PathBuf, source: std::io::Error },

    #[error(
        "cannot connect to the store at `{url}`: {source}; check that the database server is \
         running, the database exists and the `store:` URL (or JUNCTION_STORE) is right"
    )]
    Unreachable { url: String, source: sqlx::Error },

    #[error(
        "cannot migrate the store at `{url}`: {source}; the database may have been migrated \
         by a newer Junction, or a migration was edited after it ran"
    )]
    Migration { url: String, source: sqlx::migrate::MigrateError },

    #[error("store query `{op}` failed: {source}; check that the database is reachable")]
    Query { op: &'static str, source: sqlx::Error },

    #[error(
        "stored {what} `{id}` does not decode: {reason}; the row was edited by hand or \
         written by an incompatible Junction: fix or delete it"
    )]
    Corrupt { what: &'static str, id: String, reason: String },
}

impl StoreError {
    /// Wraps a failed query, naming the operation so a log line says which one failed.
    pub(crate) fn query(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Query { op, source }
    }
}

/// The URL with any password replaced by `***`, fit for error messages and logs.
pub(crate) fn redact(url: &str) -> String {
    let mut out = redact_userinfo(url);
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let query = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&");
        out = format!("{base}{query}");
    }
    out
}

/// `scheme://user:secret@host/…` → `scheme://user:***@host/…`.
fn redact_userinfo(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[start..].find(['/', '?']).map_or(url.len(), |i| start + i);
    let authority = &url[start..authority_end];
    // The last `@` ends the user info: a password may itself contain `@`.
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    match authority[..at].find(':') {
        Some(colon) => format!("{}:***{}", &url[..start + colon], &url[start + at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact("postgres://app:s3cr@t@db:5432/junction"), "postgres://app:***@db:5432/junction");
        assert_eq!(
            redact("postgres://db/junction?user=app&password=s3cret&sslmode=require"),
            "postgres://db/junction?user=app&password=***&sslmode=require"
        );
        assert_eq!(redact("postgres://app@db/junction"), "postgres://app@db/junction");
        assert_eq!(redact("sqlite://data/junction.db"), "sqlite://data/junction.db");
    }
}
