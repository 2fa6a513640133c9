//! Optimistic concurrency: a write names the version it read, and loses if someone else
//! wrote first, instead of silently overwriting their change.

/// Another writer changed the record since the caller read it; the REST layer answers 409.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the record changed since you read it (you sent version {expected}, it is now at \
     version {actual}): reload it and apply your change again"
)]
pub struct Conflict {
    pub expected: i64,
    pub actual: i64,
}

pub fn check_version(expected: i64, actual: i64) -> Result<(), Conflict> {
    if expected == actual { Ok(()) } else { Err(Conflict { expected, actual }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_version_passes() {
        assert_eq!(check_version(3, 3), Ok(()));
    }

    #[test]
    fn stale_version_is_a_conflict_saying_what_to_do() {
        let err = check_version(3, 4).expect_err("stale");
        assert_eq!(err, Conflict { expected: 3, actual: 4 });
        assert!(err.to_string().contains("reload it"), "{err}");
    }
}
