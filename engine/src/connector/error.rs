//! What a failed connector call says: whether trying again may help, and how the caller of
//! the route is answered. Retries, dead letters and HTTP answers match on its kind.

use std::time::Duration;

/// A failed connector call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// The call may succeed if tried again: a timeout, a 5xx, a 429. The other side may say
    /// how long to wait (HTTP `Retry-After`).
    #[error("{message}")]
    Retryable { message: String, retry_after: Option<Duration> },

    /// The other side cannot be reached at all (refused connection, broker down, circuit
    /// open): retried like [`ConnectorError::Retryable`], and an HTTP caller gets 503.
    #[error("{message}")]
    Unavailable { message: String, retry_after: Option<Duration> },

    /// The other side refused this message for what it says (not found, a forbidden change,
    /// a stale version): never retried, and an HTTP caller is told so (422), not an outage.
    #[error("{message}")]
    Rejected { message: String },

    /// The call cannot succeed as it is (a 4xx, a payload the other side cannot take, a
    /// misconfiguration): never retried, dead-lettered.
    #[error("{message}")]
    Permanent { message: String },

    /// A limit of Junction's own refused the call before it was made (an `llm` budget spent):
    /// not retried in the process, dead-lettered to be replayed once the limit allows; an HTTP
    /// caller gets 429 `budget-exhausted`, with `Retry-After` when the limit says when it turns.
    #[error("{message}")]
    Exhausted { message: String, retry_after: Option<Duration> },
}

impl ConnectorError {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Retryable { message: message.into(), retry_after: None }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable { message: message.into(), retry_after: None }
    }

    pub fn rejected(message: impl Into<String>) -> Self {
        Self::Rejected { message: message.into() }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent { message: message.into() }
    }

    pub fn exhausted(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        Self::Exhausted { message: message.into(), retry_after }
    }

    /// Sets how long the other side asked to wait; only retryable kinds keep it.
    #[must_use]
    pub fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        if let Self::Retryable { retry_after, .. } | Self::Unavailable { retry_after, .. } = &mut self {
            *retry_after = after;
        }
        self
    }

    /// Whether trying again may help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. } | Self::Unavailable { .. })
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Retryable { retry_after, .. }
            | Self::Unavailable { retry_after, .. }
            | Self::Exhausted { retry_after, .. } => *retry_after,
            Self::Rejected { .. } | Self::Permanent { .. } => None,
        }
    }

    /// The same error, of the same kind, with its message rewritten by `f`.
    #[must_use]
    pub fn map_message(mut self, f: impl FnOnce(&str) -> String) -> Self {
        let (Self::Retryable { message, .. }
        | Self::Unavailable { message, .. }
        | Self::Rejected { message }
        | Self::Permanent { message }
        | Self::Exhausted { message, .. }) = &mut self;
        *message = f(message);
        self
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Retryable { message, .. }
            | Self::Unavailable { message, .. }
            | Self::Rejected { message }
            | Self::Permanent { message }
            | Self::Exhausted { message, .. } => message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_retryable_kinds_keep_a_retry_after() {
        let wait = Some(Duration::from_secs(2));
        assert_eq!(ConnectorError::retryable("x").with_retry_after(wait).retry_after(), wait);
        assert_eq!(ConnectorError::unavailable("x").with_retry_after(wait).retry_after(), wait);
        assert_eq!(ConnectorError::rejected("x").with_retry_after(wait).retry_after(), None);
        assert!(!ConnectorError::permanent("x").is_retryable());
        assert_eq!(ConnectorError::permanent("boom").to_string(), "boom");
        let spent = ConnectorError::exhausted("spent", wait);
        assert!(!spent.is_retryable(), "a spent budget is not asked again in the process");
        assert_eq!(spent.retry_after(), wait);
        let masked = ConnectorError::retryable("x").with_retry_after(wait).map_message(|m| format!("{m}!"));
        assert_eq!((masked.message(), masked.retry_after(), masked.is_retryable()), ("x!", wait, true));
    }
}
