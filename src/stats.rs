//! What a broker shows on its dashboard: [`StoreStats`], a snapshot taken by
//! [`MessageStore::stats`](crate::MessageStore::stats).
//!
//! The put path pays for its counters with two adds into a stripe of its own thread (a plain load
//! and store where the thread holds the stripe alone, an atomic add where it shares it; no lock,
//! and no cache line shared with other producers), and two clock reads for the latency
//! histogram. A snapshot sums the stripes; it costs microseconds, whatever the load.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

pub use crate::latency::LatencyHistogram;
use crate::latency::{BUCKETS, bucket_of};
use crate::replication::ReplicaStatus;
use crate::retention::RetentionPass;

/// Stripes of counters: producers on different threads mostly write different cache lines. The
/// first threads of the process to count each hold one of these alone.
const OWNED: usize = 16;
/// Stripes later threads share, round robin, with atomic adds.
const SHARED: usize = 8;
const STRIPES: usize = OWNED + SHARED;

#[repr(align(128))]
#[derive(Default)]
struct Stripe {
    put_bytes: AtomicU64,
    gets: AtomicU64,
    got_messages: AtomicU64,
    got_bytes: AtomicU64,
    latency: [AtomicU64; BUCKETS],
}

/// The store's running counters.
pub(crate) struct Counters {
    stripes: Box<[Stripe]>,
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn stripe_index() -> usize {
    STRIPE.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = match NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) {
                owned if owned < OWNED => owned,
                later => OWNED + later % SHARED,
            };
            s.set(i);
        }
        i
    })
}

/// Adds `by` to a counter of a stripe. In a stripe this thread holds alone, with a plain load
/// and store: an atomic add is a locked instruction, which waits for every store before it,
/// and a put's last stores are the record's kilobyte in the log (docs/performance.md).
#[inline]
fn add(counter: &AtomicU64, by: u64, owned: bool) {
    if owned {
        counter.store(counter.load(Ordering::Relaxed).wrapping_add(by), Ordering::Relaxed);
    } else {
        counter.fetch_add(by, Ordering::Relaxed);
    }
}

impl Counters {
    pub(crate) fn new() -> Self {
        Counters {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
        }
    }

    /// This thread's stripe, and whether it holds it alone.
    fn stripe(&self) -> (&Stripe, bool) {
        let i = stripe_index();
        (&self.stripes[i], i < OWNED)
    }

    /// `messages` puts of `bytes` in all that took `elapsed` (each message is charged it).
    #[inline]
    pub(crate) fn put(&self, messages: u64, bytes: u64, elapsed: Duration) {
        let (s, owned) = self.stripe();
        // No count of puts of its own: the latency buckets count every put.
        add(&s.put_bytes, bytes, owned);
        add(&s.latency[bucket_of(elapsed.as_nanos() as u64)], messages, owned);
    }

    /// One `get` that returned `messages` messages of `bytes` record bytes.
    #[inline]
    pub(crate) fn get(&self, messages: u64, bytes: u64) {
        let (s, owned) = self.stripe();
        add(&s.gets, 1, owned);
        add(&s.got_messages, messages, owned);
        add(&s.got_bytes, bytes, owned);
    }

    fn sum(&self, field: impl Fn(&Stripe) -> &AtomicU64) -> u64 {
        self.stripes.iter().map(|s| field(s).load(Ordering::Relaxed)).sum()
    }

    /// Fills the counter part of a snapshot.
    pub(crate) fn snapshot_into(&self, stats: &mut StoreStats) {
        stats.put_bytes = self.sum(|s| &s.put_bytes);
        stats.gets = self.sum(|s| &s.gets);
        stats.got_messages = self.sum(|s| &s.got_messages);
        stats.got_bytes = self.sum(|s| &s.got_bytes);
        stats.put_latency = LatencyHistogram::from_counts((0..BUCKETS).map(|b| self.sum(|s| &s.latency[b])).collect());
        stats.puts = stats.put_latency.count();
    }
}

/// A snapshot of a store's activity and state (see [`MessageStore::stats`](crate::MessageStore::stats)).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Messages appended by `put`, `put_async` and `put_batch` since open.
    pub puts: u64,
    /// Bytes of their records.
    pub put_bytes: u64,
    /// How long `put` and `put_batch` took, from the call to the outcome (each message of a
    /// batch is charged the batch's time); `put_async` counts its append only.
    pub put_latency: LatencyHistogram,
    /// `get` calls since open.
    pub gets: u64,
    /// Messages they returned.
    pub got_messages: u64,
    /// Bytes of those messages' records.
    pub got_bytes: u64,
    /// The commit log's first offset.
    pub min_commit_log_offset: u64,
    /// One past its last byte.
    pub max_commit_log_offset: u64,
    /// Bytes appended but not yet in the consume queues and index.
    pub dispatch_lag_bytes: u64,
    /// Bytes appended but not yet flushed.
    pub flush_lag_bytes: u64,
    /// Milliseconds between the newest append and the newest record known durable (0 when all
    /// is durable).
    pub flush_lag_ms: u64,
    /// Commit-log segment files in the log.
    pub commit_log_segments: usize,
    /// Consume queues.
    pub consume_queues: usize,
    /// Their files.
    pub consume_queue_segments: usize,
    /// Disk usage as retention measures it (0.0-1.0); `None` if the probe failed.
    pub disk_usage: Option<f64>,
    /// The usage above which expired segments go at any hour.
    pub disk_usage_retention_ratio: f64,
    /// The usage above which segments go whatever their age.
    pub disk_usage_forced_ratio: f64,
    /// The last retention pass.
    pub last_retention: Option<RetentionPass>,
    /// Segments waiting in the recycle bin.
    pub segments_in_recycle_bin: usize,
    /// Segments reused from the bin since open.
    pub segments_recycled: u64,
    /// Commit-log segment files created since open (reused ones not counted).
    pub segments_created: u64,
    /// How long each sync of the commit log took (an msync or fdatasync of a range, whichever
    /// policy or call asked for it), since open.
    pub sync_latency: LatencyHistogram,
    /// Retention passes run since open.
    pub retention_passes: u64,
    /// Each connected slave of a master and what it holds; its lag is
    /// `max_commit_log_offset - acked_offset`.
    pub replicas: Vec<ReplicaStatus>,
}

/// The metric names [`StoreStats::publish_metrics`] writes, with what each is. Counters count
/// since the store opened; gauges are the value at the snapshot.
pub const METRICS: &[(&str, &str)] = &[
    ("mqstore_puts_total", "counter: messages appended"),
    ("mqstore_put_bytes_total", "counter: bytes of their records"),
    ("mqstore_gets_total", "counter: get calls"),
    ("mqstore_got_messages_total", "counter: messages gets returned"),
    ("mqstore_got_bytes_total", "counter: bytes of those records"),
    (
        "mqstore_segments_recycled_total",
        "counter: commit-log segments reused from the recycle bin",
    ),
    (
        "mqstore_segments_created_total",
        "counter: commit-log segment files created (reused ones not counted)",
    ),
    ("mqstore_syncs_total", "counter: syncs of the commit log"),
    ("mqstore_retention_passes_total", "counter: retention passes run"),
    (
        "mqstore_put_latency_seconds",
        "gauge, label quantile (0.5, 0.99, 0.999, 1): put latency since open",
    ),
    (
        "mqstore_sync_latency_seconds",
        "gauge, label quantile (0.5, 0.99, 0.999, 1): commit-log sync latency since open",
    ),
    (
        "mqstore_replication_lag_bytes",
        "gauge, label slave (its name): bytes of the master's log the slave does not hold yet",
    ),
    ("mqstore_commit_log_min_offset", "gauge: the commit log's first offset"),
    ("mqstore_commit_log_max_offset", "gauge: one past its last byte"),
    (
        "mqstore_dispatch_lag_bytes",
        "gauge: appended, not yet in the consume queues and index",
    ),
    ("mqstore_flush_lag_bytes", "gauge: appended, not yet flushed"),
    (
        "mqstore_flush_lag_seconds",
        "gauge: newest append minus newest durable record",
    ),
    ("mqstore_commit_log_segments", "gauge: commit-log segment files"),
    ("mqstore_consume_queues", "gauge: consume queues"),
    ("mqstore_consume_queue_segments", "gauge: their files"),
    ("mqstore_recycle_bin_segments", "gauge: segments waiting for reuse"),
    (
        "mqstore_disk_usage_ratio",
        "gauge: disk usage as retention measures it (absent if the probe failed)",
    ),
    (
        "mqstore_disk_usage_retention_ratio",
        "gauge: usage above which expired segments go at any hour",
    ),
    (
        "mqstore_disk_usage_forced_ratio",
        "gauge: usage above which segments go whatever their age",
    ),
    (
        "mqstore_retention_last_pass_segments_deleted",
        "gauge: segments the last retention pass deleted",
    ),
    ("mqstore_retention_last_pass_bytes_deleted", "gauge: bytes it deleted"),
];

impl StoreStats {
    /// Writes the snapshot to the [`metrics`] facade under the names of [`METRICS`], so a
    /// broker's exporter (Prometheus, StatsD...) shows them. Call it on the broker's own
    /// interval, e.g. with each scrape; without an installed recorder it does nothing. The put
    /// path never touches the facade: it keeps its counters lock-free and this publishes them.
    pub fn publish_metrics(&self) {
        use metrics::{counter, gauge};
        counter!("mqstore_puts_total").absolute(self.puts);
        counter!("mqstore_put_bytes_total").absolute(self.put_bytes);
        counter!("mqstore_gets_total").absolute(self.gets);
        counter!("mqstore_got_messages_total").absolute(self.got_messages);
        counter!("mqstore_got_bytes_total").absolute(self.got_bytes);
        counter!("mqstore_segments_recycled_total").absolute(self.segments_recycled);
        counter!("mqstore_segments_created_total").absolute(self.segments_created);
        counter!("mqstore_syncs_total").absolute(self.sync_latency.count());
        counter!("mqstore_retention_passes_total").absolute(self.retention_passes);
        for (label, q) in [("0.5", 0.5), ("0.99", 0.99), ("0.999", 0.999), ("1", 1.0)] {
            if let Some(d) = self.put_latency.quantile(q) {
                gauge!("mqstore_put_latency_seconds", "quantile" => label).set(d.as_secs_f64());
            }
            if let Some(d) = self.sync_latency.quantile(q) {
                gauge!("mqstore_sync_latency_seconds", "quantile" => label).set(d.as_secs_f64());
            }
        }
        for r in &self.replicas {
            let lag = self.max_commit_log_offset.saturating_sub(r.acked_offset);
            gauge!("mqstore_replication_lag_bytes", "slave" => r.name.clone()).set(lag as f64);
        }
        gauge!("mqstore_commit_log_min_offset").set(self.min_commit_log_offset as f64);
        gauge!("mqstore_commit_log_max_offset").set(self.max_commit_log_offset as f64);
        gauge!("mqstore_dispatch_lag_bytes").set(self.dispatch_lag_bytes as f64);
        gauge!("mqstore_flush_lag_bytes").set(self.flush_lag_bytes as f64);
        gauge!("mqstore_flush_lag_seconds").set(self.flush_lag_ms as f64 / 1000.0);
        gauge!("mqstore_commit_log_segments").set(self.commit_log_segments as f64);
        gauge!("mqstore_consume_queues").set(self.consume_queues as f64);
        gauge!("mqstore_consume_queue_segments").set(self.consume_queue_segments as f64);
        gauge!("mqstore_recycle_bin_segments").set(self.segments_in_recycle_bin as f64);
        if let Some(usage) = self.disk_usage {
            gauge!("mqstore_disk_usage_ratio").set(usage);
        }
        gauge!("mqstore_disk_usage_retention_ratio").set(self.disk_usage_retention_ratio);
        gauge!("mqstore_disk_usage_forced_ratio").set(self.disk_usage_forced_ratio);
        if let Some(pass) = &self.last_retention {
            gauge!("mqstore_retention_last_pass_segments_deleted").set(pass.segments_deleted as f64);
            gauge!("mqstore_retention_last_pass_bytes_deleted").set(pass.bytes_deleted as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_quantiles() {
        let c = Counters::new();
        for _ in 0..98 {
            c.put(1, 100, Duration::from_nanos(300));
        }
        c.put(2, 200, Duration::from_millis(3));
        let mut s = StoreStats::default();
        c.snapshot_into(&mut s);
        assert_eq!((s.puts, s.put_bytes), (100, 10_000));
        assert_eq!(s.put_latency.count(), 100);
        // 300 ns lies in [256, 512) ns.
        assert_eq!(s.put_latency.quantile(0.5), Some(Duration::from_nanos(512)));
        assert_eq!(s.put_latency.quantile(0.98), Some(Duration::from_nanos(512)));
        // 3 ms lies in [2^21, 2^22) ns.
        assert_eq!(s.put_latency.quantile(0.99), Some(Duration::from_nanos(1 << 22)));
        assert_eq!(s.put_latency.quantile(1.0), Some(Duration::from_nanos(1 << 22)));
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(LatencyHistogram::default().quantile(0.5), None);
    }

    #[test]
    fn threads_add_up() {
        let c = std::sync::Arc::new(Counters::new());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let c = std::sync::Arc::clone(&c);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.get(3, 30);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let mut s = StoreStats::default();
        c.snapshot_into(&mut s);
        assert_eq!((s.gets, s.got_messages, s.got_bytes), (8000, 24_000, 240_000));
    }
}
