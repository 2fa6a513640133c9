//! The admin console in a real browser: headless Chromium through WebDriver (Debian's
//! `chromium` and `chromium-driver`; scripts/test installs them). Signs in (after a throttled
//! wrong password), watches a route's counters move under load without reloading the page,
//! pauses and resumes it, opens a dead letter, edits, dry-runs and replays it, follows a
//! message's provenance, runs the Rhai playground, sees the topology drawn, sees the second
//! of two conflicting reloads refused, and runs axe-core on every page. The screenshots it
//! takes go to target/console-screenshots (`JUNCTION_SCREENSHOTS=docs/console` refreshes the
//! README's).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Junction, project, sqlite_store};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const TOKEN: &str = "browser-test-admin-token";
const PING: &str = "route: ping\ndescription: Answers with its version.\nprovenance: { record: true, key: body.n }\nfrom: { http: { method: POST, path: /ping, auth: none } }\nsteps:\n  - transform: { script: \"#{ v: 1 }\" }\n";
/// Calls a system that is down (nothing listens on the discard port): dead-lettered at once.
const FAILS: &str = "route: fails\nfrom: { http: { method: POST, path: /fails, auth: none } }\nsteps:\n  - request: { connector: billing, method: POST, path: /invoices }\non_error:\n  retry: { attempts: 1 }\n";
const BILLING: &str = "connectors:\n  billing: { kind: http, base_url: \"http://127.0.0.1:9\", timeout: 2s }\n";

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_program(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!("{name} is required by the console's browser tests: apt-get install chromium chromium-driver (scripts/test installs them)")
        })
}

fn start_driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    let child = Command::new(find_program("chromedriver"))
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen on {port} within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver { child, url: format!("http://127.0.0.1:{port}") }
}

async fn browser(driver: &Driver) -> Client {
    browser_with(driver, &[]).await
}

/// A session whose Chromium also gets `extra` switches (`--force-dark-mode`: the system asks
/// for dark pages).
async fn browser_with(driver: &Driver, extra: &[&str]) -> Client {
    let mut args =
        vec!["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"];
    args.extend_from_slice(extra);
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), json!({ "binary": find_program("chromium"), "args": args }));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector).capabilities(caps).connect(&driver.url).await.expect("a WebDriver session")
}

/// Polls the page until `check` holds on its text (the DOM as htmx left it), or panics.
async fn until(b: &Client, what: &str, within: Duration, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    loop {
        // Read in one script call, so a navigation in between cannot leave a stale element.
        let text = b
            .execute("return document.body ? document.body.innerText : '';", vec![])
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        if check(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what} did not happen within {within:?}; the page says:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(b: &Client, css: &str, text: &str) {
    let field = b.find(Locator::Css(css)).await.expect(css);
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

/// Submits a plain form with the button `css` and waits for the page it leads to.
async fn submit(b: &Client, css: &str) {
    b.execute("document.body.dataset.old = 'yes';", vec![]).await.expect("mark the page");
    click(b, css).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let old = b
            .execute(
                "return document.readyState === 'complete' && document.body && document.body.dataset.old !== 'yes';",
                vec![],
            )
            .await;
        if matches!(old, Ok(Value::Bool(true))) {
            return;
        }
        assert!(Instant::now() < deadline, "no new page came after submitting {css}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clicks `css`, again if the live stream replaced the element between finding and clicking.
async fn click(b: &Client, css: &str) {
    for _ in 0..10 {
        let element = b.wait().for_element(Locator::Css(css)).await.expect(css);
        match element.click().await {
            Ok(()) => return,
            Err(e) if e.to_string().contains("stale element") => continue,
            Err(e) => panic!("click {css}: {e}"),
        }
    }
    panic!("{css} kept being replaced before it could be clicked");
}

/// Runs axe-core on the page; panics on any serious or critical violation.
async fn axe(b: &Client, page: &str) {
    let source = std::fs::read_to_string(common::root().join("tests/console/axe.min.js")).expect("axe.min.js");
    b.execute(&format!("{source}\nreturn typeof axe;"), vec![]).await.expect("axe loads");
    let result = b
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] })
                .then(r => done(r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.html).slice(0, 3) }))))
                .catch(e => done([{ id: 'axe-error', impact: 'critical', help: String(e), nodes: [] }]));",
            vec![],
        )
        .await
        .expect("axe runs");
    let bad: Vec<&Value> = result
        .as_array()
        .expect("violations")
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .collect();
    assert!(bad.is_empty(), "axe-core on the {page} page: {bad:#?}");
}

/// A route's row on the overview as the page shows it now: route, source, state, rate, errors, …
async fn cells(b: &Client, id: &str) -> Vec<String> {
    let script = format!(
        "const a = document.querySelector('a[href=\"/console/routes/{id}\"]'); return a ? Array.from(a.closest('tr').cells).map(c => c.innerText.trim()) : [];"
    );
    let v = b.execute(&script, vec![]).await.expect("cells");
    v.as_array().map(|a| a.iter().map(|c| c.as_str().unwrap_or("").to_owned()).collect()).unwrap_or_default()
}

async fn screenshot(b: &Client, name: &str) {
    let dir = std::env::var_os("JUNCTION_SCREENSHOTS")
        .map_or_else(|| common::root().join("target/console-screenshots"), PathBuf::from);
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    let png = b.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

async fn state(j: &Junction, id: &str) -> String {
    common::admin_get(j, TOKEN, &format!("/admin/routes/{id}")).await["state"].as_str().expect("state").to_owned()
}

fn put(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_works_the_console_in_a_browser() {
    let users = format!(
        "  users:\n    - {{ name: ana, password_hash: \"{}\", role: viewer }}\n",
        common::hash_password("ana's long password")
    );
    let config = format!(
        "routes: [routes/]\nreload: {{ watch: false }}\n{BILLING}admin:\n  listen: 127.0.0.1:9090\n  token: {TOKEN}\n{users}"
    );
    let dir = project(&[("junction.yaml", &config), ("routes/ping.yaml", PING), ("routes/fails.yaml", FAILS)]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let driver = start_driver();
    let b = browser(&driver).await;
    let console = j.admin_url("/console");
    let http = reqwest::Client::new();

    // A page asked for signed out leads to the sign-in; five wrong passwords throttle the name.
    b.goto(&format!("{console}/overview")).await.expect("goto");
    until(&b, "the sign-in page", Duration::from_secs(10), |t| t.contains("Password or admin token")).await;
    axe(&b, "sign-in").await;
    for _ in 0..5 {
        fill(&b, "#user", "ana").await;
        fill(&b, "#password", "not her password").await;
        submit(&b, "button[type=submit]").await;
        until(&b, "the refusal", Duration::from_secs(10), |t| t.contains("Wrong name, password or token.")).await;
    }
    fill(&b, "#user", "ana").await;
    fill(&b, "#password", "ana's long password").await;
    submit(&b, "button[type=submit]").await;
    until(&b, "the throttle", Duration::from_secs(10), |t| t.contains("Too many failed sign-ins")).await;

    // The admin token signs in and lands where the admin was going.
    fill(&b, "#user", "").await;
    fill(&b, "#password", TOKEN).await;
    submit(&b, "button[type=submit]").await;
    until(&b, "the overview", Duration::from_secs(10), |t| t.contains("Overview") && t.contains("ping")).await;
    assert!(b.current_url().await.expect("url").path().ends_with("/console/overview"));

    // Under load the overview's rate for `ping` moves without a reload of the page.
    let load = tokio::spawn({
        let (http, url) = (http.clone(), j.url("/ping"));
        async move {
            for n in 0..200 {
                let _ = http.post(&url).json(&json!({ "n": n })).send().await;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    });
    let _ = http.post(j.url("/fails")).json(&json!({ "n": 7 })).send().await;
    b.execute("document.body.dataset.marker = 'same page';", vec![]).await.expect("mark the page");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ping, fails) = (cells(&b, "ping").await, cells(&b, "fails").await);
        if ping.get(3).is_some_and(|rate| rate != "0.0") && fails.get(4).is_some_and(|errors| errors == "1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the overview did not show ping's rate and fails' error: {ping:?} {fails:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let marker = b.execute("return document.body.dataset.marker;", vec![]).await.expect("marker");
    assert_eq!(marker, "same page", "the numbers came over the event stream, not a reload");
    axe(&b, "overview").await;
    screenshot(&b, "overview").await;

    // The route page: its counter rises live; pause and resume from the button.
    b.goto(&format!("{console}/routes/ping")).await.expect("goto");
    // Read in one script call: the live fragment is replaced under any element handle.
    let counter = || async {
        let v = b.execute("return document.querySelector('[data-counter=received]').innerText;", vec![]).await;
        v.expect("counter").as_str().expect("text").to_owned()
    };
    let first: u64 = counter().await.parse().expect("a count");
    let deadline = Instant::now() + Duration::from_secs(20);
    while counter().await.parse::<u64>().expect("a count") <= first {
        assert!(Instant::now() < deadline, "the received counter did not move on the route page");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    load.await.expect("load");
    axe(&b, "route").await;
    click(&b, "#pause-toggle").await;
    until(&b, "the paused state", Duration::from_secs(10), |t| t.contains("State: paused")).await;
    assert_eq!(state(&j, "ping").await, "paused");
    click(&b, "#pause-toggle").await;
    until(&b, "the running state", Duration::from_secs(10), |t| t.contains("State: running")).await;
    assert_eq!(state(&j, "ping").await, "running");

    // The dead letter: found by its error, opened, replayed.
    b.goto(&format!("{console}/dead-letters")).await.expect("goto");
    fill(&b, "#f-error", "Connection refused").await;
    submit(&b, ".filters button[type=submit]").await;
    until(&b, "the filtered list", Duration::from_secs(10), |t| t.contains("POST billing: error sending request"))
        .await;
    axe(&b, "dead letters").await;
    screenshot(&b, "dead-letters").await;
    submit(&b, "table.dead-letters a").await;
    until(&b, "the dead letter", Duration::from_secs(10), |t| t.contains("Edit, check and replay")).await;
    let body = b.execute("return document.querySelector('#e-body').value;", vec![]).await.expect("the body field");
    assert!(body.as_str().is_some_and(|v| v.contains("\"n\": 7")), "the body to edit: {body}");
    axe(&b, "dead letter").await;
    // Edited, dry-run (billing is a recorder then), replayed (billing is still down).
    fill(&b, "#e-body", "{\"n\": 8}").await;
    click(&b, "#dry-run").await;
    until(&b, "the dry run", Duration::from_secs(10), |t| t.contains("The dry run goes through")).await;
    axe(&b, "dead letter with a dry run").await;
    click(&b, "#replay").await;
    until(&b, "the replay's outcome", Duration::from_secs(10), |t| t.contains("it failed again")).await;

    // Two conflicting reloads: the page shows one version; another change lands; applying the
    // version shown is refused and the new one is shown instead.
    put(dir.path(), "routes/ping.yaml", &PING.replace("v: 1", "v: 2"));
    b.goto(&format!("{console}/reload")).await.expect("goto");
    until(&b, "the dry run", Duration::from_secs(10), |t| t.contains("routes/ping.yaml changed")).await;
    axe(&b, "reload").await;
    screenshot(&b, "reload").await;
    put(dir.path(), "routes/ping.yaml", &PING.replace("v: 1", "v: 3"));
    click(&b, "#apply-reload").await;
    until(&b, "the conflict", Duration::from_secs(10), |t| t.contains("files changed since the dry run")).await;
    let v: Value = http.post(j.url("/ping")).json(&json!({})).send().await.expect("ping").json().await.expect("json");
    assert_eq!(v["v"], 1, "the refused reload changed nothing");
    click(&b, "#apply-reload").await;
    until(&b, "the reload", Duration::from_secs(10), |t| t.contains("Reloaded version")).await;
    let v: Value = http.post(j.url("/ping")).json(&json!({})).send().await.expect("ping").json().await.expect("json");
    assert_eq!(v["v"], 3);

    // Provenance: the recorded run of ping's message 5, its step opened.
    b.goto(&format!("{console}/provenance?q=5")).await.expect("goto");
    until(&b, "the run of message 5", Duration::from_secs(10), |t| {
        t.contains("1 run(s)") && t.contains("1:transform ok")
    })
    .await;
    click(&b, ".trail summary").await;
    until(&b, "the step's diff", Duration::from_secs(10), |t| t.contains("Body, before → after")).await;
    axe(&b, "provenance").await;
    screenshot(&b, "provenance").await;

    // The Rhai playground: a script on a sample body.
    b.goto(&format!("{console}/playground")).await.expect("goto");
    fill(&b, "#pg-script", "#{ doubled: body.n * 2 }").await;
    fill(&b, "#pg-body", "{\"n\": 21}").await;
    click(&b, "#run").await;
    until(&b, "the playground's output", Duration::from_secs(10), |t| t.contains("\"doubled\": 42")).await;
    axe(&b, "playground").await;

    // The topology: Mermaid draws the running routes.
    b.goto(&format!("{console}/topology")).await.expect("goto");
    b.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#topology svg"))
        .await
        .expect("the flowchart is drawn");
    let svg = b.find(Locator::Css("#topology svg")).await.expect("svg").html(false).await.expect("html");
    assert!(svg.contains("ping") && svg.contains("fails"), "both routes are drawn");
    axe(&b, "topology").await;

    b.goto(&format!("{console}/audit")).await.expect("goto");
    until(&b, "the audit", Duration::from_secs(10), |t| t.contains("POST /console/reload")).await;
    axe(&b, "audit").await;

    b.close().await.expect("close the session");
}

/// Presses `key` where the focus is.
async fn press(b: &Client, key: fantoccini::key::Key) {
    b.active_element().await.expect("a focused element").send_keys(&key).await.expect("a key press");
}

/// What has the focus: its id, class and text.
async fn focused(b: &Client) -> String {
    let v = b
        .execute("const e = document.activeElement; return `${e.id}|${e.className}|${e.innerText || ''}`;", vec![])
        .await
        .expect("the focused element");
    v.as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_by_keyboard_and_in_the_dark() {
    use fantoccini::key::Key;
    let config = format!(
        "routes: [routes/]\nreload: {{ watch: false }}\n{BILLING}admin:\n  listen: 127.0.0.1:9090\n  token: {TOKEN}\n"
    );
    let dir = project(&[("junction.yaml", &config), ("routes/ping.yaml", PING), ("routes/fails.yaml", FAILS)]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let driver = start_driver();
    let b = browser_with(&driver, &["--force-dark-mode"]).await;
    let console = j.admin_url("/console");

    // Signing in with the keyboard alone: the skip link first, then the fields, Enter submits.
    b.goto(&format!("{console}/login")).await.expect("goto");
    until(&b, "the sign-in page", Duration::from_secs(10), |t| t.contains("Password or admin token")).await;
    press(&b, Key::Tab).await;
    assert!(focused(&b).await.contains("|skip|"), "the skip link comes first: {}", focused(&b).await);
    press(&b, Key::Tab).await;
    assert!(focused(&b).await.starts_with("user|"), "then the name: {}", focused(&b).await);
    press(&b, Key::Tab).await;
    assert!(focused(&b).await.starts_with("password|"), "then the password: {}", focused(&b).await);
    b.active_element().await.expect("focus").send_keys(&(TOKEN.to_owned() + &Key::Enter)).await.expect("type");
    until(&b, "the overview", Duration::from_secs(10), |t| t.contains("Overview") && t.contains("ping")).await;

    // The navigation is reached by Tab and followed by Enter.
    let mut found = false;
    for _ in 0..20 {
        press(&b, Key::Tab).await;
        if focused(&b).await.ends_with("|Dead letters") {
            found = true;
            break;
        }
    }
    assert!(found, "Tab reaches the navigation's Dead letters link");
    press(&b, Key::Enter).await;
    until(&b, "the dead letters page", Duration::from_secs(10), |t| t.contains("Error contains")).await;
    assert!(b.current_url().await.expect("url").path().ends_with("/console/dead-letters"));
    // The skip link takes the focus past the navigation, to the page's content.
    press(&b, Key::Tab).await;
    assert!(focused(&b).await.contains("|skip|"), "{}", focused(&b).await);
    press(&b, Key::Enter).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !focused(&b).await.starts_with("main|") {
        assert!(
            Instant::now() < deadline,
            "the skip link did not move the focus to the content: {}",
            focused(&b).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The system asks for dark: the console is dark, and still passes axe-core (contrast too).
    b.goto(&format!("{console}/overview")).await.expect("goto");
    until(&b, "the overview", Duration::from_secs(10), |t| t.contains("Overview")).await;
    let background = b.execute("return getComputedStyle(document.body).backgroundColor;", vec![]).await.expect("style");
    assert_eq!(background, "rgb(13, 17, 23)", "the dark theme's background");
    axe(&b, "overview, dark").await;
    b.goto(&format!("{console}/routes/ping")).await.expect("goto");
    until(&b, "the route page", Duration::from_secs(10), |t| t.contains("Definition")).await;
    axe(&b, "route, dark").await;
    screenshot(&b, "route-dark").await;
    b.close().await.expect("close the session");
}
