//! `MessageStore::stats`: counts of puts and gets, the put latency histogram, lags, files, disk
//! usage and retention, as a dashboard reads them every second while producers run.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mqstore::{DiskUsage, FlushPolicy, Message, MessageStore, RetentionConfig, StoreConfig};

fn config(dir: &std::path::Path) -> StoreConfig {
    common::small_config(dir).index_size(16, 200).retention(
        RetentionConfig::default()
            .enabled(false)
            .delete_when([])
            .file_reserved_time(Duration::ZERO),
    )
}

#[test]
fn counts_puts_gets_files_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    let fresh = store.stats();
    assert_eq!((fresh.puts, fresh.gets, fresh.put_latency.count()), (0, 0, 0));
    assert_eq!(fresh.put_latency.quantile(0.99), None);

    let mut bytes = 0u64;
    for i in 0..300u64 {
        let r = store.put(Message::new("s", (i % 3) as u32, vec![1u8; 500])).unwrap();
        bytes += u64::from(r.wrote_bytes);
    }
    let rs = store
        .put_batch((0..10).map(|_| Message::new("s", 0, vec![2u8; 100])).collect())
        .unwrap();
    bytes += rs.iter().map(|r| u64::from(r.wrote_bytes)).sum::<u64>();
    store.put_async(Message::new("s", 1, vec![3u8; 10])).unwrap().wait();
    let g = store.get("s", 0, 0, 32).unwrap();
    let _ = store.get("s", 0, 10_000, 32).unwrap();
    store.flush().unwrap();
    assert!(store.wait_dispatched(Duration::from_secs(10)));

    let s = store.stats();
    assert_eq!(s.puts, 311);
    assert!(s.put_bytes > bytes, "every record's bytes, the async put's included");
    assert_eq!(s.put_latency.count(), 311);
    let p50 = s.put_latency.quantile(0.5).unwrap();
    assert!(p50 <= s.put_latency.quantile(0.999).unwrap());
    assert_eq!(s.gets, 2);
    assert_eq!(s.got_messages, g.messages.len() as u64);
    assert_eq!(s.got_bytes, g.messages.iter().map(|m| u64::from(m.size())).sum::<u64>());
    assert_eq!(s.max_commit_log_offset, store.max_commit_log_offset());
    assert_eq!((s.dispatch_lag_bytes, s.flush_lag_bytes), (0, 0));
    assert_eq!(s.flush_lag_ms, 0);
    // 64 KiB segments hold about a hundred records of 500 bytes.
    assert_eq!(s.commit_log_segments as u64, s.max_commit_log_offset / (64 << 10) + 1);
    assert_eq!(s.consume_queues, 3);
    assert!(
        s.consume_queue_segments >= 3 * 2,
        "64 units a file: {}",
        s.consume_queue_segments
    );
    assert!(s.disk_usage.is_some_and(|u| (0.0..=1.0).contains(&u)));
    assert_eq!((s.disk_usage_retention_ratio, s.disk_usage_forced_ratio), (0.75, 0.85));
    assert_eq!(s.last_retention, None);
    assert_eq!(s.retention_passes, 0);
    // Every segment the log holds was created here (none came from a recycle bin), and the one
    // prepared ahead of need may be created already.
    let segments = s.commit_log_segments as u64;
    assert!(
        (segments..=segments + 1).contains(&s.segments_created),
        "{} created for {segments}",
        s.segments_created
    );
    // `flush` synced what the async policy had not yet: at least one sync, each counted once.
    assert!(s.sync_latency.count() >= 1);
    assert!(s.replicas.is_empty(), "a lone master has no slaves");

    let pass = store.delete_expired_now().unwrap();
    let s = store.stats();
    assert_eq!(s.last_retention, Some(pass.clone()));
    assert_eq!(s.retention_passes, 1);
    assert!(pass.segments_deleted > 0);
    assert_eq!(s.min_commit_log_offset, store.min_commit_log_offset());
    assert_eq!(s.segments_in_recycle_bin, pass.segments_recycled.min(2));
    store.close().unwrap();
}

/// A dashboard polling while producers run: counts only grow, and end exact.
#[test]
fn snapshots_while_producers_run() {
    let dir = tempfile::tempdir().unwrap();
    let retention = RetentionConfig::default()
        .delete_when([])
        .interval(Duration::from_millis(5), Duration::ZERO)
        .disk_usage(DiskUsage::Budget(8 * (64 << 10)))
        .disk_space_clean_forcibly_ratio(0.5)
        .delete_file_batch_max(64);
    let config = config(dir.path())
        .retention(retention)
        .flush_policy(FlushPolicy::asynchronous().with_interval(
            Duration::from_millis(5),
            0,
            Duration::from_millis(50),
        ));
    let store = Arc::new(MessageStore::open(config).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..3)
        .map(|p| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for _ in 0..5000 {
                    store.put(Message::new("s", p, vec![7u8; 300])).unwrap();
                }
            })
        })
        .collect();
    let poller = {
        let (store, done) = (Arc::clone(&store), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut last = 0;
            let mut polls = 0;
            while !done.load(Ordering::Relaxed) {
                let s = store.stats();
                assert!(s.puts >= last, "counts never go back");
                assert!(s.min_commit_log_offset <= s.max_commit_log_offset);
                last = s.puts;
                polls += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            polls
        })
    };
    producers.into_iter().for_each(|p| p.join().unwrap());
    done.store(true, Ordering::Relaxed);
    assert!(poller.join().unwrap() > 0);
    let s = store.stats();
    assert_eq!(s.puts, 15_000);
    assert_eq!(s.put_latency.count(), 15_000);
    assert!(
        s.segments_recycled > 0
            || s.last_retention.is_some_and(|p| p.segments_deleted > 0)
            || s.min_commit_log_offset > 0
    );
    store.close().unwrap();
}

#[test]
fn publishes_the_snapshot_to_the_metrics_facade() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    let mut bytes = 0u64;
    for i in 0..40u64 {
        let r = store
            .put(Message::new("metrics", (i % 2) as u32, vec![7u8; 50 + i as usize]))
            .unwrap();
        bytes += u64::from(r.wrote_bytes);
    }
    assert!(store.wait_dispatched(Duration::from_secs(10)));
    let got = store.get("metrics", 0, 0, 100).unwrap();
    assert_eq!(got.messages.len(), 20);

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || store.publish_metrics());
    let published: std::collections::HashMap<String, DebugValue> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let k = key.key();
            let labels: Vec<String> = k.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            (format!("{}{:?}", k.name(), labels), value)
        })
        .collect();
    let counter = |name: &str| match published.get(&format!("{name}[]")) {
        Some(DebugValue::Counter(v)) => *v,
        other => panic!("{name}: {other:?} in {published:?}"),
    };
    let gauge = |name: &str| match published.get(name) {
        Some(DebugValue::Gauge(v)) => v.0,
        other => panic!("{name}: {other:?} in {published:?}"),
    };
    assert_eq!(counter("mqstore_puts_total"), 40);
    assert_eq!(counter("mqstore_put_bytes_total"), bytes);
    assert_eq!(counter("mqstore_gets_total"), 1);
    assert_eq!(counter("mqstore_got_messages_total"), 20);
    assert!(counter("mqstore_segments_created_total") >= 1);
    assert_eq!(counter("mqstore_retention_passes_total"), 0);
    assert_eq!(counter("mqstore_syncs_total"), store.stats().sync_latency.count());
    assert_eq!(
        gauge("mqstore_commit_log_max_offset[]"),
        store.max_commit_log_offset() as f64
    );
    assert_eq!(gauge("mqstore_consume_queues[]"), 2.0);
    assert_eq!(gauge("mqstore_dispatch_lag_bytes[]"), 0.0);
    let p50 = gauge("mqstore_put_latency_seconds[\"quantile=0.5\"]");
    let max = gauge("mqstore_put_latency_seconds[\"quantile=1\"]");
    assert!(p50 > 0.0 && p50 <= max, "{p50} {max}");
    // Every name published is documented in stats::METRICS.
    for key in published.keys() {
        let name = key.split('[').next().unwrap();
        assert!(
            mqstore::stats::METRICS.iter().any(|(m, _)| *m == name),
            "{name} undocumented"
        );
    }
    store.close().unwrap();
}

/// Under the sync policy every put waits for a sync, and the sync histogram counts each.
#[test]
fn sync_latency_counts_the_syncs_puts_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path()).flush_policy(FlushPolicy::sync())).unwrap();
    let before = store.stats().sync_latency.count();
    for i in 0..20u64 {
        store.put(Message::new("s", 0, vec![i as u8; 200])).unwrap();
    }
    let s = store.stats();
    let syncs = s.sync_latency.count() - before;
    // Each put's bytes arrive after the previous put's sync: one sync each at least (a
    // checkpoint's flush racing the leader may split one in two).
    assert!((20..=40).contains(&syncs), "{syncs} syncs for 20 sequential sync puts");
    assert!(s.sync_latency.quantile(0.5).unwrap() <= s.sync_latency.quantile(1.0).unwrap());
    store.close().unwrap();
}
