//! The shared shape of the status state machines: each status enum lists where it may go,
//! and `transition` turns a forbidden move into an error naming the allowed ones.

use std::fmt::Debug;

/// A status enum whose moves are fixed by the domain.
pub trait Lifecycle: Copy + Eq + Debug + 'static {
    /// What the status belongs to, as a user says it ("master deal").
    const NAME: &'static str;
    /// Every status, in lifecycle order.
    const ALL: &'static [Self];

    /// The statuses reachable in one move from `self`; empty for a final status.
    fn allowed_from(self) -> &'static [Self];

    /// The `snake_case` name used on the wire and in the database.
    fn as_str(self) -> &'static str;

    fn can_go_to(self, to: Self) -> bool {
        self.allowed_from().contains(&to)
    }
}

/// A status change the lifecycle forbids; the REST layer answers it with 409 Conflict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {machine} cannot go from `{from}` to `{to}`; {}", allowed_hint(from, allowed))]
pub struct TransitionError {
    pub machine: &'static str,
    pub from: &'static str,
    pub to: &'static str,
    pub allowed: Vec<&'static str>,
}

fn allowed_hint(from: &str, allowed: &[&str]) -> String {
    if allowed.is_empty() {
        format!("`{from}` is final")
    } else {
        format!("from `{from}` it can go to: {}", allowed.join(", "))
    }
}

/// Checks one status change and returns the new status.
pub fn transition<S: Lifecycle>(from: S, to: S) -> Result<S, TransitionError> {
    if from.can_go_to(to) {
        Ok(to)
    } else {
        Err(TransitionError {
            machine: S::NAME,
            from: from.as_str(),
            to: to.as_str(),
            allowed: from.allowed_from().iter().map(|s| s.as_str()).collect(),
        })
    }
}

/// Test helper: checks a lifecycle against its table from the issue, both ways.
#[cfg(test)]
pub(crate) fn assert_lifecycle<S>(allowed: &[(S, S)])
where
    S: Lifecycle + serde::Serialize,
{
    for &from in S::ALL {
        for &to in S::ALL {
            let listed = allowed.contains(&(from, to));
            match transition(from, to) {
                Ok(next) => {
                    assert!(listed, "{from:?} -> {to:?} is allowed but not in the table");
                    assert_eq!(next, to);
                }
                Err(err) => {
                    assert!(!listed, "{from:?} -> {to:?} is refused: {err}");
                    let expected: Vec<_> =
                        allowed.iter().filter(|(f, _)| *f == from).map(|(_, t)| t.as_str()).collect();
                    assert_eq!(err.allowed, expected, "{err}");
                }
            }
        }
        let wire = serde_json::to_value(from).expect("a status serialises");
        assert_eq!(wire, from.as_str(), "serde name and as_str differ");
    }
}
