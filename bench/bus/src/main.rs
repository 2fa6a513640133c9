//! The bus benchmark's other half (see `bench/README.md`, "Bus"):
//!
//! - `produce BUS TOPIC COUNT [RATE [GROUP]]`: publishes COUNT copies of the deal (`$DEAL`),
//!   each with its send time in the `sent-ns` header, as fast as the broker takes them or RATE
//!   per second (0: as fast); on RabbitMQ, GROUP's queue for TOPIC is declared first, so a
//!   backlog can wait for a group that has not started;
//! - `drain BUS TOPIC COUNT`: joins TOPIC (says `ready` on stderr), reads until COUNT messages
//!   came, then prints
//!   `<msgs/s> <p50 ms> <p99 ms>`: the rate from the first arrival to the last, and the
//!   end-to-end latency from each message's send time;
//! - `baseline BUS FROM TO GROUP`: the hand-written consume → transform → produce loop Junction
//!   is compared with, under the same commit rule (a message is committed or acked only once its
//!   output was acknowledged by the broker, and on Kafka only with every message before it);
//!   prints `ready` once it consumes.
//!
//! BUS is `kafka://host:port` or `amqp://user:pass@host:port/%2f`. On RabbitMQ a topic is a
//! routing key on the `junction` exchange, as on Junction's bus, and a group reads it from the
//! queue `<topic>.<group>`; the queue arguments are Junction's, so either side can declare it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

mod amqp;
mod kafka;

/// Messages the baseline has in flight at once, as Junction's route (`max_in_flight: 64`).
pub(crate) const IN_FLIGHT: usize = 64;

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// The transform both sides run: the deal with a `processed` mark and its items' total.
pub(crate) fn transform(payload: &[u8]) -> Vec<u8> {
    let mut deal: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
    let total: f64 =
        deal["items"].as_array().map_or(0.0, |items| items.iter().filter_map(|i| i["budget"].as_f64()).sum());
    if let Value::Object(map) = &mut deal {
        map.insert("processed".into(), Value::Bool(true));
        map.insert("total".into(), total.into());
    }
    serde_json::to_vec(&deal).unwrap_or_default()
}

/// What a drain saw: each message's latency and when the first and the last arrived.
pub(crate) struct Arrivals {
    latencies: Vec<u64>,
    first: u64,
    last: u64,
}

impl Arrivals {
    pub(crate) fn new(count: u64) -> Self {
        Self { latencies: Vec::with_capacity(count as usize), first: 0, last: 0 }
    }

    pub(crate) fn len(&self) -> u64 {
        self.latencies.len() as u64
    }

    /// A message sent at `sent` (ns since the epoch) arrived now.
    pub(crate) fn arrived(&mut self, sent: Option<u64>) {
        let now = now_ns();
        if let Some(sent) = sent {
            self.latencies.push(now.saturating_sub(sent));
            if self.first == 0 {
                self.first = now;
            }
            self.last = now;
        }
    }

    /// `<msgs/s> <p50 ms> <p99 ms>`.
    pub(crate) fn report(mut self) -> String {
        let l = &mut self.latencies;
        l.sort_unstable();
        let at = |q: f64| l[((l.len() as f64 * q) as usize).min(l.len() - 1)] as f64 / 1e6;
        let secs = (self.last.saturating_sub(self.first)) as f64 / 1e9;
        let rate = if secs > 0.0 { l.len() as f64 / secs } else { f64::INFINITY };
        format!("{rate:.0} {:.1} {:.1}", at(0.5), at(0.99))
    }
}

/// The pause between two sends at `rate` per second (none for 0).
pub(crate) fn pace(rate: u64) -> Option<Duration> {
    (rate > 0).then(|| Duration::from_nanos(1_000_000_000 / rate))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_else(|| usage());
    let number = |i: usize| arg(i).parse::<u64>().unwrap_or_else(|_| usage());
    let bus = arg(1);
    let kafka = bus.starts_with("kafka://");
    match arg(0).as_str() {
        "produce" => {
            let deal = std::fs::read(std::env::var("DEAL").unwrap_or_else(|_| "../shared/bench/deal.json".into()))
                .expect("the deal file ($DEAL)");
            let rate = args.get(4).and_then(|r| r.parse().ok()).unwrap_or(0);
            if kafka {
                kafka::produce(&bus, &arg(2), number(3), rate, &deal).await;
            } else {
                amqp::produce(&bus, &arg(2), number(3), rate, &deal, args.get(5).map(String::as_str)).await;
            }
        }
        "drain" => {
            let line = if kafka {
                kafka::drain(&bus, &arg(2), number(3)).await
            } else {
                amqp::drain(&bus, &arg(2), number(3)).await
            };
            println!("{line}");
        }
        "baseline" => {
            if kafka {
                kafka::baseline(&bus, &arg(2), &arg(3), &arg(4)).await;
            } else {
                amqp::baseline(&bus, &arg(2), &arg(3), &arg(4)).await;
            }
        }
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: bus-bench produce BUS TOPIC COUNT [RATE [GROUP]] | drain BUS TOPIC COUNT | baseline BUS FROM TO GROUP"
    );
    std::process::exit(2)
}
