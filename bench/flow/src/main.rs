//! `flow-bench`: deals through the whole flow of the root project, from the amoCRM webhook to
//! the deal's row in the DWH — the lead fetched again from the CRM, the master deal upserted,
//! its event through the outbox and the bus, the DWH loader's batch — against the simulators of
//! the outside systems, started here. See bench/README.md, "Whole flow".
//!
//! ```text
//! flow-bench JUNCTION PROJECT COUNT RATE SECONDS LOG
//! ```
//!
//! Runs `JUNCTION run PROJECT` with this process's environment (the script names the store,
//! the MasterDeal database, the cache and the bus) and the simulators' addresses, its log in
//! LOG. Then: a warm-up; COUNT deals sent 16 at a time (throughput: deals per second from the
//! first webhook to the last row); RATE deals a second for SECONDS (latency: each deal's time
//! from its webhook to its row, and what each stage took of it). Prints one line:
//!
//! ```text
//! <deals/s> <p50 ms> <p99 ms> <gateway %> <masterdeal %> <dwh %> <max RSS MiB> <lost>
//! ```
//!
//! The stages: *gateway*, the webhook until its 202 (checked, stored for the route); *masterdeal*,
//! from the 202 until the master deal is committed (the route picks the message up, fetches the
//! lead from the CRM and upserts the deal: the row's `updated_at`); *dwh*, from the commit
//! until the row is in ClickHouse (the outbox relay, the bus, the loader and its batch).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use junction_simulators::amocrm::{self, Amocrm};
use junction_simulators::clickhouse::ClickHouse;
use junction_simulators::outside::Outside;
use serde_json::Value;

/// The root project's dev token of amoCRM's webhook URL (junction.yaml holds its hash).
const HOOK_TOKEN: &str = "dev-amocrm-hook-token";
/// Deals sent at once in the throughput phase.
const SENDERS: usize = 16;
/// How long a deal may take to reach the DWH before it counts as lost.
const PATIENCE: Duration = Duration::from_secs(120);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [junction, project, count, rate, seconds, log] = args.as_slice() else {
        eprintln!("usage: flow-bench JUNCTION PROJECT COUNT RATE SECONDS LOG");
        std::process::exit(2);
    };
    let number = |s: &str| s.parse::<usize>().unwrap_or_else(|_| fail(&format!("`{s}` is not a number")));
    let (count, rate, seconds) = (number(count), number(rate), number(seconds));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    runtime.block_on(run(junction, project, count, rate.max(1), seconds, log));
}

fn fail(why: &str) -> ! {
    eprintln!("flow-bench: {why}");
    std::process::exit(1);
}

/// One deal sent: when its webhook went and when it was accepted.
#[derive(Clone, Copy)]
struct Sent {
    sent: SystemTime,
    accepted: SystemTime,
}

/// The deals' rows as they arrive in the DWH: by CRM id, when the row was first seen and the
/// deal's `updated_at` (its commit in MasterDeal).
#[derive(Default)]
struct Arrivals {
    by_lead: HashMap<String, (SystemTime, SystemTime)>,
    read: usize,
}

async fn run(junction: &str, project: &str, count: usize, rate: usize, seconds: usize, log: &str) {
    let outside = Outside::start("bench").await.unwrap_or_else(|e| fail(&format!("cannot start the simulators: {e}")));
    let mut child = start_junction(junction, project, &outside.env(), log);
    let addr = serving(&mut child, log);
    let hook = format!("http://{addr}/webhooks/amocrm?token={HOOK_TOKEN}");
    let arrivals = Arc::new(Mutex::new(Arrivals::default()));
    let watcher = tokio::spawn(watch(outside.dwh.clone(), arrivals.clone()));
    let driver = Driver {
        crm: outside.crm.clone(),
        client: reqwest::Client::new(),
        hook: hook.into(),
        arrivals: arrivals.clone(),
    };

    // Warm-up: connections, the route's first runs, the tables created in the DWH.
    let warm = driver.burst(20).await;
    driver.wait_for(&warm).await;

    // Throughput: COUNT deals, SENDERS at a time.
    let started = SystemTime::now();
    let burst = driver.burst(count).await;
    let (lost, last) = driver.wait_for(&burst).await;
    let span = last.duration_since(started).unwrap_or_default().as_secs_f64().max(0.001);
    let per_second = (count - lost) as f64 / span;

    // Latency: RATE a second for SECONDS.
    let paced = driver.paced(rate, seconds).await;
    let (lost_paced, _) = driver.wait_for(&paced).await;
    let (p50, p99, shares) = latencies(&paced, &arrivals.lock().unwrap_or_else(PoisonError::into_inner));
    let rss = max_rss_mib(child.id());
    watcher.abort();
    stop(&mut child);
    println!(
        "{per_second:.1} {p50:.1} {p99:.1} {:.1} {:.1} {:.1} {rss} {}",
        shares[0] * 100.0,
        shares[1] * 100.0,
        shares[2] * 100.0,
        lost + lost_paced
    );
}

#[derive(Clone)]
struct Driver {
    crm: Amocrm,
    client: reqwest::Client,
    hook: Arc<str>,
    arrivals: Arc<Mutex<Arrivals>>,
}

impl Driver {
    /// A new won lead in the CRM, and its webhook; the lead's id and the times.
    async fn send(&self, n: usize) -> (String, Option<Sent>) {
        let today = chrono::Utc::now().date_naive();
        let period = (today, today + chrono::Days::new(30));
        let lead = amocrm::deal_lead(&format!("Bench {n}"), 1_000_000, "ООО «Ромашка»", "7707083893", period);
        let lead = self.crm.add_lead(lead);
        let pipeline = self.crm.lead(lead).and_then(|l| l["pipeline_id"].as_u64()).unwrap_or(0);
        let form = amocrm::status_webhook_form(lead, 142, 142, pipeline);
        let sent = SystemTime::now();
        let answer = self
            .client
            .post(&*self.hook)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await;
        let accepted = SystemTime::now();
        let ok = answer.is_ok_and(|r| r.status().as_u16() == 202);
        (lead.to_string(), ok.then_some(Sent { sent, accepted }))
    }

    /// `n` deals, `SENDERS` at a time.
    async fn burst(&self, n: usize) -> Vec<(String, Option<Sent>)> {
        let next = Arc::new(AtomicUsize::new(0));
        let senders: Vec<_> = (0..SENDERS)
            .map(|_| {
                let (driver, next) = (self.clone(), next.clone());
                tokio::spawn(async move {
                    let mut sent = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return sent;
                        }
                        sent.push(driver.send(i).await);
                    }
                })
            })
            .collect();
        let mut out = Vec::with_capacity(n);
        for sender in senders {
            out.extend(sender.await.unwrap_or_else(|e| fail(&format!("a sender failed: {e}"))));
        }
        out
    }

    /// `rate` deals a second for `seconds`, each sent on its tick however long the others take.
    async fn paced(&self, rate: usize, seconds: usize) -> Vec<(String, Option<Sent>)> {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / u32::try_from(rate).unwrap_or(u32::MAX));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut sends = Vec::new();
        for i in 0..rate * seconds {
            tick.tick().await;
            let driver = self.clone();
            sends.push(tokio::spawn(async move { driver.send(i).await }));
        }
        let mut out = Vec::with_capacity(sends.len());
        for send in sends {
            out.push(send.await.unwrap_or_else(|e| fail(&format!("a send failed: {e}"))));
        }
        out
    }

    /// Waits for the rows of the deals `sent` accepted; how many never came (or were refused),
    /// and when the last one did.
    async fn wait_for(&self, sent: &[(String, Option<Sent>)]) -> (usize, SystemTime) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (missing, last) = {
                let a = self.arrivals.lock().unwrap_or_else(PoisonError::into_inner);
                let mut last = SystemTime::UNIX_EPOCH;
                let mut missing = 0;
                for (lead, s) in sent {
                    match (s, a.by_lead.get(lead)) {
                        (Some(_), Some((seen, _))) => last = last.max(*seen),
                        _ => missing += 1,
                    }
                }
                (missing, last)
            };
            if missing == 0 || Instant::now() > deadline {
                return (missing, last);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Reads the DWH's new `deals` rows every 5 ms, noting when each deal's first row arrived.
async fn watch(dwh: ClickHouse, arrivals: Arc<Mutex<Arrivals>>) {
    loop {
        let start = arrivals.lock().unwrap_or_else(PoisonError::into_inner).read;
        let rows = dwh.rows_from("dwh.deals", start);
        let now = SystemTime::now();
        {
            let mut a = arrivals.lock().unwrap_or_else(PoisonError::into_inner);
            a.read += rows.len();
            for row in rows {
                let Some(lead) = row["crm_id"].as_str() else { continue };
                let committed = committed_at(&row).unwrap_or(now);
                a.by_lead.entry(lead.to_owned()).or_insert((now, committed));
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The deal's `updated_at` in the row (UTC, as the DWH route writes it).
fn committed_at(row: &Value) -> Option<SystemTime> {
    let text = row["updated_at"].as_str()?;
    let t = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.3f").ok()?.and_utc();
    let millis = u64::try_from(t.timestamp_millis()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_millis(millis))
}

/// p50 and p99 of the deals' time from webhook to row (ms), and the share of each stage.
fn latencies(sent: &[(String, Option<Sent>)], a: &Arrivals) -> (f64, f64, [f64; 3]) {
    let ms = |from: SystemTime, to: SystemTime| to.duration_since(from).unwrap_or_default().as_secs_f64() * 1000.0;
    let mut total = Vec::new();
    let mut stages = [0.0; 3];
    for (lead, s) in sent {
        let (Some(s), Some((seen, committed))) = (s, a.by_lead.get(lead)) else { continue };
        total.push(ms(s.sent, *seen));
        // The clocks are one machine's; a commit stamped (in ms) before the 202 arrived counts as
        // at the 202.
        let committed = (*committed).max(s.accepted).min(*seen);
        stages[0] += ms(s.sent, s.accepted);
        stages[1] += ms(s.accepted, committed);
        stages[2] += ms(committed, *seen);
    }
    if total.is_empty() {
        return (0.0, 0.0, [0.0; 3]);
    }
    total.sort_by(f64::total_cmp);
    let at = |q: f64| total[((total.len() as f64 * q).ceil() as usize).clamp(1, total.len()) - 1];
    let sum: f64 = stages.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    (at(0.50), at(0.99), stages.map(|s| s / sum))
}

fn start_junction(junction: &str, project: &str, env: &[(&str, String)], log: &str) -> Child {
    let file = std::fs::File::create(log).unwrap_or_else(|e| fail(&format!("cannot write {log}: {e}")));
    let mut cmd = Command::new(junction);
    cmd.arg("run").arg(project).env("JUNCTION_SIMULATORS", "off");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(file).stderr(Stdio::piped());
    cmd.spawn().unwrap_or_else(|e| fail(&format!("cannot start {junction}: {e}")))
}

/// Waits for `junction: serving on http://ADDR`; its start-up lines go on into the log.
fn serving(child: &mut Child, log: &str) -> String {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let log = log.to_owned();
    std::thread::spawn(move || {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new().append(true).open(&log).ok();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("junction: serving on http://") {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
            }
            if let Some(f) = file.as_mut() {
                let _ = writeln!(f, "{line}");
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| fail("junction did not start serving within 60 s (see its log)"))
}

/// The most memory the process has held (`VmHWM`), in MiB.
fn max_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next()?.parse().ok());
    kib.unwrap_or(0u64) / 1024
}

/// SIGTERM, then waits for the exit.
fn stop(child: &mut Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
}
