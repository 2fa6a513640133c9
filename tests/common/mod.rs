//! Starting the real `junction` binary for end-to-end tests, and small project fixtures.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_junction");

/// The repository root: the MasterDeal project itself.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The demo's simulators listen on fixed ports (simulators.yaml): a test that serves them holds
/// this lock while it runs, so that no two do at once (each test binary is its own process).
pub fn demo_ports() -> std::fs::File {
    let path = std::env::temp_dir().join("junction-demo-ports.lock");
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).expect("the lock file");
    file.lock().expect("the demo ports' lock");
    file
}

/// An address nothing listens on (the discard port): connections to it are refused.
pub const NOWHERE: &str = "http://127.0.0.1:9";

/// A running `junction run`, killed when dropped.
pub struct Junction {
    child: Child,
    pub addr: String,
    /// The admin API's address, when the project has one.
    pub admin: Option<String>,
    log: Arc<Mutex<String>>,
}

impl Junction {
    /// Starts `junction run DIR` on a free port with `env`; waits until it serves.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.arg("run")
            .arg(dir)
            .env("JUNCTION_LISTEN", "127.0.0.1:0")
            .env("JUNCTION_ADMIN_LISTEN", "127.0.0.1:0")
            .env("JUNCTION_LOG", "info")
            // The root project's simulators.yaml is for the demo; a test starts its own.
            .env("JUNCTION_SIMULATORS", "off");
        for (k, v) in env {
            cmd.env(k, v);
        }
        // The root project's adapters default to its simulators' fixed ports, which another
        // test's demo may be serving: unless a test points them somewhere (its own simulators,
        // or the demo's with JUNCTION_SIMULATORS=on), they reach nothing.
        if !env.iter().any(|(k, v)| *k == "JUNCTION_SIMULATORS" && *v == "on") {
            let onec = format!("{NOWHERE}/buh/odata/standard.odata");
            for (var, url) in [
                ("LLM_URL", NOWHERE),
                ("AMOCRM_URL", NOWHERE),
                ("ONEC_URL", onec.as_str()),
                ("DIRECT_URL", NOWHERE),
                ("VK_URL", NOWHERE),
                ("DWH_URL", NOWHERE),
            ] {
                if !env.iter().any(|(k, _)| *k == var) {
                    cmd.env(var, url);
                }
            }
        }
        // The root project keeps MasterDeal in a database of its own (MASTERDEAL_DATABASE, by
        // default under data/): unless the test names one, it goes beside the test's store.
        if let Some((_, store)) = env.iter().find(|(k, _)| *k == "JUNCTION_STORE")
            && !env.iter().any(|(k, _)| *k == "MASTERDEAL_DATABASE")
        {
            let beside = match store.strip_suffix("junction.db") {
                Some(dir) if store.starts_with("sqlite:") => format!("{dir}masterdeal.db"),
                _ => (*store).to_owned(),
            };
            cmd.env("MASTERDEAL_DATABASE", beside);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the junction binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        let admin = Arc::new(Mutex::new(None));
        let admin_slot = admin.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("junction: admin API on http://") {
                    *admin_slot.lock().expect("admin lock") = Some(rest.trim().to_owned());
                }
                let serving = line.strip_prefix("junction: serving on http://");
                if let Some(rest) = serving.or_else(|| line.strip_prefix("junction: serving on https://")) {
                    let addr = rest.split_whitespace().next().unwrap_or_default().to_owned();
                    let _ = tx.send(addr);
                }
                let mut l = sink.lock().expect("log lock");
                l.push_str(&line);
                l.push('\n');
            }
        });
        // The JSON log lines, on stdout, into the same log.
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut l = sink.lock().expect("log lock");
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("junction did not start serving within 30 s; its log:\n{}", log.lock().expect("log lock"));
            }
        };
        let admin = admin.lock().expect("admin lock").clone();
        Self { child, addr, admin, log }
    }

    /// A URL on the admin API.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin.as_deref().expect("the project has an admin API"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn logs(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// Waits until the log contains `needle`, or panics with the log.
    pub fn wait_for_log(&self, needle: &str, within: Duration) {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.logs().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the log never showed {needle:?} within {within:?}:\n{}", self.logs());
    }

    /// The highest value the gauge `series` (`name{labels}`) showed on the admin API's
    /// `/metrics`, sampled every 30 ms until `done(log)` holds; panics with the log after `within`.
    pub async fn highest_until(&self, series: &str, done: impl Fn(&str) -> bool, within: Duration) -> f64 {
        let c = reqwest::Client::new();
        let line = format!("{series} ");
        let deadline = Instant::now() + within;
        let mut most = 0.0_f64;
        while !done(&self.logs()) {
            assert!(Instant::now() < deadline, "not done within {within:?}:\n{}", self.logs());
            let text = c.get(self.admin_url("/metrics")).send().await.expect("metrics").text().await.expect("text");
            if let Some(v) = text.lines().find_map(|l| l.strip_prefix(&line)) {
                most = most.max(v.trim().parse().expect("a number"));
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        most
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "junction did not exit after SIGTERM:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM like [`Junction::terminate`], copying the whole log (to the exit) into `into`.
    pub fn terminate_keeping_log(self, into: &Arc<Mutex<String>>) -> std::process::ExitStatus {
        let log = self.log.clone();
        let status = self.terminate();
        // The reader threads drain the pipes until they close with the process.
        std::thread::sleep(Duration::from_millis(100));
        *into.lock().expect("log lock") = log.lock().expect("log lock").clone();
        status
    }

    /// Sends a signal (`HUP`, `TERM`, …) without waiting.
    /// The process id (what it names itself by to brokers).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status();
    }

    /// SIGKILL: a crash, nothing gets to finish.
    pub fn crash(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILL like [`Junction::crash`], returning the whole log up to the kill: what finished
    /// between a look at the log and the kill is in it too.
    pub fn crash_keeping_log(self) -> String {
        let log = self.log.clone();
        self.crash();
        // The reader threads drain the pipes until they close with the process.
        std::thread::sleep(Duration::from_millis(100));
        log.lock().expect("log lock").clone()
    }
}

impl Drop for Junction {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion: (exit code, stdout, stderr).
pub fn junction(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the junction binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The argon2id hash `junction hash-password` prints for `password` (read from stdin).
pub fn hash_password(password: &str) -> String {
    use std::io::Write;
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

/// `GET path` on a running Junction's admin API with `token`, as JSON.
pub async fn admin_get(j: &Junction, token: &str, path: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(j.admin_url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
}

/// A temporary project: `files` are (relative path, content).
pub fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("a file has a parent")).expect("mkdir");
        std::fs::write(p, text).expect("write fixture");
    }
    dir
}

/// A store URL in a fresh temp dir (kept alive by the returned guard).
pub fn sqlite_store() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("junction.db").display());
    (dir, url)
}

/// The CRM deal the benchmark posts (a copy lives in examples/ for the README's curl lines).
pub fn deal() -> String {
    std::fs::read_to_string(root().join("examples/crm-deal.json")).expect("examples/crm-deal.json")
}

/// The tests' Kafka brokers: tansu on 127.0.0.1:9092 as `scripts/test` starts it, or
/// `JUNCTION_TEST_KAFKA`.
pub fn kafka_brokers() -> String {
    std::env::var("JUNCTION_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// The tests' RabbitMQ: 127.0.0.1:5672 as guest, or `JUNCTION_TEST_AMQP` (an `amqp://` URL).
pub fn amqp_url() -> String {
    std::env::var("JUNCTION_TEST_AMQP").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A tag of its own for one test's topics, groups and routes: brokers outlive the runs.
pub fn tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// A master deal as the MasterDeal API takes it, with `external_id` `crm:<crm_id>`.
pub fn deal_input(crm_id: &str) -> serde_json::Value {
    serde_json::json!({
        "external_id": format!("crm:{crm_id}"),
        "name": "Spring campaign",
        "advertiser": { "name": "Romashka LLC", "inn": "7707083893", "kpp": "770701001" },
        "owner": "anna",
        "budget": "1000000.00",
        "currency": "RUB",
        "status": "draft",
        "period": { "from": "2026-03-01", "to": "2026-05-31" },
    })
}

/// A scripted HTTP server standing in for a third-party API: answers each request with the
/// next scripted response (the last one repeats) and records the request bodies.
pub struct Stub {
    pub url: String,
    pub requests: Arc<Mutex<Vec<String>>>,
    /// The request line and headers of each request.
    pub heads: Arc<Mutex<Vec<String>>>,
    script: Arc<Mutex<Vec<(u16, &'static str)>>>,
}

impl Stub {
    /// `script`: (status, extra header line or "") per request.
    pub fn start(script: Vec<(u16, &'static str)>) -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind stub");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script));
        let (seen, seen_heads, plan) = (requests.clone(), heads.clone(), script.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let n = stream.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break (String::new(), String::new());
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            break (head.to_owned(), body.to_owned());
                        }
                    }
                };
                seen.lock().expect("lock").push(body);
                seen_heads.lock().expect("lock").push(head);
                let (status, header) = {
                    let mut plan = plan.lock().expect("lock");
                    if plan.len() > 1 { plan.remove(0) } else { plan[0] }
                };
                let reply = format!("{{\"ok\": {}}}", status < 300);
                let extra = if header.is_empty() { String::new() } else { format!("{header}\r\n") };
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{reply}",
                    reply.len()
                );
                let _ = stream.write_all(resp.as_bytes());
            }
        });
        Self { url, requests, heads, script }
    }

    /// From now on, answer every request with `status`.
    pub fn answer_always(&self, status: u16) {
        *self.script.lock().expect("lock") = vec![(status, "")];
    }

    pub fn count(&self) -> usize {
        self.requests.lock().expect("lock").len()
    }
}

/// A fresh Postgres database for one test, dropped afterwards. The server is required:
/// without it the test fails and says so.
pub struct PgDatabase {
    pub url: String,
    name: String,
    admin: String,
}

impl PgDatabase {
    pub async fn create() -> Self {
        use sqlx::Connection;
        let admin =
            std::env::var("JUNCTION_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("junction_e2e_{}_{}", std::process::id(), rand_suffix());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is required at {admin} (set JUNCTION_TEST_PG): {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Self { url: format!("{base}/{name}"), name, admin }
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() % 1_000_000_000)
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                        .execute(&mut c)
                        .await;
                }
            });
        })
        .join();
    }
}

/// The Redis the tests share (`JUNCTION_TEST_REDIS`, or the machine's on 6379).
pub fn redis_url() -> String {
    std::env::var("JUNCTION_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The tests' Redis Cluster (`JUNCTION_TEST_REDIS_CLUSTER`, or the three nodes on
/// 127.0.0.1:7000-7002 that `scripts/test` starts).
pub fn redis_cluster_url() -> String {
    std::env::var("JUNCTION_TEST_REDIS_CLUSTER")
        .unwrap_or_else(|_| "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002".into())
}

/// `rabbitmqctl` with its output, for what only the broker can tell.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl").args(args).output().expect("rabbitmqctl (the RabbitMQ server's CLI) runs");
    assert!(out.status.success(), "rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// POSTs `body` as JSON to the gateway; the status and the answer (JSON, or its text).
pub async fn post_json(j: &Junction, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new().post(j.url(path)).json(&body).send().await.expect("send");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

/// The README's example that starts with `marker`, up to its code block's end, passes
/// `junction check` as a project's `junction.yaml` (after `routes: [routes/]`), with `env`.
pub fn assert_readme_example_checks(marker: &str, env: &[(&str, &str)]) {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let start = readme.find(marker).unwrap_or_else(|| panic!("the README's example `{marker}`"));
    let block = &readme[start..start + readme[start..].find("```").expect("the end of the block")];
    let dir = project(&[("junction.yaml", &format!("routes: [routes/]\n{block}")), ("routes/.keep", "")]);
    let (code, out, err) = junction(&["check", dir.path().to_str().expect("utf-8")], env);
    assert_eq!(code, 0, "{marker}: {out}{err}");
}
