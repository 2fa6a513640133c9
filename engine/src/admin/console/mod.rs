//! The admin console: server-rendered pages (minijinja templates) over the admin API's own
//! data and actions, made live with htmx and one Server-Sent-Events stream per page, on the
//! admin listener under `/console`. Every asset is embedded: it works with no network.
//!
//! Sign-in: the admin token (an `operator`) or a configured user; every change needs an
//! `operator`, carries the session's CSRF token, and is audited with who did it.

mod assets;
mod auth;
mod jobs;
mod live;
mod pages;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use minijinja::Environment;
use serde::Serialize;

use super::{Answer, Body, full};
use crate::config::{AdminSettings, ConsoleRole};
use crate::runtime::Runtime;
use auth::{Auth, Refused, Session};

/// How often an event stream sends a heartbeat comment when nothing else was sent.
const HEARTBEAT: Duration = Duration::from_secs(15);

pub(crate) struct Console {
    auth: Auth,
    jobs: Arc<jobs::Jobs>,
    live: Arc<live::Live>,
    views: Environment<'static>,
    /// The session cookie is `Secure` (a TLS proxy is in front).
    secure: bool,
}

/// A message shown at the top of a page, or as an action's answer.
#[derive(Serialize)]
struct Flash {
    kind: &'static str,
    text: String,
}

/// One request as the pages see it.
pub(super) struct Call<'a> {
    runtime: &'a Runtime,
    session: &'a Session,
    query: HashMap<String, String>,
    form: HashMap<String, String>,
    /// Sent by htmx: answer with a fragment, not a redirect.
    htmx: bool,
    request_id: String,
    action: String,
}

impl Console {
    pub(crate) fn start(runtime: &Runtime, settings: &AdminSettings, token_hash: [u8; 32]) -> Self {
        Self {
            auth: Auth::new(token_hash, settings.users.clone()),
            jobs: Arc::default(),
            live: live::Live::start(runtime),
            views: pages::views(),
            secure: settings.behind_tls,
        }
    }

    pub(crate) async fn handle(&self, runtime: &Runtime, req: Request<Incoming>, peer: IpAddr) -> Response<Body> {
        let path = req.uri().path().to_owned();
        if let Some(name) = path.strip_prefix("/console/assets/") {
            return match assets::get(name) {
                Some((bytes, kind)) if req.method() == Method::GET => {
                    let mut resp = Response::new(full(Bytes::from_static(bytes)));
                    set(&mut resp, header::CONTENT_TYPE, kind);
                    set(&mut resp, header::CACHE_CONTROL, "public, max-age=3600");
                    resp
                }
                _ => text(StatusCode::NOT_FOUND, "no such asset"),
            };
        }
        let request_id = super::request_id(&req);
        let query = super::api::query(req.uri().query().unwrap_or(""));
        let cookie = req
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(auth::cookie_value)
            .map(str::to_owned);
        let session = cookie.as_deref().and_then(|c| self.auth.session(c));
        let htmx = req.headers().contains_key("hx-request");
        let method = req.method().clone();
        let segments: Vec<String> = path.trim_matches('/').split('/').map(crate::gateway::percent_decode).collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let action = format!("{method} {path}");

        if method == Method::POST && !same_origin(&req) {
            return text(StatusCode::FORBIDDEN, "cross-origin request refused");
        }
        match (&method, segments.as_slice()) {
            (&Method::GET, ["console"]) => return redirect("/console/overview"),
            (&Method::GET, ["console", "login"]) => {
                if session.is_some() {
                    return redirect("/console/overview");
                }
                let next = query.get("next").cloned().unwrap_or_default();
                return self.page(
                    StatusCode::OK,
                    "login.html",
                    None,
                    "login",
                    minijinja::context! { next, user => "" },
                );
            }
            (&Method::POST, ["console", "login"]) => {
                let form = match read_form(req).await {
                    Ok(f) => f,
                    Err(resp) => return resp,
                };
                return self.sign_in(runtime, peer, &form, &action, &request_id).await;
            }
            _ => {}
        }
        let Some(session) = session else {
            if method == Method::GET && !htmx {
                let here = req.uri().path_and_query().map_or(path.as_str(), |p| p.as_str());
                return redirect(&format!("/console/login?next={}", encode(here)));
            }
            let mut resp = text(StatusCode::UNAUTHORIZED, "sign in first");
            set(&mut resp, "hx-redirect", "/console/login");
            return resp;
        };
        let mut form = HashMap::new();
        if method == Method::POST {
            let presented_header = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_owned);
            form = match read_form(req).await {
                Ok(f) => f,
                Err(resp) => return resp,
            };
            let presented = presented_header.as_deref().or_else(|| form.get("csrf").map(String::as_str));
            if !auth::csrf_ok(&session, presented) {
                let answer =
                    Answer::problem(StatusCode::FORBIDDEN, "csrf", "CSRF token missing or wrong", "reload the page");
                super::audit(runtime, &session.user, session.proof, action, &answer, &request_id).await;
                return text(
                    StatusCode::FORBIDDEN,
                    "the form's CSRF token is missing or wrong: reload the page and try again",
                );
            }
            if segments.as_slice() == ["console", "logout"] {
                if let Some(c) = cookie.as_deref() {
                    self.auth.sign_out(c);
                }
                let mut resp = redirect("/console/login");
                set(&mut resp, header::SET_COOKIE, &auth::cookie_cleared(self.secure));
                return resp;
            }
            // Checking a dead letter (validate, dry run) changes nothing: a viewer may.
            let reads_only = matches!(
                segments.as_slice(),
                ["console", "dead-letters", _, "check"] | ["console", "playground", "run" | "fixture"]
            );
            if session.role < ConsoleRole::Operator && !reads_only {
                let answer =
                    Answer::problem(StatusCode::FORBIDDEN, "forbidden", "Operators only", "a viewer reads only");
                super::audit(runtime, &session.user, session.proof, action, &answer, &request_id).await;
                return text(StatusCode::FORBIDDEN, "only an operator may change anything; you are a viewer");
            }
        }
        let call = Call { runtime, session: &session, query, form, htmx, request_id, action };
        match (&method, segments.as_slice()) {
            (&Method::GET, ["console", "events"]) => self.events(&call),
            (&Method::GET, ["console", "overview"]) => pages::overview(self, &call).await,
            (&Method::GET, ["console", "topology"]) => pages::topology(self, &call),
            (&Method::GET, ["console", "playground"]) => pages::playground(self, &call).await,
            (&Method::POST, ["console", "playground", "run"]) => pages::playground_run(self, &call),
            (&Method::POST, ["console", "playground", "fixture"]) => pages::playground_fixture(&call),
            (&Method::GET, ["console", "provenance"]) => pages::provenance(self, &call).await,
            (&Method::POST, ["console", "provenance", "watch"]) => pages::watch(self, &call).await,
            (&Method::GET, ["console", "routes", id]) => pages::route(self, &call, id).await,
            (&Method::POST, ["console", "routes", id, act @ ("pause" | "resume")]) => {
                pages::pause(self, &call, id, *act == "pause").await
            }
            (&Method::GET, ["console", "dead-letters"]) => pages::dead_letters(self, &call).await,
            (&Method::GET, ["console", "dead-letters", id]) => pages::dead_letter(self, &call, id).await,
            (&Method::POST, ["console", "dead-letters", "replay-all"]) => pages::replay_all(self, &call).await,
            (&Method::POST, ["console", "dead-letters", id, "replay"]) => pages::replay(self, &call, id).await,
            (&Method::POST, ["console", "dead-letters", id, "check"]) => pages::check(self, &call, id).await,
            (&Method::GET, ["console", "jobs", id]) => pages::job(self, &call, id),
            (&Method::GET, ["console", "audit"]) => pages::audit(self, &call).await,
            (&Method::GET, ["console", "reload"]) => pages::reload(self, &call, true).await,
            (&Method::POST, ["console", "reload"]) => pages::reload(self, &call, false).await,
            _ => self.page(
                StatusCode::NOT_FOUND,
                "base.html",
                Some(&session),
                "",
                minijinja::context! { flash => Flash { kind: "bad", text: format!("No console page at {path}") } },
            ),
        }
    }

    async fn sign_in(
        &self,
        runtime: &Runtime,
        peer: IpAddr,
        form: &HashMap<String, String>,
        action: &str,
        request_id: &str,
    ) -> Response<Body> {
        let name = form.get("user").map_or("", String::as_str);
        let next = form.get("next").map_or("", String::as_str);
        let result = self.auth.sign_in(peer, name, form.get("password").map_or("", String::as_str)).await;
        let (status, why) = match &result {
            Ok(_) => (StatusCode::SEE_OTHER, String::new()),
            Err(Refused::Wrong) => (StatusCode::UNAUTHORIZED, "Wrong name, password or token.".to_owned()),
            Err(Refused::Throttled(wait)) => (
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many failed sign-ins: try again in {} s.", wait.as_secs().max(1)),
            ),
        };
        let actor = match &result {
            Ok((_, s)) => s.user.clone(),
            Err(_) if name.trim().is_empty() => "anonymous".to_owned(),
            Err(_) => name.trim().to_owned(),
        };
        let proof = result.as_ref().map_or("none", |(_, s)| s.proof);
        let answer = Answer { status, body: serde_json::Value::Null, target: None, etag: None };
        super::audit(runtime, &actor, proof, action.to_owned(), &answer, request_id).await;
        match result {
            Ok((cookie, _)) => {
                let target = if next.starts_with("/console/") && !next.starts_with("/console/login") {
                    next
                } else {
                    "/console/overview"
                };
                let mut resp = redirect(target);
                set(&mut resp, header::SET_COOKIE, &auth::cookie(&cookie, self.secure));
                resp
            }
            Err(refused) => {
                let mut resp = self.page(
                    status,
                    "login.html",
                    None,
                    "login",
                    minijinja::context! { next, user => name, flash => Flash { kind: "bad", text: why } },
                );
                if let Refused::Throttled(wait) = refused {
                    set(&mut resp, header::RETRY_AFTER, &wait.as_secs().max(1).to_string());
                }
                resp
            }
        }
    }

    /// Renders a whole page (`page`: the navigation entry it is) or a fragment.
    fn page(
        &self,
        status: StatusCode,
        template: &str,
        session: Option<&Session>,
        page: &str,
        cx: minijinja::Value,
    ) -> Response<Body> {
        let common = minijinja::context! {
            session => session.map(|s| minijinja::context! { user => s.user, role => s.role, csrf => s.csrf }),
            can_operate => session.is_some_and(|s| s.role >= ConsoleRole::Operator),
            page,
            nav => pages::NAV.iter().map(|(key, label, href)| minijinja::context! { key, label, href }).collect::<Vec<_>>(),
        };
        let rendered = self.views.get_template(template).and_then(|t| t.render(minijinja::context! { ..cx, ..common }));
        match rendered {
            Ok(html) => {
                let mut resp = Response::new(full(html));
                *resp.status_mut() = status;
                set(&mut resp, header::CONTENT_TYPE, "text/html; charset=utf-8");
                set(&mut resp, header::CACHE_CONTROL, "no-store");
                set(&mut resp, "x-frame-options", "DENY");
                set(&mut resp, "content-security-policy", CSP);
                resp
            }
            Err(e) => {
                tracing::error!(template, error = %e, "a console template failed to render");
                text(StatusCode::INTERNAL_SERVER_ERROR, &format!("the page could not be rendered: {e}"))
            }
        }
    }

    /// One Server-Sent-Events stream for a page: its live fragments every tick, a heartbeat
    /// comment in between. It ends when the browser goes.
    fn events(&self, call: &Call<'_>) -> Response<Body> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let page = call.query.get("page").cloned().unwrap_or_default();
        let id = call.query.get("id").cloned().unwrap_or_default();
        let (runtime, live, views) = (call.runtime.clone(), self.live.clone(), self.views.clone());
        let session = call.session.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(live::TICK);
            let mut last_sent = tokio::time::Instant::now();
            // Each fragment as last sent: only what changed goes out.
            let mut shown: HashMap<&'static str, String> = HashMap::new();
            // A first comment tells the browser the stream is open.
            if tx.send(Bytes::from_static(b": open\n\n")).await.is_err() {
                return;
            }
            loop {
                tick.tick().await;
                let fragments = pages::live_fragments(&views, &runtime, &live, &session, &page, &id).await;
                let mut out = String::new();
                for (event, html) in fragments {
                    if shown.get(event) == Some(&html) {
                        continue;
                    }
                    out.push_str("event: ");
                    out.push_str(event);
                    out.push('\n');
                    for line in html.lines() {
                        out.push_str("data: ");
                        out.push_str(line);
                        out.push('\n');
                    }
                    out.push('\n');
                    shown.insert(event, html);
                }
                if out.is_empty() && last_sent.elapsed() >= HEARTBEAT {
                    out.push_str(": heartbeat\n\n");
                }
                if out.is_empty() {
                    continue;
                }
                if tx.send(Bytes::from(out)).await.is_err() {
                    return;
                }
                last_sent = tokio::time::Instant::now();
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
        });
        let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
        set(&mut resp, header::CONTENT_TYPE, "text/event-stream");
        set(&mut resp, header::CACHE_CONTROL, "no-store");
        resp
    }
}

/// Scripts and styles only from the console itself; no inline script.
const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'";

/// A POST from another origin (a page elsewhere submitting a form) is refused before
/// anything else; the CSRF token and the `SameSite=Strict` cookie are the other two locks.
fn same_origin<B>(req: &Request<B>) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    origin.split_once("://").is_some_and(|(_, rest)| rest == host)
}

async fn read_form(req: Request<Incoming>) -> Result<HashMap<String, String>, Response<Body>> {
    match Limited::new(req.into_body(), 1 << 20).collect().await {
        Ok(body) => Ok(super::api::query(&String::from_utf8_lossy(&body.to_bytes()))),
        Err(_) => Err(text(StatusCode::PAYLOAD_TOO_LARGE, "the form is larger than 1 MiB")),
    }
}

/// Percent-encodes everything but unreserved characters and `/`.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn set(resp: &mut Response<Body>, name: impl header::IntoHeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

fn redirect(to: &str) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::SEE_OTHER;
    set(&mut resp, header::LOCATION, to);
    resp
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut resp = Response::new(full(message.to_owned()));
    *resp.status_mut() = status;
    set(&mut resp, header::CONTENT_TYPE, "text/plain; charset=utf-8");
    resp
}
