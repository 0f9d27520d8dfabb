//! Group commit: a put acknowledged `Ok` is always covered by a sync that completed before it
//! was woken; many producers share syncs; a slow disk gives `FlushDiskTimeout` with the record
//! still appended. Also: a policy implemented outside the crate plugs in.

mod common;

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use common::read_queue;
use mqstore::flush::{Completion, FlushOutcome, FlushTarget, Flusher, GroupCommit};
use mqstore::{FlushPolicy, Message, MessageStore, PutStatus, StoreConfig};
use parking_lot::Mutex;

/// Wraps the commit log: records the highest offset a *completed* sync covered, and can make
/// every sync slow.
struct Instrumented {
    inner: Arc<dyn FlushTarget>,
    synced: Arc<AtomicU64>,
    syncs: Arc<AtomicU64>,
    delay: Duration,
}

impl FlushTarget for Instrumented {
    fn written_offset(&self) -> u64 {
        self.inner.written_offset()
    }
    fn flushed_offset(&self) -> u64 {
        self.inner.flushed_offset()
    }
    fn commit(&self) -> u64 {
        self.inner.commit()
    }
    fn flush(&self, least_pages: u64) -> io::Result<u64> {
        std::thread::sleep(self.delay);
        let durable = self.inner.flush(least_pages)?;
        self.synced.fetch_max(durable, Ordering::SeqCst);
        self.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(durable)
    }
}

/// The built-in group commit, driven through the instrumented target; checks on every wake-up
/// that the put's bytes were covered by a completed sync.
struct Checked {
    group: GroupCommit,
    synced: Arc<AtomicU64>,
    syncs: Arc<AtomicU64>,
    delay: Duration,
    violations: Arc<AtomicU64>,
}

impl Flusher for Checked {
    fn start(&self, target: Arc<dyn FlushTarget>) -> io::Result<()> {
        self.group.start(Arc::new(Instrumented {
            inner: target,
            synced: Arc::clone(&self.synced),
            syncs: Arc::clone(&self.syncs),
            delay: self.delay,
        }))
    }
    fn after_append(&self, end_offset: u64) -> FlushOutcome {
        let outcome = self.group.after_append(end_offset);
        if outcome == FlushOutcome::Durable && self.synced.load(Ordering::SeqCst) < end_offset {
            self.violations.fetch_add(1, Ordering::SeqCst);
        }
        outcome
    }
    fn after_append_async(&self, end_offset: u64, done: Completion) {
        // The completion is opaque out here: the tests check coverage when the wait returns
        // (the crate's own unit test checks it at the moment of completion).
        self.group.after_append_async(end_offset, done);
    }
    fn stop(&self) {
        self.group.stop();
    }
}

struct Probes {
    synced: Arc<AtomicU64>,
    syncs: Arc<AtomicU64>,
    violations: Arc<AtomicU64>,
}

fn checked_policy(timeout: Duration, delay: Duration) -> (FlushPolicy, Probes) {
    let synced = Arc::new(AtomicU64::new(0));
    let syncs = Arc::new(AtomicU64::new(0));
    let violations = Arc::new(AtomicU64::new(0));
    let flusher = Checked {
        group: GroupCommit::new(timeout),
        synced: Arc::clone(&synced),
        syncs: Arc::clone(&syncs),
        delay,
        violations: Arc::clone(&violations),
    };
    (
        FlushPolicy::custom(flusher),
        Probes {
            synced,
            syncs,
            violations,
        },
    )
}

#[test]
fn every_ok_is_covered_by_a_completed_sync_and_syncs_are_shared() {
    let dir = tempfile::tempdir().unwrap();
    let (policy, probes) = checked_policy(Duration::from_secs(10), Duration::from_micros(500));
    let store = MessageStore::open(common::small_config(dir.path()).flush_policy(policy)).unwrap();
    const THREADS: u64 = 16;
    const PER: u64 = 150;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let store = &store;
            s.spawn(move || {
                for i in 0..PER {
                    let r = store
                        .put(Message::new("sync", (t % 4) as u32, vec![t as u8; 200 + i as usize]))
                        .unwrap();
                    assert_eq!(r.status, PutStatus::Ok);
                    assert!(store.flushed_commit_log_offset() >= r.commit_log_offset + r.wrote_bytes as u64);
                }
            });
        }
    });
    assert_eq!(
        probes.violations.load(Ordering::SeqCst),
        0,
        "a put was acknowledged before its sync"
    );
    let syncs = probes.syncs.load(Ordering::SeqCst);
    // Group commit: far fewer syncs than puts (each sync takes 0.5 ms while 16 producers wait).
    assert!(syncs < THREADS * PER / 2, "{syncs} syncs for {} puts", THREADS * PER);
    let total: usize = (0..4).map(|q| read_queue(&store, "sync", q).len()).sum();
    assert_eq!(total as u64, THREADS * PER);
}

#[test]
fn slow_disk_gives_flush_disk_timeout_with_the_record_appended() {
    let dir = tempfile::tempdir().unwrap();
    let (policy, _probes) = checked_policy(Duration::from_millis(20), Duration::from_millis(300));
    let store = MessageStore::open(common::small_config(dir.path()).flush_policy(policy)).unwrap();
    std::thread::scope(|s| {
        // The first put leads a sync that takes 300 ms: it returns once its bytes are durable.
        let leader = s.spawn(|| store.put(Message::new("slow", 0, b"first".to_vec())).unwrap());
        std::thread::sleep(Duration::from_millis(50));
        // A put arriving meanwhile waits for the next sync, longer than its 20 ms timeout.
        let r = store.put(Message::new("slow", 0, b"late".to_vec())).unwrap();
        assert_eq!(r.status, PutStatus::FlushDiskTimeout);
        // Appended and visible: FlushDiskTimeout is not a rollback.
        let g = store.get("slow", 0, r.queue_offset, 1).unwrap();
        assert_eq!(g.messages[0].body(), b"late");
        assert_eq!(leader.join().unwrap().status, PutStatus::Ok);
    });
    store.close().unwrap();
}

/// A policy written outside the crate: flush inline on every put, and count.
#[derive(Default)]
struct Counts {
    target: Mutex<Option<Arc<dyn FlushTarget>>>,
    flushes: AtomicU64,
}

#[derive(Clone, Default)]
struct FlushEveryPut(Arc<Counts>);

impl Flusher for FlushEveryPut {
    fn start(&self, target: Arc<dyn FlushTarget>) -> io::Result<()> {
        *self.0.target.lock() = Some(target);
        Ok(())
    }
    fn after_append(&self, end_offset: u64) -> FlushOutcome {
        let Some(target) = self.0.target.lock().clone() else {
            return FlushOutcome::Failed;
        };
        self.0.flushes.fetch_add(1, Ordering::SeqCst);
        match target.flush(0) {
            Ok(durable) if durable >= end_offset => FlushOutcome::Durable,
            Ok(_) => FlushOutcome::TimedOut,
            Err(_) => FlushOutcome::Failed,
        }
    }
    fn stop(&self) {}
}

#[test]
fn custom_policy_from_outside_the_crate() {
    let dir = tempfile::tempdir().unwrap();
    let flusher = FlushEveryPut::default();
    let store = MessageStore::open(
        StoreConfig::new(dir.path())
            .commit_log_segment_size(64 * 1024)
            .flush_policy(FlushPolicy::custom(flusher.clone())),
    )
    .unwrap();
    for i in 0..50u64 {
        let r = store.put(Message::new("custom", 0, i.to_be_bytes().to_vec())).unwrap();
        assert_eq!(r.status, PutStatus::Ok);
        assert!(store.flushed_commit_log_offset() >= r.commit_log_offset + r.wrote_bytes as u64);
    }
    assert_eq!(flusher.0.flushes.load(Ordering::SeqCst), 50);
    assert_eq!(read_queue(&store, "custom", 0).len(), 50);
}

/// Zero-filled segments (prepared in the background, cut short when the writer needs them
/// first) and sync through the default write buffers, then through none (appends into the file
/// mapping): every acknowledged record reads back, across roll-overs, before and after a reopen.
#[test]
fn zero_filled_segments_and_write_buffers_read_back_across_rolls_and_reopen() {
    sync_round_trip(FlushPolicy::sync());
}

#[test]
fn sync_without_write_buffers_reads_back_across_rolls_and_reopen() {
    sync_round_trip(FlushPolicy::sync().with_buffers(0, false));
}

fn sync_round_trip(policy: FlushPolicy) {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        StoreConfig::new(dir.path())
            .flush_policy(policy.clone())
            .zero_fill_segments(true)
            .commit_log_segment_size(64 * 1024)
            .consume_queue_units_per_segment(64)
    };
    let body = |i: u64| common::body(i, 700 + (i as usize * 37) % 900);
    let store = MessageStore::open(config()).unwrap();
    for i in 0..400u64 {
        let r = store.put(Message::new("zf", (i % 3) as u32, body(i))).unwrap();
        assert_eq!(r.status, PutStatus::Ok);
        assert!(store.flushed_commit_log_offset() >= r.commit_log_offset + r.wrote_bytes as u64);
    }
    let check = |store: &MessageStore| {
        for q in 0..3u32 {
            let got = read_queue(store, "zf", q);
            let want: Vec<u64> = (0..400u64).filter(|i| i % 3 == u64::from(q)).collect();
            assert_eq!(got.len(), want.len());
            for (m, i) in got.iter().zip(want) {
                assert_eq!(m.body(), &body(i)[..]);
            }
        }
    };
    check(&store);
    assert!(
        store.max_commit_log_offset() > 4 * 64 * 1024,
        "the test must cross several segments"
    );
    store.close().unwrap();
    let store = MessageStore::open(config()).unwrap();
    check(&store);
}

/// A crash whose recovery cuts the log back by more than a segment: the next segments are
/// created afresh with write buffers, and their bytes must still reach the file and be synced
/// (the commit position once stayed at the old end, and every later put timed out).
#[test]
fn puts_after_recovery_cut_the_log_back_a_segment_are_durable() {
    const SEG: u64 = 8 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        StoreConfig::new(dir.path())
            .flush_policy(
                FlushPolicy::sync()
                    .with_buffers(2, false)
                    .with_timeout(Duration::from_secs(5)),
            )
            .commit_log_segment_size(SEG)
            .consume_queue_units_per_segment(64)
    };
    let store = MessageStore::open(config()).unwrap();
    for i in 0..40u64 {
        let r = store.put(Message::new("cut", 0, common::body(i, 500))).unwrap();
        assert_eq!(r.status, PutStatus::Ok);
    }
    assert!(store.max_commit_log_offset() > 2 * SEG);
    store.halt();
    drop(store);
    // Lose everything from the middle of the first segment on, as zeros: the log now ends there.
    for start in [0, SEG, 2 * SEG] {
        let path = dir.path().join(format!("commitlog/{start:020}"));
        if let Ok(mut bytes) = std::fs::read(&path) {
            let from = if start == 0 { SEG as usize / 2 } else { 0 };
            bytes[from..].fill(0);
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let store = MessageStore::open(config()).unwrap();
    let kept = read_queue(&store, "cut", 0).len() as u64;
    assert!(kept > 0 && kept < 40);
    for i in 0..40u64 {
        let r = store.put(Message::new("cut", 0, common::body(100 + i, 500))).unwrap();
        assert_eq!(r.status, PutStatus::Ok, "put {i} after the cut");
        assert!(store.flushed_commit_log_offset() >= r.commit_log_offset + r.wrote_bytes as u64);
    }
    assert!(
        store.max_commit_log_offset() > 2 * SEG,
        "the puts must roll into new segments"
    );
    assert_eq!(read_queue(&store, "cut", 0).len() as u64, kept + 40);
}

/// Puts in flight with `put_async`: each completes `Ok` only once a completed sync covers it,
/// syncs are shared among them as among producer threads, and none is lost.
#[test]
fn pending_puts_complete_once_synced_and_share_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let (policy, probes) = checked_policy(Duration::from_secs(10), Duration::from_micros(500));
    let store = MessageStore::open(common::small_config(dir.path()).flush_policy(policy)).unwrap();
    const THREADS: u64 = 3;
    const PER: u64 = 300;
    const IN_FLIGHT: usize = 32;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (store, synced) = (&store, &probes.synced);
            s.spawn(move || {
                let mut in_flight = VecDeque::new();
                let check = |p: mqstore::PendingPut| {
                    let end = p.commit_log_offset() + u64::from(p.wrote_bytes());
                    let r = p.wait();
                    assert_eq!(r.status, PutStatus::Ok);
                    assert!(
                        synced.load(Ordering::SeqCst) >= end,
                        "completed before a sync covered it"
                    );
                    assert!(store.flushed_commit_log_offset() >= end);
                };
                for i in 0..PER {
                    let body = vec![t as u8; 100 + i as usize];
                    in_flight.push_back(store.put_async(Message::new("pipe", (t % 2) as u32, body)).unwrap());
                    if in_flight.len() == IN_FLIGHT {
                        check(in_flight.pop_front().unwrap());
                    }
                }
                in_flight.into_iter().for_each(check);
            });
        }
    });
    assert_eq!(probes.violations.load(Ordering::SeqCst), 0);
    let syncs = probes.syncs.load(Ordering::SeqCst);
    // Dozens in flight per sync of 0.5 ms: far fewer syncs than puts.
    assert!(syncs < THREADS * PER / 4, "{syncs} syncs for {} puts", THREADS * PER);
    let total: usize = (0..2).map(|q| read_queue(&store, "pipe", q).len()).sum();
    assert_eq!(total as u64, THREADS * PER);
    store.close().unwrap();
}

#[test]
fn slow_disk_times_a_pending_put_out_with_the_record_appended() {
    let dir = tempfile::tempdir().unwrap();
    let (policy, _probes) = checked_policy(Duration::from_millis(20), Duration::from_millis(300));
    let store = MessageStore::open(common::small_config(dir.path()).flush_policy(policy)).unwrap();
    std::thread::scope(|s| {
        // A producer leads a sync that takes 300 ms.
        let leader = s.spawn(|| store.put(Message::new("slow", 0, b"first".to_vec())).unwrap());
        std::thread::sleep(Duration::from_millis(50));
        // A put that does not wait, listed meanwhile: the service thread times it out after
        // 20 ms, while that sync still runs.
        let late = store.put_async(Message::new("slow", 0, b"late".to_vec())).unwrap();
        let queue_offset = late.queue_offset();
        assert_eq!(late.wait().status, PutStatus::FlushDiskTimeout);
        let g = store.get("slow", 0, queue_offset, 1).unwrap();
        assert_eq!(g.messages[0].body(), b"late");
        assert_eq!(leader.join().unwrap().status, PutStatus::Ok);
    });
    store.close().unwrap();
}

/// Wakes the test's thread: the smallest executor there is.
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: Future>(fut: F) -> (F::Output, u64) {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    let mut polls = 0;
    loop {
        polls += 1;
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return (out, polls);
        }
        std::thread::park();
    }
}

/// A broker's runtime moves futures between threads and polls them pinned in place.
#[test]
fn a_pending_put_can_cross_threads() {
    fn movable<T: Send + Sync + Unpin + 'static>() {}
    movable::<mqstore::PendingPut>();
}

#[test]
fn a_pending_put_is_a_future_woken_by_its_sync() {
    let dir = tempfile::tempdir().unwrap();
    let (policy, probes) = checked_policy(Duration::from_secs(10), Duration::from_millis(30));
    let store = MessageStore::open(common::small_config(dir.path()).flush_policy(policy)).unwrap();
    for i in 0..5u64 {
        let pending = store
            .put_async(Message::new("fut", 0, i.to_be_bytes().to_vec()))
            .unwrap();
        let end = pending.commit_log_offset() + u64::from(pending.wrote_bytes());
        let (r, polls) = block_on(pending);
        assert_eq!(r.status, PutStatus::Ok);
        assert_eq!(r.queue_offset, i);
        assert!(probes.synced.load(Ordering::SeqCst) >= end);
        // A sync takes 30 ms: the first poll found it pending, and the sync's end woke it.
        assert!(polls >= 2, "polled {polls} times");
    }
    store.close().unwrap();
}

#[test]
fn pending_puts_under_policies_that_do_not_wait_are_done_at_once() {
    let flusher = FlushEveryPut::default();
    for policy in [
        FlushPolicy::asynchronous(),
        FlushPolicy::buffered(),
        FlushPolicy::custom(flusher.clone()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = MessageStore::open(common::small_config(dir.path()).flush_policy(policy)).unwrap();
        for i in 0..20u64 {
            let pending = store
                .put_async(Message::new("now", 0, i.to_be_bytes().to_vec()))
                .unwrap();
            // The asynchronous policies never wait; the custom one, through the trait's
            // default method, has waited already (it flushes inline).
            assert!(pending.is_done());
            assert_eq!(pending.wait().status, PutStatus::Ok);
        }
        assert_eq!(read_queue(&store, "now", 0).len(), 20);
        store.close().unwrap();
    }
    assert_eq!(flusher.0.flushes.load(Ordering::SeqCst), 20);
}

/// Closing with puts in flight, some of them dropped: close returns, every pending put gets an
/// outcome, and every appended message is there after a reopen.
#[test]
fn close_with_puts_in_flight_loses_nothing_appended() {
    let dir = tempfile::tempdir().unwrap();
    let config = || common::small_config(dir.path()).flush_policy(FlushPolicy::sync());
    let store = MessageStore::open(config()).unwrap();
    let mut kept = Vec::new();
    for i in 0..400u64 {
        let pending = store
            .put_async(Message::new("close", 0, i.to_be_bytes().to_vec()))
            .unwrap();
        if i % 3 == 0 {
            kept.push(pending);
        }
    }
    store.close().unwrap();
    for pending in kept {
        let r = pending.wait();
        assert!(matches!(r.status, PutStatus::Ok | PutStatus::FlushDiskTimeout), "{r:?}");
    }
    drop(store);
    let store = MessageStore::open(config()).unwrap();
    let got = read_queue(&store, "close", 0);
    assert_eq!(got.len(), 400);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.body(), (i as u64).to_be_bytes());
    }
    store.close().unwrap();
}
