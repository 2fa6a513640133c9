//! The admin console over plain HTTP: sign-in with the token and with a password, the session
//! cookie, throttled failures, roles, CSRF, the audit of who did what, the live event stream,
//! dead letters, and a reload that refuses to apply a version it did not show.
//! (The same pages driven in a real browser: tests/console_browser.rs.)

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Junction, project, sqlite_store};
use reqwest::StatusCode;
use serde_json::Value;

const TOKEN: &str = "console-test-admin-token";
const ANA_PASSWORD: &str = "ana's long password";

const PING: &str = "route: ping\nfrom: { http: { method: POST, path: /ping, auth: none } }\nsteps:\n  - transform: { script: \"#{ v: 1 }\" }\n";
/// Calls a system that is down (nothing listens on the discard port): dead-lettered at once.
const FAILS: &str = "route: fails\nfrom: { http: { method: POST, path: /fails, auth: none } }\nsteps:\n  - request: { connector: billing, method: POST, path: /invoices }\non_error:\n  retry: { attempts: 1 }\n";
const BILLING: &str = "connectors:\n  billing: { kind: http, base_url: \"http://127.0.0.1:9\", timeout: 2s }\n";

fn config(extra: &str) -> String {
    format!(
        "routes: [routes/]\nreload: {{ watch: false }}\n{BILLING}admin:\n  listen: 127.0.0.1:9090\n  token: {TOKEN}\n  users:\n    - {{ name: ana, password_hash: \"{}\", role: viewer }}\n{extra}",
        common::hash_password(ANA_PASSWORD)
    )
}

/// A browser without a cookie jar: redirects are looked at, not followed.
struct Browser {
    client: reqwest::Client,
    base: String,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl Browser {
    fn new(j: &Junction) -> Self {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Self { client, base: j.admin_url(""), cookie: None, csrf: None }
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        let req = self.client.get(format!("{}{path}", self.base));
        match &self.cookie {
            Some(c) => req.header("cookie", c),
            None => req,
        }
    }

    /// A form POST as the page's form sends it: with the session's CSRF token unless `csrf`
    /// says otherwise.
    async fn post(&self, path: &str, fields: &[(&str, &str)], csrf: Option<&str>) -> reqwest::Response {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        if let Some(token) = csrf {
            form.push(("csrf", token));
        }
        let mut req = self.client.post(format!("{}{path}", self.base)).form(&form);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        req.send().await.expect("post")
    }

    async fn sign_in(&mut self, user: &str, password: &str) -> reqwest::Response {
        let resp = self.post("/console/login", &[("user", user), ("password", password), ("next", "")], None).await;
        if resp.status() == StatusCode::SEE_OTHER {
            let set = resp.headers().get("set-cookie").expect("a session cookie").to_str().expect("ascii").to_owned();
            self.cookie = Some(set.split(';').next().expect("name=value").to_owned());
            let page = self.get("/console/overview").send().await.expect("overview").text().await.expect("html");
            self.csrf = Some(csrf_of(&page));
        }
        resp
    }

    /// A page's status and HTML (with `/`, which the templates escape as `&#x2f;`, as itself).
    async fn page(&self, path: &str) -> (StatusCode, String) {
        let resp = self.get(path).send().await.expect("page");
        (resp.status(), unslash(resp.text().await.expect("html")))
    }
}

fn unslash(html: String) -> String {
    html.replace("&#x2f;", "/")
}

/// The CSRF token a page's forms carry.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with the CSRF token") + 19;
    page[at..].split('"').next().expect("value").to_owned()
}

async fn audit(j: &Junction) -> Vec<Value> {
    common::admin_get(j, TOKEN, "/admin/audit?limit=200").await["items"].as_array().expect("items").clone()
}

/// Waits (the audit log is written in batches) until every (actor, action, outcome) is in it.
async fn audited(j: &Junction, expected: &[(&str, &str, &str)]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let audit = audit(j).await;
        let missing: Vec<_> = expected
            .iter()
            .filter(|(actor, action, outcome)| {
                !audit.iter().any(|e| e["actor"] == *actor && e["action"] == *action && e["outcome"] == *outcome)
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "not audited: {missing:?}\nthe audit: {audit:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn route_state(j: &Junction, id: &str) -> String {
    common::admin_get(j, TOKEN, &format!("/admin/routes/{id}")).await["state"].as_str().expect("state").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sessions_roles_csrf_and_the_audit_of_who_did_what() {
    let dir = project(&[("junction.yaml", &config("")), ("routes/ping.yaml", PING), ("routes/fails.yaml", FAILS)]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let mut admin = Browser::new(&j);

    // Signed out: pages send you to the sign-in, keeping where you were going; assets are open.
    let resp = admin.get("/console/overview").send().await.expect("overview");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/console/login?next=/console/overview");
    let resp = admin.get("/console/assets/htmx.min.js").send().await.expect("asset");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().expect("ascii").starts_with("text/javascript"));
    let (status, login) = admin.page("/console/login").await;
    assert_eq!(status, 200);
    assert!(login.contains("<label for=\"password\">"), "{login}");

    // A wrong token is refused and said so; the right one signs in an operator.
    let resp = admin.sign_in("", "not-the-token").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.text().await.expect("html").contains("Wrong name, password or token."));
    let resp = admin.sign_in("", TOKEN).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = resp.headers()["set-cookie"].to_str().expect("ascii").to_owned();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "no TLS in front here: {cookie}");

    // The overview lists the routes and opens one event stream for the page.
    let (status, overview) = admin.page("/console/overview").await;
    assert_eq!(status, 200);
    assert!(overview.contains("sse-connect=\"/console/events?page=overview\""), "{overview}");
    assert!(overview.contains("/console/routes/ping") && overview.contains("/console/routes/fails"), "{overview}");
    assert!(overview.contains("admin <small class=\"role\">operator</small>"), "{overview}");

    // Traffic shows on the stream: the routes' fragment carries the counts.
    let c = reqwest::Client::new();
    for n in 0..3 {
        let status = c.post(j.url("/ping")).json(&serde_json::json!({ "n": n })).send().await.expect("ping").status();
        assert_eq!(status, 200);
    }
    let status = c.post(j.url("/fails")).json(&serde_json::json!({ "n": 7 })).send().await.expect("fails").status();
    assert!(status.is_server_error(), "{status}");
    let mut events = admin.get("/console/events?page=overview").send().await.expect("events");
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(seen.contains("event: routes") && seen.contains("event: health")) {
        let chunk = tokio::time::timeout_at(deadline, events.chunk()).await.expect("events within 10 s");
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("stream").expect("open")));
    }
    assert!(seen.contains("data: ") && seen.contains("/console/routes/ping"), "{seen}");
    drop(events);

    // A page that is not there says so.
    let (status, page) = admin.page("/console/dead-letters/no/such-page").await;
    assert_eq!(status, 404);
    assert!(page.contains("No console page at /console/dead-letters/no/such-page"), "{page}");
    assert_eq!(admin.page("/console/routes/no-such-route").await.0, 404);
    assert_eq!(admin.page("/console/dead-letters/no-such-id").await.0, 404);

    // The topology is the running routes as a Mermaid flowchart.
    let (status, page) = admin.page("/console/topology").await;
    assert_eq!(status, 200);
    assert!(page.contains("flowchart LR") && page.contains("route_ping") && page.contains("mermaid.min.js"), "{page}");

    // The route page: its definition, steps and live counters; received 3.
    let (status, page) = admin.page("/console/routes/ping").await;
    assert_eq!(status, 200);
    assert!(page.contains("<span class=\"k\">route</span>: ping"), "{page}");
    assert!(page.contains("data-counter=\"received\">3<"), "{page}");
    assert!(page.contains("<code>1:transform</code></td><td class=\"num\" data-step-ok=\"1:transform\">3<"), "{page}");

    // Changes need the session's CSRF token, and come from the console's own origin.
    let resp = admin.post("/console/routes/ping/pause", &[], None).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = admin.post("/console/routes/ping/pause", &[], Some("a-guess")).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let csrf = admin.csrf.clone().expect("csrf");
    let cross = admin
        .client
        .post(format!("{}/console/routes/ping/pause", admin.base))
        .header("cookie", admin.cookie.clone().expect("cookie"))
        .header("origin", "http://evil.example")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("cross-origin post");
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert_eq!(route_state(&j, "ping").await, "running");

    // With it, the operator pauses and resumes; htmx gets the fragment, a plain form a redirect.
    let resp = admin.post("/console/routes/ping/pause", &[], Some(&csrf)).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(route_state(&j, "ping").await, "paused");
    let resp = admin
        .client
        .post(format!("{}/console/routes/ping/resume", admin.base))
        .header("cookie", admin.cookie.clone().expect("cookie"))
        .header("hx-request", "true")
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .expect("resume");
    assert_eq!(resp.status(), 200);
    let fragment = resp.text().await.expect("html");
    assert!(fragment.contains("class=\"state running\"") && !fragment.contains("<html"), "{fragment}");
    assert_eq!(route_state(&j, "ping").await, "running");

    // The dead letter: listed, filtered by its error, opened, replayed (billing is still down).
    let (_, list) = admin.page("/console/dead-letters?error=Connection+refused").await;
    let link = "href=\"/console/dead-letters/";
    let at = list.find(link).expect("the dead letter is listed") + link.len();
    let id = list[at..].split('"').next().expect("id").to_owned();
    let (_, route) = admin.page("/console/routes/fails").await;
    assert!(route.contains(&format!("/console/dead-letters/{id}")) && route.contains("Connection refused"), "{route}");
    let (_, none) = admin.page("/console/dead-letters?error=no-such-error").await;
    assert!(none.contains("No dead letters match."), "{none}");
    let (status, one) = admin.page(&format!("/console/dead-letters/{id}")).await;
    assert_eq!(status, 200);
    assert!(one.contains("POST billing: error sending request") && one.contains("&quot;n&quot;: 7"), "{one}");
    let resp = admin
        .client
        .post(format!("{}/console/dead-letters/{id}/replay", admin.base))
        .header("cookie", admin.cookie.clone().expect("cookie"))
        .header("hx-request", "true")
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .expect("replay");
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.expect("html").contains("it failed again: "), "the replayed message fails again");

    // A viewer signs in with a password, reads, and may change nothing.
    let mut ana = Browser::new(&j);
    assert_eq!(ana.sign_in("ana", ANA_PASSWORD).await.status(), StatusCode::SEE_OTHER);
    let (status, page) = ana.page("/console/routes/ping").await;
    assert_eq!(status, 200);
    assert!(!page.contains("id=\"pause-toggle\""), "a viewer is offered no pause button");
    let ana_csrf = ana.csrf.clone().expect("csrf");
    let resp = ana.post("/console/routes/ping/pause", &[], Some(&ana_csrf)).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(route_state(&j, "ping").await, "running");

    // Signing out ends the session on the server, not only in the browser.
    let old_cookie = ana.cookie.clone();
    let resp = ana.post("/console/logout", &[], Some(&ana_csrf)).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(resp.headers()["set-cookie"].to_str().expect("ascii").contains("Max-Age=0"));
    ana.cookie = old_cookie;
    assert_eq!(ana.get("/console/overview").send().await.expect("overview").status(), StatusCode::SEE_OTHER);

    // Five wrong passwords for a name throttle it, even with the right password after.
    let mut mallory = Browser::new(&j);
    for _ in 0..5 {
        assert_eq!(mallory.sign_in("ana", "guess").await.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = mallory.sign_in("ana", ANA_PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
    assert!(resp.text().await.expect("html").contains("Too many failed sign-ins"));

    // The audit names who did each thing, the refusals too.
    let replay = format!("POST /console/dead-letters/{id}/replay");
    audited(
        &j,
        &[
            ("admin", "POST /console/login", "ok"),
            ("anonymous", "POST /console/login", "denied"),
            ("admin", "POST /console/routes/ping/pause", "ok"),
            ("admin", "POST /console/routes/ping/pause", "denied"),
            ("admin", "POST /console/routes/ping/resume", "ok"),
            ("admin", &replay, "ok"),
            ("ana", "POST /console/login", "ok"),
            ("ana", "POST /console/routes/ping/pause", "denied"),
            ("ana", "POST /console/login", "limited"),
        ],
    )
    .await;
    let (status, page) = admin.page("/console/audit?actor=ana").await;
    assert_eq!(status, 200);
    assert!(page.contains("POST /console/routes/ping/pause") && !page.contains(">admin<"), "{page}");
}

fn put(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_only_the_version_its_dry_run_showed() {
    let dir = project(&[("junction.yaml", &config("  behind_tls: true\n")), ("routes/ping.yaml", PING)]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let mut admin = Browser::new(&j);
    let resp = admin.sign_in("", TOKEN).await;
    assert!(resp.headers()["set-cookie"].to_str().expect("ascii").ends_with("; Secure"), "behind_tls marks it Secure");
    let csrf = admin.csrf.clone().expect("csrf");

    let (status, page) = admin.page("/console/reload").await;
    assert_eq!(status, 200);
    assert!(page.contains("No file differs from what runs."), "{page}");

    // One admin's edit: the dry run shows it as a diff, with the version it read.
    put(dir.path(), "routes/ping.yaml", &PING.replace("v: 1", "v: 2"));
    let (_, page) = admin.page("/console/reload").await;
    assert!(page.contains("<code>routes/ping.yaml</code> changed"), "{page}");
    assert!(page.contains("<span class=\"add\">+  - transform: { script: &quot;#{ v: 2 }&quot; }</span>"), "{page}");
    let seen = page.split("name=\"etag\" value=\"").nth(1).expect("the version").split('"').next().expect("etag");
    let seen = seen.replace("&quot;", "\"");

    // Another change lands before it is applied: applying what was seen is refused.
    put(dir.path(), "routes/ping.yaml", &PING.replace("v: 1", "v: 3"));
    let resp = admin.post("/console/reload", &[("etag", &seen)], Some(&csrf)).await;
    assert_eq!(resp.status(), StatusCode::PRECONDITION_FAILED);
    let page = unslash(resp.text().await.expect("html"));
    assert!(page.contains("The project&#x27;s files changed since the dry run"), "{page}");
    assert!(page.contains("v: 3"), "the refusal shows what a reload would apply now: {page}");
    let c = reqwest::Client::new();
    let v: Value =
        c.post(j.url("/ping")).json(&serde_json::json!({})).send().await.expect("ping").json().await.expect("json");
    assert_eq!(v["v"], 1, "nothing was reloaded");

    // The version now shown applies.
    let now = page.split("name=\"etag\" value=\"").nth(1).expect("the new version").split('"').next().expect("etag");
    let now = now.replace("&quot;", "\"");
    assert_ne!(now, seen);
    let resp = admin.post("/console/reload", &[("etag", &now)], Some(&csrf)).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.expect("html").contains("Reloaded version"));
    let v: Value =
        c.post(j.url("/ping")).json(&serde_json::json!({})).send().await.expect("ping").json().await.expect("json");
    assert_eq!(v["v"], 3);

    // The admin API speaks the same: a dry run's ETag, If-Match honoured.
    let resp = c.post(j.admin_url("/admin/reload?dry_run=true")).bearer_auth(TOKEN).send().await.expect("dry run");
    let etag = resp.headers()["etag"].to_str().expect("ascii").to_owned();
    assert_eq!(etag, now);
    put(dir.path(), "routes/ping.yaml", &PING.replace("v: 1", "v: 4"));
    let resp =
        c.post(j.admin_url("/admin/reload")).bearer_auth(TOKEN).header("if-match", &etag).send().await.expect("stale");
    assert_eq!(resp.status(), 412);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let fresh = resp.headers()["etag"].to_str().expect("ascii").to_owned();
    let resp =
        c.post(j.admin_url("/admin/reload")).bearer_auth(TOKEN).header("if-match", &fresh).send().await.expect("fresh");
    assert_eq!(resp.status(), 200);
    audited(&j, &[("admin", "POST /console/reload", "rejected"), ("admin", "POST /console/reload", "ok")]).await;
}

const ORDERS: &str = "route: orders\nfrom: { http: { method: POST, path: /orders, auth: none, schema: order.json } }\nsteps:\n  - request: { connector: billing, method: POST, path: /invoices }\non_error:\n  retry: { attempts: 1 }\n";
const ORDER_SCHEMA: &str = r#"{ "type": "object", "required": ["qty"], "properties": { "qty": { "type": "integer", "minimum": 1 }, "po": { "type": "string" } } }"#;

/// Dead letters of `orders` waiting now, newest first.
async fn waiting(j: &Junction) -> Vec<Value> {
    common::admin_get(j, TOKEN, "/admin/dead-letters?route=orders").await["items"].as_array().expect("items").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_edited_validated_dry_run_and_replayed_and_many_at_once() {
    // Billing refuses every invoice at first (422): each order becomes a dead letter.
    let billing = common::Stub::start(vec![(422, "")]);
    let config = config("")
        .replace(BILLING, &format!("connectors:\n  billing: {{ kind: http, base_url: \"{}\" }}\n", billing.url));
    let dir =
        project(&[("junction.yaml", &config), ("routes/orders.yaml", ORDERS), ("schemas/order.json", ORDER_SCHEMA)]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let c = reqwest::Client::new();
    for qty in 1..=3 {
        let status =
            c.post(j.url("/orders")).json(&serde_json::json!({ "qty": qty })).send().await.expect("order").status();
        assert!(status.is_server_error(), "{status}");
    }
    let dead = waiting(&j).await;
    assert_eq!(dead.len(), 3);
    let first = dead.iter().find(|d| d["message"]["body"]["qty"] == 1).expect("the first order")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let calls = billing.count();

    let mut admin = Browser::new(&j);
    admin.sign_in("", TOKEN).await;
    let csrf = admin.csrf.clone().expect("csrf");
    let (status, page) = admin.page(&format!("/console/dead-letters/{first}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("<textarea id=\"e-body\"") && page.contains("id=\"replay\""), "{page}");
    let htmx = |path: &str, fields: &[(&str, &str)]| {
        admin
            .client
            .post(format!("{}{path}", admin.base))
            .header("cookie", admin.cookie.clone().expect("cookie"))
            .header("hx-request", "true")
            .header("x-csrf-token", &csrf)
            .form(fields)
            .send()
    };
    let check = format!("/console/dead-letters/{first}/check");

    // Validate against the route's schema: an edit that breaks it says where.
    let resp = htmx(&format!("{check}?what=validate"), &[("headers", "{}"), ("body", "{\"qty\": 0}")])
        .await
        .expect("validate");
    let html = unslash(resp.text().await.expect("html"));
    assert!(html.contains("Not valid against order.json") && html.contains("<code>/qty</code>"), "{html}");
    let resp = htmx(&format!("{check}?what=validate"), &[("headers", "{}"), ("body", "{\"qty\": 1, ")])
        .await
        .expect("validate");
    assert_eq!(resp.status(), 422);
    assert!(resp.text().await.expect("html").contains("The body is not JSON"));
    let fixed = "{\"qty\": 2, \"po\": \"PO-7\"}";
    let resp = htmx(&format!("{check}?what=validate"), &[("headers", "{}"), ("body", fixed)]).await.expect("validate");
    assert!(resp.text().await.expect("html").contains("Valid against order.json."));

    // The dry run goes through the route with a recorder for billing: nothing is sent.
    let resp = htmx(&format!("{check}?what=dry-run"), &[("headers", "{}"), ("body", fixed)]).await.expect("dry run");
    let html = unslash(resp.text().await.expect("html"));
    assert!(html.contains("The dry run goes through"), "{html}");
    assert!(html.contains("\"connector\": \"billing\"") && html.contains("PO-7"), "{html}");
    assert_eq!(billing.count(), calls, "a dry run calls no outside system");

    // A viewer may check, not replay.
    let mut ana = Browser::new(&j);
    ana.sign_in("ana", ANA_PASSWORD).await;
    let ana_csrf = ana.csrf.clone().expect("csrf");
    let resp = ana.post(&format!("{check}?what=dry-run"), &[("headers", "{}"), ("body", fixed)], Some(&ana_csrf)).await;
    assert_eq!(resp.status(), 200);
    let resp = ana
        .post(&format!("/console/dead-letters/{first}/replay"), &[("headers", "{}"), ("body", fixed)], Some(&ana_csrf))
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // Billing is back; the edited message is replayed, the original kept beside what was sent.
    billing.answer_always(200);
    let resp = htmx(&format!("/console/dead-letters/{first}/replay"), &[("headers", "{}"), ("body", fixed)])
        .await
        .expect("replay");
    assert!(resp.text().await.expect("html").contains("Replayed: the route finished it."));
    assert!(billing.requests.lock().expect("lock").last().expect("a call").contains("PO-7"));
    let (_, page) = admin.page(&format!("/console/dead-letters/{first}")).await;
    assert!(page.contains("Replayed with an edit") && page.contains("PO-7"), "{page}");
    assert!(page.contains("&quot;qty&quot;: 1"), "the original stays: {page}");

    // The other two in one go, with progress.
    let resp = admin
        .post("/console/dead-letters/replay-all", &[("route", "orders"), ("error", ""), ("within", "")], Some(&csrf))
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let html = resp.text().await.expect("html");
    let job = html.split("/console/jobs/").nth(1).map(|s| s.split('"').next().unwrap_or_default().to_owned());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut progress = html.clone();
    if let Some(job) = job {
        while !progress.contains("Done:") {
            assert!(tokio::time::Instant::now() < deadline, "the bulk replay did not finish: {progress}");
            tokio::time::sleep(Duration::from_millis(200)).await;
            progress = admin.page(&format!("/console/jobs/{job}")).await.1;
        }
    }
    assert!(progress.contains("Done: 2 of 2") && progress.contains("(2 went through, 0 failed again"), "{progress}");
    assert!(waiting(&j).await.is_empty());

    // The admin API replays an edit too.
    billing.answer_always(422);
    let _ = c.post(j.url("/orders")).json(&serde_json::json!({ "qty": 9 })).send().await.expect("order");
    let dead = waiting(&j).await;
    let id = dead[0]["id"].as_str().expect("id").to_owned();
    billing.answer_always(200);
    let resp: Value = c
        .post(j.admin_url(&format!("/admin/dead-letters/{id}/replay")))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "headers": { "x-fixed": "yes" }, "body": { "qty": 9, "po": "PO-9" } }))
        .send()
        .await
        .expect("replay")
        .json()
        .await
        .expect("json");
    assert_eq!(resp["outcome"], "done", "{resp}");
    let all = common::admin_get(&j, TOKEN, "/admin/dead-letters?route=orders&all=true").await;
    let replayed = all["items"].as_array().expect("items").iter().find(|d| d["id"] == id).expect("kept").clone();
    assert_eq!(replayed["replayed_with"]["body"]["po"], "PO-9", "{replayed}");
    assert_eq!(replayed["message"]["body"]["qty"], 9);
    audited(
        &j,
        &[
            ("admin", &format!("POST /console/dead-letters/{first}/replay"), "ok"),
            ("admin", "POST /console/dead-letters/replay-all", "ok"),
            ("ana", &format!("POST /console/dead-letters/{first}/replay"), "denied"),
        ],
    )
    .await;
}

const INTAKE: &str = "route: intake\nprovenance: { key: body.deal_id }\nfrom: { http: { method: POST, path: /intake, auth: none } }\nsteps:\n  - transform: { script: \"body + #{ stage: \\\"checked\\\" }\" }\n  - to: { connector: bus, topic: deals }\n";
const WORKER: &str = "route: worker\nfrom: { bus: { topic: deals } }\nsteps:\n  - transform: { script: \"body + #{ stage: \\\"worked\\\" }\" }\n  - log: \"worked ${body.deal_id}\"\n";
const RECORDED: &str = "route: recorded\nprovenance: { record: true, key: headers.x-order }\nfrom: { http: { method: POST, path: /recorded, auth: none } }\nsteps:\n  - transform: { script: \"#{ order: body.order, total: body.qty * 2, password: body.password }\" }\n";

/// The provenance page for `q`, once `done` holds on it (recording is written in the background).
async fn followed(b: &Browser, q: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, page) = b.page(&format!("/console/provenance?q={q}")).await;
        assert_eq!(status, 200);
        if done(&page) {
            return page;
        }
        assert!(tokio::time::Instant::now() < deadline, "provenance of {q} not as expected: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_followed_through_its_steps_and_the_routes_it_caused() {
    let dir = project(&[
        ("junction.yaml", &config("")),
        ("routes/intake.yaml", INTAKE),
        ("routes/worker.yaml", WORKER),
        ("routes/recorded.yaml", RECORDED),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let c = reqwest::Client::new();
    let mut admin = Browser::new(&j);
    admin.sign_in("", TOKEN).await;
    let csrf = admin.csrf.clone().expect("csrf");

    // A route that records every message: each step's body before and after, redacted.
    let resp = c
        .post(j.url("/recorded"))
        .header("x-order", "O-1")
        .json(&serde_json::json!({ "order": "O-1", "qty": 4, "password": "hunter2" }))
        .send()
        .await
        .expect("recorded");
    assert_eq!(resp.status(), 200);
    let page = followed(&admin, "O-1", |p| p.contains("1 run(s)")).await;
    assert!(page.contains("1:transform</code> ok"), "{page}");
    assert!(page.contains("<span class=\"add\">+  &quot;total&quot;: 8</span>"), "{page}");
    assert!(!page.contains("hunter2") && page.contains("***"), "bodies are redacted: {page}");

    // Other routes record nothing, until a key is watched.
    let _ = c.post(j.url("/intake")).json(&serde_json::json!({ "deal_id": "D-1" })).send().await.expect("intake");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, page) = admin.page("/console/provenance?q=D-1").await;
    assert!(page.contains("Nothing recorded for <code>D-1</code>"), "{page}");
    let resp = admin.post("/console/provenance/watch", &[("key", "D-2"), ("minutes", "5")], Some(&csrf)).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, page) = admin.page("/console/provenance").await;
    assert!(page.contains("<code>D-2</code> until"), "{page}");

    // The watched key's message is followed through its route and over the bus to the next.
    let _ = c.post(j.url("/intake")).json(&serde_json::json!({ "deal_id": "D-2" })).send().await.expect("intake");
    let page = followed(&admin, "D-2", |p| p.contains("2 run(s)")).await;
    let intake = page.find(">intake</a>").expect("the intake run");
    let worker = page.find(">worker</a>").expect("the worker run it caused");
    assert!(intake < worker, "in the order they ran");
    assert!(page.contains("&quot;stage&quot;: &quot;worked&quot;"), "{page}");
    assert!(page.contains("2:log</code> ok"), "{page}");
    let (_, page) = admin.page("/console/provenance?q=D-1").await;
    assert!(page.contains("Nothing recorded for <code>D-1</code>"), "an unwatched key stays unrecorded: {page}");
    audited(&j, &[("admin", "POST /console/provenance/watch", "ok")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_runs_a_transform_and_hands_back_a_route_test() {
    let dir = project(&[
        ("junction.yaml", &config("")),
        (
            "routes/doubler.yaml",
            "route: doubler\nfrom: { http: { method: POST, path: /double, auth: none } }\nsteps:\n  - transform: double.rhai\n",
        ),
        ("transforms/double.rhai", "#{ total: body.qty * 2 }\n"),
        (
            "route-tests/doubler.yaml",
            "route: doubler\ncases:\n  - name: two become four\n    input: { body: { qty: 2 } }\n    expect: { output: [{ total: 4 }] }\n",
        ),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let mut admin = Browser::new(&j);
    admin.sign_in("", TOKEN).await;
    let csrf = admin.csrf.clone().expect("csrf");

    // The project's transforms and its route tests' inputs are offered; one of each loads.
    let (status, page) = admin.page("/console/playground?transform=double.rhai&fixture=doubler.yaml%230").await;
    assert_eq!(status, 200);
    assert!(page.contains("<option selected>double.rhai</option>"), "{page}");
    assert!(page.contains("doubler.yaml: two become four"), "{page}");
    assert!(page.contains("#{ total: body.qty * 2 }") && page.contains("&quot;qty&quot;: 2"), "{page}");

    // Run: the output, or the error at its line and column.
    let page = "/console/playground/run";
    let fields = |script: &'static str| [("script", script), ("body", "{\"qty\": 2}"), ("route", "doubler")];
    let html = admin.post(page, &fields("#{ total: body.qty * 2 }"), Some(&csrf)).await.text().await.expect("html");
    assert!(html.contains("&quot;total&quot;: 4"), "{html}");
    let html = admin.post(page, &fields("let x = 1;\nbody.qty +* 2"), Some(&csrf)).await.text().await.expect("html");
    assert!(html.contains("playground.rhai:2:"), "the error says where: {html}");

    // The pair comes back as a route test that `junction test` passes.
    let resp = admin
        .post(
            "/console/playground/fixture",
            &[("route", "doubler"), ("body", "{\"qty\": 5}"), ("output", "{\"total\": 10}")],
            Some(&csrf),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-disposition"].to_str().expect("ascii").starts_with("attachment;"));
    let yaml = resp.text().await.expect("yaml");
    std::fs::write(dir.path().join("route-tests/from-playground.yaml"), &yaml).expect("save");
    let (code, out, err) = common::junction(&["test", dir.path().to_str().expect("utf-8")], &[]);
    assert_eq!(code, 0, "{yaml}\n{out}\n{err}");
    assert!(out.contains("from the playground"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_sharing_the_store_is_shown_and_summed() {
    let db = common::PgDatabase::create().await;
    let dir = project(&[("junction.yaml", &config("")), ("routes/ping.yaml", PING)]);
    let env = [("JUNCTION_STORE", db.url.as_str()), ("MASTERDEAL_DATABASE", db.url.as_str())];
    let (a, b) = (Junction::start(dir.path(), &env), Junction::start(dir.path(), &env));
    let c = reqwest::Client::new();
    for (j, n) in [(&a, 3), (&b, 2)] {
        for _ in 0..n {
            let status = c.post(j.url("/ping")).json(&serde_json::json!({})).send().await.expect("ping").status();
            assert_eq!(status, 200);
        }
    }
    // A's console shows both instances and the route's count summed over them.
    let mut admin = Browser::new(&a);
    admin.sign_in("", TOKEN).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, page) = admin.page("/console/routes/ping").await;
        if page.contains("data-all-received>5<") {
            let (_, overview) = admin.page("/console/overview").await;
            assert_eq!(overview.matches("<tr><td><code>").count(), 2, "two instances: {overview}");
            assert!(overview.contains("<small>(this one)</small>"), "{overview}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the two instances' counts were not summed: {page}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
