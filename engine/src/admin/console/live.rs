//! The console's live numbers. Every [`TICK`] each route's counters are sampled; the rate,
//! errors and p99 shown are over the last minute of samples, and one point a minute is kept
//! for an hour (the trend charts). Only this process's counters: each instance's console
//! shows its own.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::route::counters::Counts;
use crate::runtime::Runtime;

/// How often the counters are sampled (and the live pages pushed).
pub(super) const TICK: Duration = Duration::from_secs(2);
const WINDOW: Duration = Duration::from_secs(60);
const HOUR_POINTS: usize = 60;

/// One minute of a route, for its trend.
#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct Point {
    /// Unix seconds at the minute's end.
    pub t: i64,
    pub messages: u64,
    pub errors: u64,
    pub p99_ms: Option<u64>,
}

/// A route as the live pages show it.
#[derive(Debug, Clone, Serialize)]
pub(super) struct RouteNow {
    pub id: String,
    pub source: String,
    pub state: &'static str,
    /// Messages received per second over the last minute.
    pub rate: String,
    /// Messages dead-lettered in the last minute.
    pub errors: u64,
    pub p99_ms: Option<u64>,
    pub in_flight: usize,
    pub received: u64,
    pub completed: u64,
    pub dead_lettered: u64,
    pub trend: Vec<Point>,
}

#[derive(Default)]
struct History {
    /// The samples of the last minute, oldest first.
    recent: VecDeque<(Instant, Counts)>,
    minutes: VecDeque<Point>,
    /// The sample the current minute started at.
    minute_start: Option<(Instant, Counts)>,
}

#[derive(Default)]
pub(super) struct Live {
    routes: Mutex<BTreeMap<String, History>>,
}

impl Live {
    /// Starts sampling `runtime`'s routes every [`TICK`] for as long as the process runs.
    pub(super) fn start(runtime: &Runtime) -> Arc<Self> {
        let live = Arc::new(Self::default());
        let (weak, runtime) = (Arc::downgrade(&live), runtime.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let Some(live) = weak.upgrade() else { return };
                live.sample(&runtime, Instant::now(), chrono::Utc::now().timestamp());
            }
        });
        live
    }

    fn sample(&self, runtime: &Runtime, now: Instant, unix: i64) {
        let table = runtime.routes();
        let mut routes = self.routes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        routes.retain(|id, _| table.get(id).is_some());
        for r in table.iter() {
            let counts = r.counters.snapshot();
            let h = routes.entry(r.id.to_string()).or_default();
            h.recent.push_back((now, counts));
            while h.recent.front().is_some_and(|(t, _)| now.duration_since(*t) > WINDOW) {
                h.recent.pop_front();
            }
            match h.minute_start {
                Some((t, start)) if now.duration_since(t) >= Duration::from_secs(60) => {
                    let d = counts.since(&start);
                    h.minutes.push_back(Point {
                        t: unix,
                        messages: d.received,
                        errors: d.dead_lettered,
                        p99_ms: d.quantile_ms(0.99),
                    });
                    if h.minutes.len() > HOUR_POINTS {
                        h.minutes.pop_front();
                    }
                    h.minute_start = Some((now, counts));
                }
                Some(_) => {}
                None => h.minute_start = Some((now, counts)),
            }
        }
    }

    /// Every route now, in id order.
    pub(super) fn now(&self, runtime: &Runtime) -> Vec<RouteNow> {
        let table = runtime.routes();
        let routes = self.routes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        table
            .iter()
            .map(|r| {
                let counts = r.counters.snapshot();
                let h = routes.get(&*r.id);
                // Over the last minute: from the oldest sample kept to the counters now.
                let (rate, window) = match h.and_then(|h| h.recent.front()) {
                    Some((t, first)) => {
                        let secs = t.elapsed().as_secs_f64().max(1.0);
                        let d = counts.since(first);
                        let rate = d.received as f64 / secs;
                        (rate, d)
                    }
                    None => (0.0, counts),
                };
                let paused = runtime.paused().is(&r.id);
                RouteNow {
                    id: r.id.to_string(),
                    source: r.source_summary(),
                    state: crate::admin::api::state(paused),
                    rate: format!("{rate:.1}"),
                    errors: window.dead_lettered,
                    p99_ms: window.quantile_ms(0.99),
                    in_flight: r.in_flight(),
                    received: counts.received,
                    completed: counts.completed,
                    dead_lettered: counts.dead_lettered,
                    trend: h.map(|h| h.minutes.iter().copied().collect()).unwrap_or_default(),
                }
            })
            .collect()
    }
}

/// A small inline SVG of the messages per minute over the last hour (no script needed).
pub(super) fn sparkline(points: &[Point]) -> String {
    const W: f64 = 120.0;
    const H: f64 = 24.0;
    if points.len() < 2 {
        return "<span class=\"muted\">collecting…</span>".into();
    }
    let max = points.iter().map(|p| p.messages).max().unwrap_or(0).max(1);
    let coords: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let x = i as f64 * W / (points.len() - 1) as f64;
            let y = H - (p.messages as f64 / max as f64) * (H - 2.0) - 1.0;
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let total: u64 = points.iter().map(|p| p.messages).sum();
    format!(
        "<svg class=\"spark\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{total} messages in the last {} minutes\"><polyline points=\"{}\"/></svg>",
        points.len(),
        coords.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparkline_scales_to_the_busiest_minute() {
        assert!(sparkline(&[]).contains("collecting"));
        let p = |messages| Point { t: 0, messages, errors: 0, p99_ms: None };
        let svg = sparkline(&[p(0), p(10), p(5)]);
        assert!(svg.contains("points=\"0.0,23.0 60.0,1.0 120.0,12.0\""), "{svg}");
        assert!(svg.contains("aria-label=\"15 messages in the last 3 minutes\""), "{svg}");
    }
}
