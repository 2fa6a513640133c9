//! The auth layer: a request passes with its caller's [`Principal`] attached, or is answered
//! 401 (503 when the means to check are down) before its route sees it.

use std::sync::Arc;

use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::{Either, Full};
use tower::ServiceExt;

use super::auth::{Authenticator, Denied, Principal};
use super::handler::read_body;
use super::problem::Problem;
use super::{EndpointLayer, EndpointService, GatewayRequest, GatewayResponse, RequestCx};

#[derive(Clone)]
pub(super) struct Authenticate {
    inner: EndpointService,
    auth: Arc<Authenticator>,
    max_body: u64,
}

impl Authenticate {
    pub(super) fn new(inner: EndpointService, auth: Arc<Authenticator>, max_body: u64) -> Self {
        Self { inner, auth, max_body }
    }
}

impl EndpointLayer for Authenticate {
    async fn serve(self, req: GatewayRequest) -> GatewayResponse {
        let (inner, auth, max_body) = (self.inner.clone(), self.auth.clone(), self.max_body);

        let request_id = req.extensions().get::<RequestCx>().map(|cx| cx.request_id.clone()).unwrap_or_default();
        let (parts, body) = req.into_parts();
        // A signature covers the raw body, so it is read (within the route's limit) first.
        let (checked, body) = if auth.needs_body() {
            let bytes = match read_body(body, max_body).await {
                Ok(b) => b,
                Err(p) => return p.into_response(&request_id),
            };
            (auth.check(&parts, Some(&bytes)).await, Either::Right(Full::new(bytes)))
        } else {
            (auth.check(&parts, None).await, body)
        };
        let principal = match checked {
            Ok(p) => p,
            Err(denied) => return refuse(&auth, denied, &request_id),
        };
        let mut req = Request::from_parts(parts, body);
        req.extensions_mut().insert(principal.clone());
        let Ok(mut resp) = inner.oneshot(req).await;
        // The audit layer outside reads who it was from the response.
        resp.extensions_mut().insert(principal);
        resp
    }
}

fn refuse(auth: &Authenticator, denied: Denied, request_id: &str) -> GatewayResponse {
    let mut resp = match denied {
        Denied::Unauthorized(detail) => {
            Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Authentication required", detail)
                .into_response(request_id)
        }
        Denied::Unavailable(detail) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "auth-unavailable",
            "Credentials cannot be checked right now",
            detail,
        )
        .retry_after(5)
        .into_response(request_id),
    };
    if resp.status() == StatusCode::UNAUTHORIZED {
        let challenge = match auth.kind() {
            "jwt" => "Bearer",
            "basic" => "Basic realm=\"junction\"",
            _ => "ApiKey",
        };
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    resp.extensions_mut().insert(Principal { id: "anonymous".into(), kind: auth.kind() });
    resp
}
