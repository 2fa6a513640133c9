//! Which failures move a call to the next target.

use junction_engine::connector::ConnectorError;

use super::falls_over;

#[test]
fn availability_credentials_and_context_length_fall_over_other_refusals_do_not() {
    assert!(falls_over(&ConnectorError::retryable("POST llm answered 429 Too Many Requests")));
    assert!(falls_over(&ConnectorError::unavailable("POST llm: connection refused")));
    assert!(falls_over(&ConnectorError::rejected(
        "POST llm answered 401 Unauthorized: …; check the connector's credentials"
    )));
    assert!(falls_over(&ConnectorError::rejected("POST llm answered 403 Forbidden: {}")));
    assert!(falls_over(&ConnectorError::rejected(
        r#"POST llm answered 400 Bad Request: {"error": {"code": "context_length_exceeded"}}"#
    )));
    assert!(!falls_over(&ConnectorError::rejected(
        r#"POST llm answered 400 Bad Request: {"error": {"code": "invalid_value"}}"#
    )));
}
