//! Which failures move a call to the next target.

use junction_engine::connector::ConnectorError;

use super::Class;

#[test]
fn availability_credentials_and_context_length_have_classes_other_refusals_do_not() {
    let class = |e: ConnectorError| Class::of(&e);
    assert_eq!(class(ConnectorError::retryable("POST llm answered 429 Too Many Requests")), Some(Class::RateLimited));
    assert_eq!(class(ConnectorError::retryable("POST llm answered 503 Service Unavailable")), Some(Class::Unavailable));
    assert_eq!(class(ConnectorError::unavailable("POST llm: connection refused")), Some(Class::Unavailable));
    assert_eq!(
        class(ConnectorError::rejected("POST llm answered 401 Unauthorized: …; check the connector's credentials")),
        Some(Class::Unauthorized)
    );
    assert_eq!(class(ConnectorError::rejected("POST llm answered 403 Forbidden: {}")), Some(Class::Unauthorized));
    assert_eq!(
        class(ConnectorError::rejected(
            r#"POST llm answered 400 Bad Request: {"error": {"code": "context_length_exceeded"}}"#
        )),
        Some(Class::ContextLength)
    );
    assert_eq!(
        class(ConnectorError::rejected(r#"POST llm answered 400 Bad Request: {"error": {"code": "invalid_value"}}"#)),
        None
    );
}
