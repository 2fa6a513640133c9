//! The admin console over plain HTTP: sign-in with the token and with a password, the session
//! cookie, throttled failures, roles, CSRF, the audit of who did what, the live event stream,
//! dead letters, and a reload that refuses to apply a version it did not show.
//! (The same pages driven in a real browser: tests/console_browser.rs.)

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BIN, Junction, project, sqlite_store};
use reqwest::StatusCode;
use serde_json::Value;

const TOKEN: &str = "console-test-admin-token";
const ANA_PASSWORD: &str = "ana's long password";

const PING: &str = "route: ping\nfrom: { http: { method: POST, path: /ping, auth: none } }\nsteps:\n  - transform: { script: \"#{ v: 1 }\" }\n";
/// Calls a system that is down (nothing listens on the discard port): dead-lettered at once.
const FAILS: &str = "route: fails\nfrom: { http: { method: POST, path: /fails, auth: none } }\nsteps:\n  - request: { connector: billing, method: POST, path: /invoices }\non_error:\n  retry: { attempts: 1 }\n";
const BILLING: &str = "connectors:\n  billing: { kind: http, base_url: \"http://127.0.0.1:9\", timeout: 2s }\n";

/// The argon2id hash `junction hash-password` prints for `password` (read from stdin).
fn hash_password(password: &str) -> String {
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("junction hash-password runs");
    child.stdin.take().expect("stdin").write_all(format!("{password}\n").as_bytes()).expect("write");
    let out = child.wait_with_output().expect("output");
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).expect("utf-8").trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    hash
}

fn config(extra: &str) -> String {
    format!(
        "routes: [routes/]\nreload: {{ watch: false }}\n{BILLING}admin:\n  listen: 127.0.0.1:9090\n  token: {TOKEN}\n  users:\n    - {{ name: ana, password_hash: \"{}\", role: viewer }}\n{extra}",
        hash_password(ANA_PASSWORD)
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
    let c = reqwest::Client::new();
    let audit: Value = c
        .get(j.admin_url("/admin/audit?limit=200"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    audit["items"].as_array().expect("items").clone()
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
    let c = reqwest::Client::new();
    let r: Value = c
        .get(j.admin_url(&format!("/admin/routes/{id}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("route")
        .json()
        .await
        .expect("json");
    r["state"].as_str().expect("state").to_owned()
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
