//! Latency histograms: power-of-two buckets of nanoseconds, filled with relaxed atomic adds,
//! read as a [`LatencyHistogram`]. The put path keeps its own striped copy (`stats.rs`); the
//! rarer events (syncs) share one [`LatencyRecorder`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latency buckets: bucket 0 holds events under 2^`FIRST_SHIFT` ns, bucket `i` those under
/// 2^(`FIRST_SHIFT` + i) ns, the last one everything slower.
pub(crate) const BUCKETS: usize = 28;
const FIRST_SHIFT: u32 = 8;

/// The bucket of an event that took `nanos`.
pub(crate) fn bucket_of(nanos: u64) -> usize {
    let bits = 64 - nanos.leading_zeros();
    (bits.saturating_sub(FIRST_SHIFT) as usize).min(BUCKETS - 1)
}

/// Latencies recorded from any thread into one set of buckets.
#[derive(Default)]
pub(crate) struct LatencyRecorder {
    buckets: [AtomicU64; BUCKETS],
}

impl LatencyRecorder {
    /// One event that took `elapsed`.
    pub(crate) fn record(&self, elapsed: Duration) {
        self.buckets[bucket_of(elapsed.as_nanos() as u64)].fetch_add(1, Ordering::Relaxed);
    }

    /// What was recorded so far.
    pub(crate) fn snapshot(&self) -> LatencyHistogram {
        LatencyHistogram::from_counts(self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect())
    }
}

/// Latencies (of puts, of syncs) since open, in power-of-two buckets of nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
}

impl LatencyHistogram {
    pub(crate) fn from_counts(counts: Vec<u64>) -> Self {
        LatencyHistogram { counts }
    }

    /// `(upper bound, count)` per bucket, fastest first: events that took less than the bound
    /// (and at least the previous one). The last bound is `Duration::MAX`.
    pub fn buckets(&self) -> Vec<(Duration, u64)> {
        self.counts
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let bound = if i + 1 == self.counts.len() {
                    Duration::MAX
                } else {
                    Duration::from_nanos(1u64 << (FIRST_SHIFT + i as u32))
                };
                (bound, n)
            })
            .collect()
    }

    /// Events counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// An upper bound of the `q` quantile (0.0-1.0): the bound of the bucket that holds it
    /// (within a factor of two of the true value). `None` with nothing counted.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        self.buckets().into_iter().find_map(|(bound, n)| {
            seen += n;
            (seen >= rank).then_some(bound)
        })
    }
}
