//! Hot reload under load: requests and bus messages flow without pause while the project
//! changes 20 times (routes added, removed, modified, one invalid change) — no request
//! fails, no bus message is lost, and each change is served within a second. Plus the
//! admin API around it: dry runs, pause and resume, the audit of admin calls.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Junction, project, sqlite_store};
use serde_json::Value;

const TOKEN: &str = "reload-test-admin-token";

fn root_config() -> String {
    format!("routes: [routes/]\nadmin: {{ listen: 127.0.0.1:9090, token: {TOKEN} }}\n")
}

fn ping(version: u32) -> String {
    format!(
        "route: ping\nfrom: {{ http: {{ method: POST, path: /ping, auth: none }} }}\nsteps:\n  - transform: {{ script: \"#{{ v: {version} }}\" }}\n"
    )
}

fn sink(generation: u32) -> String {
    format!(
        "# generation {generation}\nroute: sink\nfrom: {{ bus: {{ topic: events }} }}\nsteps:\n  - log: \"got ${{body.n}}\"\n"
    )
}

const FEED: &str = "route: feed\nfrom: { http: { method: POST, path: /feed, auth: none, async: true } }\nsteps:\n  - to: { connector: bus, topic: events }\n";

fn extra(n: u32) -> String {
    format!(
        "route: extra-{n}\nfrom: {{ http: {{ method: GET, path: /extra-{n}, auth: none }} }}\nsteps:\n  - transform: {{ script: \"#{{ extra: {n} }}\" }}\n"
    )
}

/// Writes whole files at once (write + rename), as editors and deploy tools do.
fn put(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    let tmp = dir.join(format!(".{}.tmp", file.replace('/', "_")));
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
}

/// Polls `check` until it holds; returns how long that took, or panics after `within`.
async fn served_within(within: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < within {
        if check().await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} was not served within {within:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_changes_under_load_lose_and_fail_nothing() {
    let dir = project(&[
        ("junction.yaml", &root_config()),
        ("routes/ping.yaml", &ping(0)),
        ("routes/feed.yaml", FEED),
        ("routes/sink.yaml", &sink(0)),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let c = reqwest::Client::new();

    // The load: four loops on the request/reply route, one feeding the bus through an async route.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, requests) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (c, url, stop, requests, failures) =
            (c.clone(), j.url("/ping"), stop.clone(), requests.clone(), failures.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match c.post(&url).body("{}").send().await {
                    Ok(r) if r.status() == 200 => {}
                    Ok(r) => {
                        let status = r.status();
                        let body = r.text().await.unwrap_or_default();
                        failures.lock().expect("lock").push(format!("ping: {status} {body}"));
                    }
                    Err(e) => failures.lock().expect("lock").push(format!("ping: {e}")),
                }
                requests.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    {
        let (c, url, stop, sent, failures) = (c.clone(), j.url("/feed"), stop.clone(), sent.clone(), failures.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = sent.load(Ordering::Relaxed) + 1;
                match c.post(&url).body(format!("{{\"n\": {n}}}")).send().await {
                    Ok(r) if r.status() == 202 => sent.store(n, Ordering::Relaxed),
                    Ok(r) => failures.lock().expect("lock").push(format!("feed: {}", r.status())),
                    Err(e) => failures.lock().expect("lock").push(format!("feed: {e}")),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }

    let d = dir.path();
    let mut slowest = Duration::ZERO;
    for change in 1..=20u32 {
        match change % 5 {
            // A route modified: its new answer within a second.
            1 | 3 => {
                put(d, "routes/ping.yaml", &ping(change));
                let url = j.url("/ping");
                let took = served_within(Duration::from_secs(1), &format!("ping v{change}"), async || {
                    let Ok(r) = c.post(&url).body("{}").send().await else { return false };
                    r.json::<Value>().await.ok().and_then(|v| v["v"].as_u64()) == Some(u64::from(change))
                })
                .await;
                slowest = slowest.max(took);
            }
            // A route added, then (next round) removed.
            2 => {
                put(d, &format!("routes/extra-{change}.yaml"), &extra(change));
                let url = j.url(&format!("/extra-{change}"));
                let took = served_within(
                    Duration::from_secs(1),
                    &format!("extra-{change}"),
                    async || matches!(c.get(&url).send().await, Ok(r) if r.status() == 200),
                )
                .await;
                slowest = slowest.max(took);
            }
            4 => {
                std::fs::remove_file(d.join(format!("routes/extra-{}.yaml", change - 2))).expect("remove");
                let url = j.url(&format!("/extra-{}", change - 2));
                let took = served_within(
                    Duration::from_secs(1),
                    "a removed route's 404",
                    async || matches!(c.get(&url).send().await, Ok(r) if r.status() == 404),
                )
                .await;
                slowest = slowest.max(took);
            }
            // The bus consumer modified (it restarts on its committed offset), and once, an
            // invalid change that must not replace the running routes.
            _ => {
                if change == 10 {
                    put(
                        d,
                        "routes/sink.yaml",
                        "route: sink\nfrom: { bus: { topic: events } }\nsteps:\n  - lgo: oops\n",
                    );
                    j.wait_for_log("reload refused", Duration::from_secs(2));
                }
                put(d, "routes/sink.yaml", &sink(change));
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.expect("load loop");
    }

    let failures = failures.lock().expect("lock").clone();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        requests.load(Ordering::Relaxed),
        &failures[..failures.len().min(10)]
    );
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent > 50 && requests.load(Ordering::Relaxed) > 200, "too little load to mean anything");
    // Every bus message arrives (at least once), across the consumer's restarts.
    let start = Instant::now();
    loop {
        let logs = j.logs();
        let got: BTreeSet<u64> = logs
            .lines()
            .filter_map(|l| l.split("\"message\":\"got ").nth(1)?.split('"').next()?.parse().ok())
            .collect();
        let missing: Vec<u64> = (1..=sent).filter(|n| !got.contains(n)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{} of {sent} bus messages never arrived: {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(slowest < Duration::from_secs(1), "slowest change took {slowest:?}");
    eprintln!(
        "reload under load: {} requests, {sent} bus messages, slowest change served after {slowest:?}",
        requests.load(Ordering::Relaxed)
    );

    // The reloads are counted.
    let metrics = c.get(j.admin_url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("junction_reloads_total{outcome=\"failed\"} 1"), "{metrics}");
    assert!(metrics.contains("junction_reloads_total{outcome=\"ok\"}"), "{metrics}");
    assert!(metrics.contains("junction_gateway_requests_total{route=\"ping\",status=\"200\"}"), "{metrics}");
    assert!(metrics.contains("junction_route_messages_completed_total{route=\"sink\"}"), "{metrics}");
    assert!(metrics.contains("junction_step_duration_seconds_bucket{route=\"ping\",step=\"1:transform\""), "{metrics}");
}

#[tokio::test]
async fn the_admin_api_reloads_pauses_and_audits() {
    let dir = project(&[
        ("junction.yaml", &format!("{}reload: {{ watch: false }}\n", root_config())),
        ("routes/ping.yaml", &ping(1)),
        ("routes/sink.yaml", &sink(1)),
    ]);
    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let c = reqwest::Client::new();
    let admin = |method: reqwest::Method, path: &str| c.request(method, j.admin_url(path)).bearer_auth(TOKEN);

    // Open probes; everything else wants the token.
    assert_eq!(c.get(j.admin_url("/healthz")).send().await.expect("healthz").status(), 200);
    let ready: Value = c.get(j.admin_url("/readyz")).send().await.expect("readyz").json().await.expect("json");
    assert_eq!(ready["status"], "ready", "{ready}");
    let resp = c.get(j.admin_url("/admin/routes")).send().await.expect("routes");
    assert_eq!(resp.status(), 401);
    assert_eq!(
        c.get(j.admin_url("/admin/routes")).bearer_auth("wrong-token-0000").send().await.expect("x").status(),
        401
    );

    let routes: Value =
        admin(reqwest::Method::GET, "/admin/routes").send().await.expect("routes").json().await.expect("json");
    assert_eq!(routes[0]["id"], "ping");
    assert_eq!(routes[0]["state"], "running");

    // A dry run shows the diff and changes nothing; a reload applies it.
    put(dir.path(), "routes/ping.yaml", &ping(2));
    put(dir.path(), "routes/extra.yaml", &extra(7));
    let dry: Value = admin(reqwest::Method::POST, "/admin/reload?dry_run=true")
        .send()
        .await
        .expect("dry")
        .json()
        .await
        .expect("json");
    assert_eq!((dry["changed"][0].as_str(), dry["added"][0].as_str()), (Some("ping"), Some("extra-7")), "{dry}");
    let v: Value = c.post(j.url("/ping")).body("{}").send().await.expect("ping").json().await.expect("json");
    assert_eq!(v["v"], 1, "a dry run must not apply");
    let done: Value =
        admin(reqwest::Method::POST, "/admin/reload").send().await.expect("reload").json().await.expect("json");
    assert_eq!(done["dry_run"], false, "{done}");
    let v: Value = c.post(j.url("/ping")).body("{}").send().await.expect("ping").json().await.expect("json");
    assert_eq!(v["v"], 2);
    assert_eq!(done["unchanged"], 1, "{done}");
    // The unchanged bus consumer kept running: it was started once, the changed route twice.
    let started =
        |route: &str| j.logs().matches(&format!("\"message\":\"route started\",\"route\":\"{route}\"")).count();
    // The log is read from the process's stderr as it comes: give the last lines a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    while started("ping") < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!((started("sink"), started("ping"), started("extra-7")), (1, 2, 1), "{}", j.logs());

    // An invalid project is refused with its errors, and the routes keep serving.
    put(dir.path(), "routes/ping.yaml", "route: ping\nfrom: { http: { method: POST, path: /ping } }\n");
    let resp = admin(reqwest::Method::POST, "/admin/reload").send().await.expect("reload");
    assert_eq!(resp.status(), 422);
    let p: Value = resp.json().await.expect("json");
    assert!(p["errors"][0].as_str().unwrap_or_default().contains("routes/ping.yaml:2:"), "{p}");
    assert_eq!(c.post(j.url("/ping")).body("{}").send().await.expect("ping").status(), 200);

    // SIGHUP reloads too (the files are not watched here).
    put(dir.path(), "routes/ping.yaml", &ping(3));
    j.signal("HUP");
    let url = j.url("/ping");
    served_within(Duration::from_secs(2), "ping v3 after SIGHUP", async || {
        let Ok(r) = c.post(&url).body("{}").send().await else { return false };
        r.json::<Value>().await.ok().and_then(|v| v["v"].as_u64()) == Some(3)
    })
    .await;

    // Pause: 503 with Retry-After; resume: served again.
    let paused: Value = admin(reqwest::Method::POST, "/admin/routes/ping/pause")
        .send()
        .await
        .expect("pause")
        .json()
        .await
        .expect("json");
    assert_eq!(paused["state"], "paused");
    let resp = c.post(j.url("/ping")).body("{}").send().await.expect("ping");
    assert_eq!((resp.status().as_u16(), resp.headers()["retry-after"].to_str().ok()), (503, Some("5")));
    admin(reqwest::Method::POST, "/admin/routes/ping/resume").send().await.expect("resume");
    assert_eq!(c.post(j.url("/ping")).body("{}").send().await.expect("ping").status(), 200);

    // The CLI speaks the same API.
    let url = format!("http://{}", j.admin.as_deref().expect("admin"));
    let (code, out, err) = common::junction(&["admin", "--url", &url, "routes"], &[("JUNCTION_ADMIN_TOKEN", TOKEN)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"id\": \"ping\"") && out.contains("\"state\": \"running\""), "{out}");
    let (code, out, _) = common::junction(&["admin", "--url", &url, "--token", "wrong-token-0000", "routes"], &[]);
    assert_ne!(code, 0);
    assert!(out.contains("unauthorized"), "{out}");

    // Every admin call is in the audit, the refused ones too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let audit: Value =
        admin(reqwest::Method::GET, "/admin/audit?limit=100").send().await.expect("audit").json().await.expect("json");
    let items = audit["items"].as_array().expect("items");
    let has = |actor: &str, action: &str, outcome: &str| {
        items.iter().any(|i| {
            i["actor"] == actor
                && i["action"].as_str().unwrap_or_default().starts_with(action)
                && i["outcome"] == outcome
        })
    };
    assert!(has("anonymous", "GET /admin/routes", "denied"), "{audit}");
    assert!(has("admin", "POST /admin/reload", "ok"), "{audit}");
    assert!(has("admin", "POST /admin/reload", "rejected"), "{audit}");
    assert!(has("admin", "POST /admin/routes/ping/pause", "ok"), "{audit}");
    assert!(has("admin", "GET /admin/routes", "ok"), "{audit}");
    assert!(!audit.to_string().contains(TOKEN), "the token must never be recorded");
}

/// #18 §5: routes from a Kubernetes ConfigMap. The kubelet writes a new version as a new
/// hidden `..<timestamp>` directory, swaps the `..data` symlink to it (a rename) and removes the
/// old directory; the route files themselves are symlinks through `..data`. That swap is a
/// change like any other: the new routes are served, the hidden directories are not read as
/// routes of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_swap_of_the_routes_is_reloaded() {
    use std::os::unix::fs::symlink;
    let dir = project(&[("junction.yaml", "routes: [routes/]\n")]);
    let routes = dir.path().join("routes");
    // The kubelet's first version of the volume.
    let write_version = |name: &str, version: u32| {
        let data = routes.join(name);
        std::fs::create_dir_all(&data).expect("mkdir");
        std::fs::write(data.join("ping.yaml"), ping(version)).expect("write");
    };
    write_version("..2026_12_07_10_00_00.1", 1);
    symlink("..2026_12_07_10_00_00.1", routes.join("..data")).expect("..data");
    symlink("..data/ping.yaml", routes.join("ping.yaml")).expect("ping.yaml");

    let (_tmp, store) = sqlite_store();
    let j = Junction::start(dir.path(), &[("JUNCTION_STORE", &store)]);
    let client = reqwest::Client::new();
    let served = async |version: u32| {
        let resp = client.post(j.url("/ping")).body("{}").send().await.expect("send");
        resp.status() == 200 && resp.json::<Value>().await.is_ok_and(|v| v["v"] == version)
    };
    assert!(served(1).await, "{}", j.logs());

    // The update, as the kubelet's atomic writer makes it.
    write_version("..2026_12_07_10_05_00.2", 2);
    symlink("..2026_12_07_10_05_00.2", routes.join("..data_tmp")).expect("..data_tmp");
    std::fs::rename(routes.join("..data_tmp"), routes.join("..data")).expect("swap ..data");
    std::fs::remove_dir_all(routes.join("..2026_12_07_10_00_00.1")).expect("remove the old version");

    served_within(Duration::from_secs(5), "the ConfigMap's new version", async || served(2).await).await;
    assert!(!j.logs().contains("duplicate route"), "{}", j.logs());
}
