//! A route version's own tallies, for the admin API and console (Prometheus has its own, by
//! route id).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// The upper bounds, in milliseconds, of the run-time buckets: doubling from 1 ms to about
/// 65 s; the last bucket takes everything longer.
pub const LATENCY_BOUNDS_MS: [u64; 17] =
    [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536];

#[derive(Debug, Default)]
pub struct RouteCounters {
    received: AtomicU64,
    completed: AtomicU64,
    dead_lettered: AtomicU64,
    /// How long runs took, by bucket of [`LATENCY_BOUNDS_MS`] (one more for the overflow).
    latency: [AtomicU64; LATENCY_BOUNDS_MS.len() + 1],
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub received: u64,
    pub completed: u64,
    pub dead_lettered: u64,
    /// Runs by time taken, bucketed as [`LATENCY_BOUNDS_MS`] (the last: longer than all).
    #[serde(skip)]
    pub latency: [u64; LATENCY_BOUNDS_MS.len() + 1],
}

impl RouteCounters {
    pub fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    pub fn completed(&self) {
        self.completed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    /// One run, finished or failed, that took `took`.
    pub fn took(&self, took: Duration) {
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BOUNDS_MS.iter().position(|&b| ms < b).unwrap_or(LATENCY_BOUNDS_MS.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Counts {
        Counts {
            received: self.received.load(Ordering::Relaxed),
            completed: self.completed.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            latency: std::array::from_fn(|i| self.latency[i].load(Ordering::Relaxed)),
        }
    }
}

impl Counts {
    /// What happened between `earlier` and this snapshot of the same counters (all of this
    /// one when the counters were replaced in between, as by a reload).
    pub fn since(&self, earlier: &Self) -> Self {
        if self.received < earlier.received {
            return *self;
        }
        Self {
            received: self.received - earlier.received,
            completed: self.completed.saturating_sub(earlier.completed),
            dead_lettered: self.dead_lettered.saturating_sub(earlier.dead_lettered),
            latency: std::array::from_fn(|i| self.latency[i].saturating_sub(earlier.latency[i])),
        }
    }

    /// The time under which `q` (0..1) of the runs finished, as the upper bound of its bucket
    /// in milliseconds; `None` when no run was timed.
    pub fn quantile_ms(&self, q: f64) -> Option<u64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(LATENCY_BOUNDS_MS.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_p99_is_the_bucket_the_slowest_hundredth_falls_in() {
        let c = RouteCounters::default();
        for _ in 0..98 {
            c.took(Duration::from_millis(3));
        }
        c.took(Duration::from_millis(300));
        c.took(Duration::from_millis(700));
        let s = c.snapshot();
        assert_eq!(s.quantile_ms(0.5), Some(4));
        assert_eq!(s.quantile_ms(0.99), Some(512));
        assert_eq!(s.quantile_ms(1.0), Some(1024));
        assert_eq!(RouteCounters::default().snapshot().quantile_ms(0.99), None);
    }

    #[test]
    fn a_window_is_the_difference_of_two_snapshots_and_a_reset_starts_anew() {
        let c = RouteCounters::default();
        c.received();
        c.took(Duration::from_secs(100));
        let first = c.snapshot();
        c.received();
        c.completed();
        c.took(Duration::from_millis(1));
        let window = c.snapshot().since(&first);
        assert_eq!((window.received, window.completed), (1, 1));
        assert_eq!(window.quantile_ms(0.99), Some(2));
        let replaced = RouteCounters::default().snapshot();
        assert_eq!(replaced.since(&first), replaced);
        assert_eq!(first.quantile_ms(1.0), Some(u64::MAX));
    }
}
