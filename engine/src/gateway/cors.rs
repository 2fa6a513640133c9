//! CORS per endpoint: which browser origins may call it, answered on preflight (`OPTIONS`)
//! and marked on the actual responses. Browsers enforce it; the gateway only says what is
//! allowed, so a request from another origin is still checked by auth like any other.

use http::header::InvalidHeaderValue;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

use crate::route::spec::CorsSpec;

/// Why an endpoint's `cors:` cannot be used: each says what to change in it.
#[derive(Debug, thiserror::Error)]
pub enum CorsError {
    /// `origins` is empty: list the origins browsers may call from, or `*` for any.
    #[error("`cors.origins` needs at least one origin (or `*`)")]
    NoOrigins,
    /// `credentials` with origin `*`: browsers refuse that; list the origins instead.
    #[error("`cors.credentials` cannot be used with origin `*`; list the origins")]
    CredentialsWithAnyOrigin,
    /// An origin that is not scheme, host and port: drop its path or trailing `/`.
    #[error("CORS origin `{origin}` must look like https://host[:port], without a path")]
    Origin { origin: String },
    /// A name in `headers` that HTTP does not allow: letters, digits and `-` only.
    #[error("`cors.headers` holds an invalid header name")]
    Headers(#[source] InvalidHeaderValue),
}

#[derive(Debug)]
pub struct Cors {
    /// `None`: any origin (`*`).
    origins: Option<Vec<String>>,
    method: Method,
    headers: HeaderValue,
    max_age: HeaderValue,
    credentials: bool,
    /// Response headers scripts may read.
    expose: HeaderValue,
}

impl Cors {
    /// `credential_header`: the header the endpoint's auth scheme reads, which browsers must
    /// be allowed to send.
    pub fn new(spec: &CorsSpec, method: &Method, credential_header: Option<&str>) -> Result<Self, CorsError> {
        if spec.origins.is_empty() {
            return Err(CorsError::NoOrigins);
        }
        let any = spec.origins.iter().any(|o| o == "*");
        if any && spec.credentials {
            return Err(CorsError::CredentialsWithAnyOrigin);
        }
        for origin in spec.origins.iter().filter(|o| *o != "*") {
            let ok = (origin.starts_with("https://") || origin.starts_with("http://")) && !origin.ends_with('/');
            if !ok {
                return Err(CorsError::Origin { origin: origin.clone() });
            }
        }
        let mut headers: Vec<String> = vec!["content-type".into()];
        headers.extend(credential_header.map(str::to_owned));
        headers.extend(spec.headers.iter().map(|h| h.to_ascii_lowercase()));
        headers.dedup();
        let headers = HeaderValue::from_str(&headers.join(", ")).map_err(CorsError::Headers)?;
        let max_age = spec.max_age.map_or(600, |d| d.0.as_secs());
        Ok(Self {
            origins: (!any).then(|| spec.origins.clone()),
            method: method.clone(),
            headers,
            max_age: HeaderValue::from(max_age),
            credentials: spec.credentials,
            expose: HeaderValue::from_static("x-request-id, retry-after"),
        })
    }

    /// Also lets scripts read `extra` response headers (an API's `etag`, `location`).
    #[must_use]
    pub fn exposing(mut self, extra: &'static str) -> Self {
        let all = format!("x-request-id, retry-after, {extra}");
        if let Ok(v) = HeaderValue::from_str(&all) {
            self.expose = v;
        }
        self
    }

    pub fn allows(&self, origin: &str) -> bool {
        self.origins.as_ref().is_none_or(|list| list.iter().any(|o| o == origin))
    }

    /// Marks an actual response to a request from `origin`.
    pub fn decorate(&self, origin: &HeaderValue, headers: &mut HeaderMap) {
        let Ok(text) = origin.to_str() else { return };
        if !self.allows(text) {
            return;
        }
        self.allow_origin(origin, headers);
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, self.expose.clone());
    }

    fn allow_origin(&self, origin: &HeaderValue, headers: &mut HeaderMap) {
        if self.origins.is_none() {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        } else {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            headers.append(header::VARY, HeaderValue::from_static("origin"));
        }
        if self.credentials {
            headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
    }
}

/// The answer to a preflight from `origin` for a path served by `endpoints` (one per method
/// with CORS); `None` when no endpoint there allows the origin.
pub fn preflight<B: Default>(origin: &HeaderValue, endpoints: &[&Cors]) -> Option<Response<B>> {
    let text = origin.to_str().ok()?;
    let allowed: Vec<&&Cors> = endpoints.iter().filter(|c| c.allows(text)).collect();
    let first = allowed.first()?;
    let mut resp = Response::new(B::default());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let headers = resp.headers_mut();
    first.allow_origin(origin, headers);
    let methods: Vec<&str> = allowed.iter().map(|c| c.method.as_str()).collect();
    if let Ok(v) = HeaderValue::from_str(&methods.join(", ")) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    let mut names: Vec<&str> = Vec::new();
    for c in &allowed {
        names.extend(c.headers.to_str().unwrap_or_default().split(", "));
    }
    names.sort_unstable();
    names.dedup();
    if let Ok(v) = HeaderValue::from_str(&names.join(", ")) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, first.max_age.clone());
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(origins: &[&str], credentials: bool) -> CorsSpec {
        CorsSpec {
            origins: origins.iter().map(|s| (*s).to_owned()).collect(),
            headers: vec!["X-Trace".into()],
            max_age: None,
            credentials,
        }
    }

    #[test]
    fn preflight_allows_listed_origins_only() {
        let cors = Cors::new(&spec(&["https://app.example"], true), &Method::POST, Some("x-api-key")).expect("valid");
        let ok: Response<String> =
            preflight(&HeaderValue::from_static("https://app.example"), &[&cors]).expect("allowed");
        assert_eq!(ok.status(), StatusCode::NO_CONTENT);
        let h = ok.headers();
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_METHODS], "POST");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_HEADERS], "content-type, x-api-key, x-trace");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert!(preflight::<String>(&HeaderValue::from_static("https://evil.example"), &[&cors]).is_none());
    }

    #[test]
    fn star_means_any_origin_but_not_with_credentials() {
        let cors = Cors::new(&spec(&["*"], false), &Method::GET, None).expect("valid");
        let mut h = HeaderMap::new();
        cors.decorate(&HeaderValue::from_static("https://anyone.example"), &mut h);
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(matches!(Cors::new(&spec(&["*"], true), &Method::GET, None), Err(CorsError::CredentialsWithAnyOrigin)));
        assert!(matches!(Cors::new(&spec(&["app.example"], false), &Method::GET, None), Err(CorsError::Origin { .. })));
    }
}
