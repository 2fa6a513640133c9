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

/// A running `junction run`, killed when dropped.
pub struct Junction {
    child: Child,
    pub addr: String,
    log: Arc<Mutex<String>>,
}

impl Junction {
    /// Starts `junction run DIR` on a free port with `env`; waits until it serves.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.arg("run").arg(dir).env("JUNCTION_LISTEN", "127.0.0.1:0").env("JUNCTION_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("the junction binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("junction: serving on http://") {
                    let addr = rest.split_whitespace().next().unwrap_or_default().to_owned();
                    let _ = tx.send(addr);
                }
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
        Self { child, addr, log }
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

    /// SIGKILL: a crash, nothing gets to finish.
    pub fn crash(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
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

/// The CRM deal the benchmark posts.
pub fn deal() -> String {
    std::fs::read_to_string(root().join("../shared/bench/deal.json")).unwrap_or_else(|_| DEAL.to_owned())
}

const DEAL: &str = r#"{"id":"D-100245","title":"Spring campaign 2027 / Romashka LLC","client":{"inn":"7701234567","name":"Romashka LLC","kpp":"770101001"},"amount":1250000.5,"currency":"RUB","stage":"won","owner":"ivanov@agency.example","created_at":"2026-11-20T10:15:00Z","items":[{"channel":"search","platform":"yandex_direct","budget":400000},{"channel":"social","platform":"vk_ads","budget":300000},{"channel":"video","platform":"youtube","budget":250000},{"channel":"display","platform":"mytarget","budget":200000.5},{"channel":"audio","platform":"yandex_music","budget":100000}],"tags":["q2","priority","new-client"],"comment":"Client asked for a media plan with weekly flighting and brand safety filters; KPI: CPM under 350 RUB and CTR above 0.8%."}"#;
