//! The REST API's HTTP vocabulary: a parsed request, a reply with its ETag, and the store's
//! errors as RFC 7807 problems with the status each one means.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use junction_engine::gateway::problem::Problem;
use junction_engine::gateway::{MountedAt, RequestCx};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::store::MasterDealStoreError;

/// A request as a handler sees it: path parameters by name, the query, headers and body.
pub(crate) struct Req {
    pub(crate) params: HashMap<String, String>,
    pub(crate) query: HashMap<String, String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) request_id: Arc<str>,
    /// Where the API is mounted (`/api`), for `Location` headers.
    pub(crate) mounted_at: Arc<str>,
}

impl Req {
    pub(crate) fn new(parts: &http::request::Parts, params: HashMap<String, String>, body: Bytes) -> Self {
        let query = parts
            .uri
            .query()
            .map(|q| {
                q.split('&')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        (decode(k), decode(v))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let request_id = parts.extensions.get::<RequestCx>().map_or_else(|| Arc::from(""), |cx| cx.request_id.clone());
        let mounted_at = parts.extensions.get::<MountedAt>().map_or_else(|| Arc::from(""), |m| m.0.clone());
        Self { params, query, headers: parts.headers.clone(), body, request_id, mounted_at }
    }

    /// A `{name}` path parameter that must be a uuid.
    pub(crate) fn id(&self, name: &str) -> Result<Uuid, ApiError> {
        let raw = self.params.get(name).map_or("", String::as_str);
        raw.parse().map_err(|_| ApiError::bad_request(format!("`{raw}` is not an id (a uuid)")))
    }

    /// The JSON body as `T`; a body that does not parse or fit is the caller's to fix (400/422).
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let value: Value = serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "Malformed JSON",
                format!("the body is not JSON: {e}"),
            )
        })?;
        T::deserialize(value).map_err(|e| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", "Invalid input", e.to_string())
        })
    }

    /// The version a write expects: `If-Match: "3"` (the ETag of a read), or, for clients
    /// that cannot set headers, `expected_version` in the body. Neither: 428, since a write
    /// without one could silently overwrite someone else's.
    pub(crate) fn expected_version(&self, from_body: Option<i64>) -> Result<i64, ApiError> {
        if let Some(raw) = self.headers.get(header::IF_MATCH) {
            let text = raw.to_str().unwrap_or("").trim();
            let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
            return text.parse().map_err(|_| {
                ApiError::bad_request(format!("If-Match `{text}` is not an ETag of this API (a version like \"3\")"))
            });
        }
        from_body.ok_or_else(|| {
            ApiError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition-required",
                "If-Match required",
                "send the ETag you read as If-Match (or `expected_version` in the body), so a \
                 concurrent change is not overwritten",
            )
        })
    }

    /// Whether the caller already holds this version (`If-None-Match`), so 304 will do.
    pub(crate) fn holds(&self, version: i64) -> bool {
        self.headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|tag| tag.trim().trim_start_matches("W/") == etag(version)))
    }
}

fn decode(s: &str) -> String {
    junction_engine::gateway::percent_decode(s)
}

/// The ETag of a record at `version`.
pub(crate) fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// A successful answer.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
    /// The record's version, sent as its ETag.
    pub(crate) version: Option<i64>,
    pub(crate) location: Option<String>,
}

impl Reply {
    pub(crate) fn ok(body: Value) -> Self {
        Self { status: StatusCode::OK, body, version: None, location: None }
    }

    /// A single record: its version becomes the ETag.
    pub(crate) fn record(body: Value) -> Self {
        let version = body.get("version").and_then(Value::as_i64);
        Self { status: StatusCode::OK, body, version, location: None }
    }

    #[must_use]
    pub(crate) fn created(mut self, location: String) -> Self {
        self.status = StatusCode::CREATED;
        self.location = Some(location);
        self
    }

    /// Taken to be done later; `location` is where to follow it.
    pub(crate) fn accepted(body: Value, location: String) -> Self {
        Self { status: StatusCode::ACCEPTED, body, version: None, location: Some(location) }
    }

    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        let bytes = serde_json::to_vec(&self.body).expect("a JSON value always serializes");
        let mut resp = Response::new(Full::new(Bytes::from(bytes)));
        *resp.status_mut() = self.status;
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(v) = self.version.and_then(|v| HeaderValue::from_str(&etag(v)).ok()) {
            headers.insert(header::ETAG, v);
        }
        if let Some(v) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, v);
        }
        resp
    }
}

/// 304 for a caller that already holds `version`.
pub(crate) fn not_modified(version: i64) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NOT_MODIFIED;
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// A failed request, as the problem it is answered with.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) kind: &'static str,
    pub(crate) title: &'static str,
    pub(crate) detail: String,
    pub(crate) extra: Vec<(&'static str, Value)>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self { status, kind, title, detail: detail.into(), extra: Vec::new() }
    }

    pub(crate) fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", "Bad request", detail)
    }

    pub(crate) fn invalid(detail: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", "Invalid input", detail.to_string())
    }

    pub(crate) fn into_response(self, request_id: &str) -> Response<Full<Bytes>> {
        let retry = self.status == StatusCode::SERVICE_UNAVAILABLE;
        let mut p = Problem::new(self.status, self.kind, self.title, self.detail);
        for (k, v) in self.extra {
            p = p.with(k, v);
        }
        if retry {
            p = p.retry_after(5);
        }
        p.into_response(request_id)
    }
}

impl From<MasterDealStoreError> for ApiError {
    fn from(e: MasterDealStoreError) -> Self {
        use MasterDealStoreError as E;
        let detail = e.to_string();
        match e {
            E::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail),
            E::Conflict { expected, actual, .. } => {
                let mut err = ApiError::new(StatusCode::CONFLICT, "stale-version", "The record changed", detail);
                err.extra = vec![("expected_version", json!(expected)), ("current_version", json!(actual))];
                err
            }
            E::Transition(t) => {
                let mut err =
                    ApiError::new(StatusCode::CONFLICT, "forbidden-transition", "Transition not allowed", detail);
                err.extra = vec![("from", json!(t.from)), ("to", json!(t.to)), ("allowed", json!(t.allowed))];
                err
            }
            E::VersionRequired { .. } => ApiError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition-required",
                "If-Match required",
                format!("{detail}: send it as If-Match (or `expected_version` in the body)"),
            ),
            E::NotDeletable { .. } => ApiError::new(StatusCode::CONFLICT, "not-deletable", "Cannot be deleted", detail),
            // Asked of a plan in the wrong state, not of a wrong request.
            E::Rule(crate::domain::RuleError::ProposalOfUnapprovedPlan { .. }) => {
                ApiError::new(StatusCode::CONFLICT, "plan-not-approved", "The media plan is not approved", detail)
            }
            E::Rule(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "rule-violation", "Domain rule broken", detail)
            }
            E::Invalid(_) => ApiError::invalid(detail),
            // Another writer got there first: reading again shows what it did.
            E::Raced { .. } => ApiError::new(StatusCode::CONFLICT, "conflict", "Changed concurrently", detail),
            E::Query { ref source, .. } if crate::store::is_constraint_violation(source) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", "Changed concurrently", detail)
            }
            E::Query { .. } | E::Migration { .. } | E::Publish { .. } | E::Unavailable { .. } => {
                tracing::warn!(error = %detail, "masterdeal API: the store failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store-unavailable",
                    "The database is unavailable",
                    detail,
                )
            }
            E::Corrupt { .. } => {
                tracing::error!(error = %detail, "masterdeal API: a stored row does not decode");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "corrupt-record", "A stored record is corrupt", detail)
            }
        }
    }
}
