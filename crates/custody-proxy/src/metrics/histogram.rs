//! A fixed-bucket histogram of durations on atomics: one `fetch_add` on the bucket
//! and one on the sum per observation, no lock and no allocation. Buckets hold
//! their own counts (not cumulative); the renderer accumulates them, so `_count`
//! always equals the `+Inf` bucket even while observations land during a scrape.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets of custody's added latency: 50 µs … 1 s.
pub(crate) const ADDED_LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Buckets of whole exchanges (LLM calls stream for tens of seconds): 1 ms … 300 s.
pub(crate) const REQUEST_DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

#[derive(Debug)]
pub(crate) struct Histogram {
    /// Upper bounds in seconds, ascending (rendered as `le`).
    bounds: &'static [f64],
    /// The same bounds in nanoseconds, for the comparison on the hot path.
    bounds_ns: Box<[u64]>,
    /// One count per bound, then the overflow (`+Inf` only).
    buckets: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

/// The counts at one moment.
#[derive(Debug, PartialEq)]
pub(crate) struct Snapshot {
    pub(crate) buckets: Vec<u64>,
    pub(crate) sum_ns: u64,
}

impl Snapshot {
    pub(crate) fn sum_seconds(&self) -> f64 {
        // Exact below 2^53 ns (104 days of summed time), then rounded.
        self.sum_ns as f64 / 1e9
    }
}

impl Histogram {
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "ascending bounds");
        Self {
            bounds,
            bounds_ns: bounds
                .iter()
                .map(|b| Duration::from_secs_f64(*b).as_nanos() as u64)
                .collect(),
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Counts one duration in the first bucket whose bound is `>=` it.
    pub(crate) fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = self.bounds_ns.partition_point(|b| *b < ns);
        if let Some(bucket) = self.buckets.get(i) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub(crate) fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }

    /// Observations so far.
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }
}
