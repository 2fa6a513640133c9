//! The README's first route, exactly as written there, works.

mod common;

use common::{Junction, junction, project, sqlite_store};

const ROUTE: &str = "route: greet\nfrom:\n  http: { method: POST, path: /greet, auth: none }\nsteps:\n  - filter: body.name != \"\"\n  - transform: greet.rhai\n  - log: \"greeted ${body.to}\"\n";
const SCRIPT: &str = "#{ to: body.name, text: `Hello, ${body.name}!`, at: now() }\n";

#[tokio::test]
async fn the_first_route_in_five_minutes() {
    let readme = std::fs::read_to_string(common::root().join("README.md")).expect("README");
    assert!(readme.contains(ROUTE), "the README's route changed; update this test with it");
    assert!(readme.contains(SCRIPT.trim_end()), "the README's script changed; update this test with it");

    let dir = project(&[
        ("junction.yaml", "listen: 127.0.0.1:8080\nroutes: [routes/]\n"),
        ("routes/greet.yaml", ROUTE),
        ("transforms/greet.rhai", SCRIPT),
    ]);
    let path = dir.path().to_str().expect("utf-8");
    let (code, out, _) = junction(&["check", path], &[]);
    assert_eq!((code, out.trim()), (0, "ok: 1 route, 2 connectors"));

    std::fs::write(dir.path().join("junction.yaml"), "routes: [routes/]\n").expect("free port for the test");
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let resp = reqwest::Client::new()
        .post(j.url("/greet"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"name": "Ada"}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["text"], "Hello, Ada!");
    assert_eq!(body["to"], "Ada");

    std::fs::write(dir.path().join("routes/greet.yaml"), ROUTE.replace("  - transform:", "  - transfrom:"))
        .expect("write");
    let (code, _, err) = junction(&["check", path], &[]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("routes/greet.yaml:6:5: unknown variant `transfrom`, expected one of `transform`, `validate`,"),
        "{err}"
    );
    assert!(err.contains("(did you mean `transform`?)\n1 error found"), "{err}");
}

/// The README's signed webhook call, run by a shell as written there (against a test port).
#[tokio::test]
async fn the_signed_webhook_curl_lines_work() {
    let readme = std::fs::read_to_string(common::root().join("README.md")).expect("README");
    let start = readme.find("ts=$(date +%s)").expect("the README signs the webhook call");
    let end = start + readme[start..].find("# → 202").expect("the webhook call ends with its answer");
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(&common::root(), &[("JUNCTION_STORE", &store)]);
    let script = readme[start..end]
        .replace("localhost:8080", &j.addr)
        .replace("curl -s", "curl -s -o /dev/null -w '%{http_code}'");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(common::root())
        .output()
        .expect("bash runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "202", "{}", String::from_utf8_lossy(&out.stderr));

    // The route runs from the queue and stores the master deal: the README's next line lists it.
    let list = readme[end..].lines().find(|l| l.contains("/api/v1/deals")).expect("the README lists the stored deal");
    let key = list.split("x-api-key: ").nth(1).and_then(|k| k.split('\'').next()).expect("the line's API key");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let page: serde_json::Value = reqwest::Client::new()
            .get(j.url("/api/v1/deals"))
            .header("x-api-key", key)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        let stored: Vec<_> =
            page["items"].as_array().into_iter().flatten().filter(|d| d["crm_id"] == "D-100245").collect();
        if let Some(deal) = stored.first() {
            assert_eq!(
                (deal["status"].as_str(), deal["budget"].as_str()),
                (Some("signed"), Some("1250000.5")),
                "{deal}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the webhook's deal was not stored: {page}\n{}", j.logs());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The walk of the README's section `heading` (its code block from `api=…` on), run by a shell
/// as written there against `j`: every `# → …` line is what the command above it prints, and
/// the whole walk ends within five minutes.
fn walk_prints_what_the_readme_says(heading: &str, j: &Junction) {
    let readme = std::fs::read_to_string(common::root().join("README.md")).expect("README");
    let section = &readme[readme.find(heading).unwrap_or_else(|| panic!("the README has {heading}"))..];
    let start = section.find("api=localhost:8080/api/v1").expect("the walk's first line");
    let end = start + section[start..].find("```").expect("the walk ends its code block");
    let script = &section[start..end];
    let expected: Vec<&str> = script.lines().filter_map(|l| l.strip_prefix("# → ")).collect();
    assert!(expected.len() >= 10, "the walk shows its answers: {expected:?}");
    let out = std::process::Command::new("timeout")
        .args(["300", "bash", "-euo", "pipefail", "-c"])
        .arg(script.replace("localhost:8080", &j.addr))
        .current_dir(common::root())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let printed: Vec<&str> = stdout.lines().collect();
    assert_eq!(printed, expected, "stderr: {}\n{}", String::from_utf8_lossy(&out.stderr), j.logs());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The README's MasterDeal API walk, against the project's own junction.yaml.
#[tokio::test]
async fn the_masterdeal_api_walk_prints_what_the_readme_says() {
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(&common::root(), &[("JUNCTION_STORE", &store)]);
    walk_prints_what_the_readme_says("## The MasterDeal API", &j);
}

/// #18 §4: the README's "a deal's life" walk, against the demo (`junction run .` with its
/// simulators). The payment and the statistics wait for the project's minute polls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deals_life_walks_as_the_readme_says() {
    let _ports = common::demo_ports();
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(&common::root(), &[("JUNCTION_STORE", &store), ("JUNCTION_SIMULATORS", "on")]);
    j.wait_for_log("ClickHouse simulator on", std::time::Duration::from_secs(10));
    walk_prints_what_the_readme_says("## A deal's life", &j);
}
