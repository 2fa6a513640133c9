//! The CLIENT span of one connector call. The engine makes it around every endpoint
//! ([`crate::connector::Measured`]); the kind running the call adds what only it knows (an
//! HTTP call's method, URL and status, a name such as `POST crm`) through [`set`] and
//! [`name`], and takes [`id`] as the parent it hands to the called system. Outside a traced
//! call these do nothing.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use super::Value;

tokio::task_local! {
    static CALL: Arc<Annotations>;
}

/// What the kind added to the call's span while it ran.
#[derive(Debug, Default)]
pub(crate) struct Annotations {
    pub(crate) span_id: String,
    added: Mutex<Added>,
}

#[derive(Debug, Default)]
pub(crate) struct Added {
    pub(crate) name: Option<String>,
    pub(crate) attributes: Vec<(&'static str, Value)>,
}

impl Annotations {
    pub(crate) fn take(&self) -> Added {
        std::mem::take(&mut *self.added.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Runs `call` as the traced call of span `span_id`; returns its result and what was added.
pub(crate) async fn within<F: Future>(span_id: String, call: F) -> (F::Output, Added) {
    let annotations = Arc::new(Annotations { span_id, added: Mutex::default() });
    let output = CALL.scope(annotations.clone(), call).await;
    (output, annotations.take())
}

/// Adds an attribute to the current call's span.
pub fn set(key: &'static str, value: impl Into<Value>) {
    let _ = CALL.try_with(|a| {
        a.added.lock().unwrap_or_else(PoisonError::into_inner).attributes.push((key, value.into()));
    });
}

/// Names the current call's span (the engine's name is `send <connector>` or
/// `request <connector>`).
pub fn name(name: std::fmt::Arguments<'_>) {
    let _ = CALL.try_with(|a| a.added.lock().unwrap_or_else(PoisonError::into_inner).name = Some(name.to_string()));
}

/// Whether this runs within a traced call: what costs something to show can be skipped.
pub fn traced() -> bool {
    CALL.try_with(|_| ()).is_ok()
}

/// The current call's span id: the parent of whatever the called system records.
pub fn id() -> Option<String> {
    CALL.try_with(|a| a.span_id.clone()).ok()
}
