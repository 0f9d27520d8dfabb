//! Retention: expired segments go oldest first, by age, by disk usage and by budget; the
//! consume-queue and index files below the log's new start follow; readers in other threads
//! never see anything but intact messages and the documented statuses; a store after retention
//! (and after a crash in the middle of it) opens cleanly and verifies clean; deleted segments are
//! recycled.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{commit_log_files, segment_files};
use mqstore::verify::verify_store;
use mqstore::{
    CommitStatus, DiskUsage, FlushPolicy, GetStatus, Message, MessageStore, RetentionConfig, RetentionPass,
    StoreConfig, StoredMessage,
};

const SEGMENT: u64 = 64 * 1024;
const TOPICS: [&str; 2] = ["orders", "audit"];
const QUEUES: u32 = 3;

/// Small segments, queue files and index files, so that a few thousand messages make many of
/// each; retention only when asked unless `retention` says otherwise.
fn config(dir: &Path, retention: RetentionConfig) -> StoreConfig {
    StoreConfig::new(dir)
        .commit_log_segment_size(SEGMENT)
        .consume_queue_units_per_segment(32)
        .index_size(16, 200)
        .retention(retention)
}

fn manual() -> RetentionConfig {
    // Passes only when a test asks, and the host's disk, however full, never forces one: a
    // budget nothing here comes near.
    RetentionConfig::default()
        .enabled(false)
        .delete_when([])
        .disk_usage(DiskUsage::Budget(1 << 40))
}

/// The body of the message at `queue_offset` of (topic, queue): a reader can check any message
/// it gets without a model.
fn body_of(topic: &str, queue: u32, queue_offset: u64) -> Vec<u8> {
    let head = format!("{topic}/{queue}/{queue_offset}/");
    let mut b = head.into_bytes();
    let fill = (queue_offset as usize * 7 + queue as usize) % 251;
    b.resize(300 + queue_offset as usize % 200, fill as u8);
    b
}

fn check_message(m: &StoredMessage) {
    assert_eq!(
        m.body(),
        &body_of(m.topic(), m.queue_id(), m.queue_offset())[..],
        "message {}/{}/{} is intact",
        m.topic(),
        m.queue_id(),
        m.queue_offset()
    );
}

/// Puts `n` messages round-robin over the queues, continuing each queue's offsets.
fn put_n(store: &MessageStore, n: u64) {
    assert!(store.wait_dispatched(Duration::from_secs(10)));
    let mut next: BTreeMap<(&str, u32), u64> = BTreeMap::new();
    for i in 0..n {
        let topic = TOPICS[(i % 2) as usize];
        let queue = ((i / 2) % QUEUES as u64) as u32;
        let offset = next
            .entry((topic, queue))
            .or_insert_with(|| store.max_offset(topic, queue));
        let m =
            Message::new(topic, queue, body_of(topic, queue, *offset)).with_keys([format!("{topic}-{queue}-{offset}")]);
        let r = store.put(m).unwrap();
        assert_eq!(r.queue_offset, *offset);
        *offset += 1;
    }
}

/// Every message from each queue's minimum on: intact, dense, ending at the max offset.
fn read_everything(store: &MessageStore) -> BTreeMap<(String, u32), (u64, u64)> {
    assert!(store.wait_dispatched(Duration::from_secs(10)));
    let mut out = BTreeMap::new();
    for topic in TOPICS {
        for queue in 0..QUEUES {
            let min = store.min_offset(topic, queue);
            let mut offset = min;
            loop {
                let g = store.get(topic, queue, offset, 32).unwrap();
                match g.status {
                    GetStatus::Found => {
                        for m in &g.messages {
                            assert_eq!(m.queue_offset(), offset, "dense");
                            check_message(m);
                            offset += 1;
                        }
                        assert_eq!(g.next_offset, offset);
                    }
                    GetStatus::OffsetOverflowOne => break,
                    other => panic!("{topic}/{queue} at {offset}: {other:?}"),
                }
            }
            assert_eq!(offset, store.max_offset(topic, queue));
            out.insert((topic.to_string(), queue), (min, offset));
        }
    }
    out
}

fn settle(store: &MessageStore) {
    store.flush().unwrap();
    assert!(store.wait_dispatched(Duration::from_secs(10)));
}

fn index_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("index")).map_or(0, |d| d.count())
}

#[test]
fn expired_segments_go_oldest_first_with_their_derived_files() {
    let dir = tempfile::tempdir().unwrap();
    let retention = manual().file_reserved_time(Duration::ZERO).delete_file_batch_max(3);
    let store = MessageStore::open(config(dir.path(), retention)).unwrap();
    put_n(&store, 1500);
    settle(&store);
    let segments = commit_log_files(dir.path());
    assert!(segments.len() >= 8, "{} segments", segments.len());
    let queue_files: usize = segment_files(&dir.path().join("consumequeue/orders/0")).len();
    let index_before = index_files(dir.path());
    assert!(index_before >= 3, "{index_before} index files");
    let before = read_everything(&store);
    // A group that consumed nothing of orders/0 yet.
    assert_eq!(store.commit_offset("g", "orders", 0, 0).unwrap(), CommitStatus::Ok);

    let pass = store.delete_expired_now().unwrap();
    assert_eq!(pass.segments_deleted, 3, "at most the batch: {pass:?}");
    assert_eq!(pass.bytes_deleted, 3 * SEGMENT);
    assert_eq!(pass.min_offset, 3 * SEGMENT);
    assert_eq!(store.min_commit_log_offset(), 3 * SEGMENT);
    assert_eq!(commit_log_files(dir.path())[0].0, 3 * SEGMENT, "oldest first, no hole");
    assert!(pass.queue_files_deleted > 0 && pass.index_files_deleted > 0, "{pass:?}");
    assert!(segment_files(&dir.path().join("consumequeue/orders/0")).len() < queue_files);
    assert!(index_files(dir.path()) < index_before);
    assert_eq!(store.last_retention_pass(), Some(pass.clone()));

    let after = read_everything(&store);
    for (queue, (min, max)) in &after {
        let (old_min, old_max) = before[queue];
        assert_eq!((old_min, *max), (0, old_max), "{queue:?}");
        assert!(*min > 0, "{queue:?}: the minimum moved");
        // The first message left is in the log; the one before it is not.
        let g = store.get(&queue.0, queue.1, *min, 1).unwrap();
        assert!(g.messages[0].commit_log_offset() >= 3 * SEGMENT);
        let g = store.get(&queue.0, queue.1, min - 1, 1).unwrap();
        assert_eq!(g.status, GetStatus::OffsetTooSmall);
        assert_eq!(g.next_offset, *min);
        assert_eq!(g.min_offset, *min);
    }
    // Its committed offset is reported below the queue's new minimum, not moved.
    let committed = store.committed_offset_status("g", "orders", 0).unwrap().unwrap();
    assert_eq!(committed.offset, 0);
    assert_eq!(
        committed.status,
        CommitStatus::BelowMinOffset {
            min: after[&("orders".to_string(), 0)].0
        }
    );
    // Lookups by key answer for what is left, and nothing for what went.
    assert!(store.query_by_key("orders", "orders-0-0", 4).unwrap().is_empty());
    let (min, _) = after[&("orders".to_string(), 0)];
    let found = store.query_by_key("orders", &format!("orders-0-{min}"), 4).unwrap();
    assert_eq!(found.len(), 1);
    check_message(&found[0]);

    // Again: three more, never the last segment, however often it is asked.
    for _ in 0..10 {
        store.delete_expired_now().unwrap();
    }
    // The segment being written is left (and, as a file, the one prepared to follow it).
    let active = store.max_commit_log_offset() / SEGMENT * SEGMENT;
    assert_eq!(store.min_commit_log_offset(), active);
    assert_eq!(commit_log_files(dir.path())[0].0, active);
    read_everything(&store);
    // The store goes on: puts, and reads of them.
    put_n(&store, 200);
    read_everything(&store);
    store.close().unwrap();
}

#[test]
fn young_segments_stay_until_their_reserve_time_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let retention = manual().file_reserved_time(Duration::from_secs(3600));
    let store = MessageStore::open(config(dir.path(), retention)).unwrap();
    put_n(&store, 600);
    settle(&store);
    let n = commit_log_files(dir.path()).len();
    let pass = store.delete_expired_now().unwrap();
    assert_eq!(pass.segments_deleted, 0);
    assert_eq!(commit_log_files(dir.path()).len(), n);
    assert_eq!(store.min_commit_log_offset(), 0);
    store.close().unwrap();
}

#[test]
fn disk_usage_above_the_forced_ratio_deletes_whatever_the_age() {
    let dir = tempfile::tempdir().unwrap();
    // Per mille, set by the test.
    let usage = Arc::new(AtomicU64::new(500));
    let probe = {
        let usage = Arc::clone(&usage);
        DiskUsage::Custom(Arc::new(move |_| Ok(usage.load(Ordering::Relaxed) as f64 / 1000.0)))
    };
    let retention = RetentionConfig::default()
        .delete_when([])
        .interval(Duration::from_millis(20), Duration::ZERO)
        .delete_file_batch_max(2)
        .disk_usage(probe);
    let store = MessageStore::open(config(dir.path(), retention)).unwrap();
    put_n(&store, 1000);
    settle(&store);
    let n = commit_log_files(dir.path()).len();
    assert!(store.disk_usage().unwrap() == 0.5);

    // Above the ratio that deletes expired segments only: nothing is 72 hours old.
    usage.store(800, Ordering::Relaxed);
    let pass = wait_for_pass(&store, |p| p.disk_usage == Some(0.8));
    assert!(!pass.forced);
    assert_eq!(commit_log_files(dir.path()).len(), n);

    // Above the forced ratio: the oldest go, two per pass, until the usage falls.
    usage.store(900, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.min_commit_log_offset() < 4 * SEGMENT {
        assert!(Instant::now() < deadline, "retention did not run");
        std::thread::sleep(Duration::from_millis(10));
    }
    usage.store(500, Ordering::Relaxed);
    let pass = wait_for_pass(&store, |p| p.disk_usage == Some(0.5));
    assert_eq!(pass.segments_deleted, 0);
    let kept = commit_log_files(dir.path()).len();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        commit_log_files(dir.path()).len(),
        kept,
        "deletion stopped with the usage"
    );
    assert!(kept >= 1 && kept <= n - 4);
    read_everything(&store);
    store.close().unwrap();
}

fn wait_for_pass(store: &MessageStore, done: impl Fn(&RetentionPass) -> bool) -> RetentionPass {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Twice in a row: the second pass started after the condition held.
        if let Some(p) = store.last_retention_pass().filter(|p| done(p)) {
            let at = p.at_ms;
            while store.last_retention_pass().is_some_and(|q| q.at_ms == at) {
                assert!(Instant::now() < deadline, "no second pass");
                std::thread::sleep(Duration::from_millis(5));
            }
            if let Some(q) = store.last_retention_pass().filter(|q| done(q)) {
                return q;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no such pass: {:?}",
            store.last_retention_pass()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A budget of four segments, retention every few milliseconds, and a long run: the store
/// stays within the budget, recycles segments, and readers in other threads, some holding
/// messages across deletions, only ever see intact messages and the documented statuses.
#[test]
fn a_disk_budget_holds_under_load_with_readers_in_other_threads() {
    let dir = tempfile::tempdir().unwrap();
    let retention = RetentionConfig::default()
        .delete_when([])
        .interval(Duration::from_millis(2), Duration::ZERO)
        .disk_usage(DiskUsage::Budget(6 * SEGMENT))
        .disk_space_clean_forcibly_ratio(0.6)
        // Tiny segments fill faster than ten per pass can follow.
        .delete_file_batch_max(64);
    // Retention never takes a segment before it is flushed: a short flush interval keeps the
    // unflushed part of the log small.
    let flush = FlushPolicy::asynchronous().with_interval(Duration::from_millis(5), 0, Duration::from_millis(50));
    let store = Arc::new(MessageStore::open(config(dir.path(), retention).flush_policy(flush)).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (store, stop, seen) = (Arc::clone(&store), Arc::clone(&stop), Arc::clone(&seen));
            std::thread::spawn(move || {
                let mut held: Vec<StoredMessage> = Vec::new();
                let mut statuses = BTreeMap::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let topic = TOPICS[(i % 2) as usize];
                    let queue = ((i / 2) % QUEUES as u64) as u32;
                    i += 1;
                    // From the minimum, from before it, and from a guess at a place being
                    // deleted right now.
                    let min = store.min_offset(topic, queue);
                    let from = match i % 3 {
                        0 => min,
                        1 => min.saturating_sub(5),
                        _ => min + 3,
                    };
                    let g = store.get(topic, queue, from, 16).unwrap();
                    *statuses.entry(format!("{:?}", g.status)).or_insert(0u64) += 1;
                    match g.status {
                        GetStatus::Found => {
                            assert!(g.next_offset > from);
                            for m in &g.messages {
                                check_message(m);
                            }
                            seen.fetch_add(g.messages.len() as u64, Ordering::Relaxed);
                            if i % 50 == r {
                                held.extend(g.messages);
                            }
                        }
                        GetStatus::OffsetTooSmall => assert!(g.next_offset > from, "{g:?}"),
                        GetStatus::OffsetFoundNull | GetStatus::MessageWasRemoving => {
                            assert!(g.next_offset > from)
                        }
                        GetStatus::OffsetOverflowOne | GetStatus::NoMessageInQueue => {}
                        // Asked past the end: a queue retention emptied (its minimum is its max).
                        GetStatus::OffsetOverflowBadly => assert!(from > g.max_offset, "{g:?}"),
                        other => panic!("{other:?} from {from} ({min})"),
                    }
                    if held.len() > 2000 {
                        held.drain(..1000);
                    }
                }
                // Messages read long ago, whose segments are gone by now, are still intact.
                for m in &held {
                    check_message(m);
                }
                statuses
            })
        })
        .collect();
    for _ in 0..30 {
        put_n(&store, 1000);
        // A batch writes about eight tiny segments faster than passes (each removing and
        // renaming files durably) follow: retention catches up between batches.
        let deadline = Instant::now() + Duration::from_secs(20);
        while commit_log_files(dir.path()).len() > 8 {
            assert!(
                Instant::now() < deadline,
                "retention does not catch up: {} segment files; {:?}",
                commit_log_files(dir.path()).len(),
                store.last_retention_pass()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        let statuses = r.join().unwrap();
        assert!(statuses.contains_key("Found"), "{statuses:?}");
    }
    assert!(seen.load(Ordering::Relaxed) > 0);
    settle(&store);
    store.delete_expired_now().unwrap();
    // 3.6 segments of 6 is the forced ratio: four are left, with the active one (and the file
    // prepared after it).
    assert!(
        commit_log_files(dir.path()).len() <= 5,
        "{:?}",
        commit_log_files(dir.path())
    );
    let total_segments = store.max_commit_log_offset() / SEGMENT;
    assert!(total_segments >= 40, "the run wrote {total_segments} segments");
    assert!(store.min_commit_log_offset() >= (total_segments - 4) * SEGMENT);
    assert!(
        store.disk_usage().unwrap() <= 0.6 + 1.0 / 6.0,
        "{:?}",
        store.disk_usage()
    );
    let (in_bin, reused) = (store.stats().segments_in_recycle_bin, store.stats().segments_recycled);
    assert!(in_bin <= 2);
    assert_eq!(std::fs::read_dir(dir.path().join("recycled")).unwrap().count(), in_bin);
    assert!(reused > 0, "no segment was recycled");
    read_everything(&store);
    store.close().unwrap();
    let report = verify_store(dir.path()).unwrap();
    assert!(report.consistent, "{report:?}");
    assert!(report.log_start > 0);
}

#[test]
fn retention_survives_reopen_and_the_store_verifies_clean() {
    let dir = tempfile::tempdir().unwrap();
    let retention = manual().file_reserved_time(Duration::ZERO).delete_file_batch_max(4);
    let store = MessageStore::open(config(dir.path(), retention.clone())).unwrap();
    put_n(&store, 1200);
    settle(&store);
    store.delete_expired_now().unwrap();
    let before = read_everything(&store);
    store.close().unwrap();

    let report = verify_store(dir.path()).unwrap();
    assert!(
        report.consistent,
        "a missing first segment is retention, not damage: {report:?}"
    );
    assert_eq!(report.log_start, 4 * SEGMENT);

    let store = MessageStore::open(config(dir.path(), retention.clone())).unwrap();
    assert!(
        store.recovery_report().queues_rebuilt.is_empty(),
        "{:?}",
        store.recovery_report()
    );
    assert!(store.recovery_report().damaged.is_empty());
    assert_eq!(read_everything(&store), before);
    // Puts go into the recycled segments: the store reads the same after another reopen.
    put_n(&store, 600);
    let grown = read_everything(&store);
    store.close().unwrap();
    let store = MessageStore::open(config(dir.path(), retention)).unwrap();
    assert_eq!(read_everything(&store), grown);
    store.close().unwrap();
    assert!(verify_store(dir.path()).unwrap().consistent);
}

/// The states a crash can leave in the middle of a pass, each opened as after a crash: the log's
/// first segment gone but not the queue and index files below it; a recycled file still in the
/// bin; the queue files gone but not the index files.
#[test]
fn a_crash_in_the_middle_of_a_pass_leaves_a_store_that_opens_cleanly() {
    for state in ["log segment only", "segment in the bin", "log and queues"] {
        let dir = tempfile::tempdir().unwrap();
        let retention = manual().file_reserved_time(Duration::ZERO).delete_file_batch_max(2);
        let store = MessageStore::open(config(dir.path(), retention.clone())).unwrap();
        put_n(&store, 1200);
        settle(&store);
        let reference = read_everything(&store);
        store.close().unwrap();
        let first = commit_log_files(dir.path());
        match state {
            "log segment only" => {
                std::fs::remove_file(&first[0].1).unwrap();
                std::fs::remove_file(&first[1].1).unwrap();
            }
            "segment in the bin" => {
                std::fs::create_dir_all(dir.path().join("recycled")).unwrap();
                std::fs::rename(
                    &first[0].1,
                    dir.path().join("recycled").join(first[0].1.file_name().unwrap()),
                )
                .unwrap();
            }
            _ => {
                std::fs::remove_file(&first[0].1).unwrap();
                for q in common::consume_queue_dirs(dir.path()) {
                    let files = segment_files(&q.2);
                    std::fs::remove_file(&files[0].1).unwrap();
                }
            }
        }
        std::fs::File::create(dir.path().join("abort")).unwrap();
        // Nothing expires now: the pass below only finishes what the crash interrupted.
        let retention = retention.file_reserved_time(Duration::from_secs(3600));
        let store = MessageStore::open(config(dir.path(), retention)).unwrap();
        let report = store.recovery_report().clone();
        assert!(report.damaged.is_empty(), "{state}: {report:?}");
        assert!(report.missing_durable.is_none(), "{state}: {report:?}");
        let after = read_everything(&store);
        for (queue, (min, max)) in &after {
            assert_eq!(*max, reference[queue].1, "{state} {queue:?}");
            assert!(*min > 0, "{state} {queue:?}");
        }
        // The next pass finishes the job, and the store verifies clean.
        store.delete_expired_now().unwrap();
        assert_eq!(read_everything(&store), after);
        store.close().unwrap();
        let v = verify_store(dir.path()).unwrap();
        assert!(v.consistent, "{state}: {v:?}");
    }
}

/// A real full disk, where the test may mount one: a 2 MiB tmpfs. The default probe (the file
/// system's usage) sees it fill; a put that finds no room for a segment fails with `DiskFull`, a
/// forced pass frees the oldest segments, and puts go on by themselves. Skipped, with a message,
/// where mounting is not allowed.
#[test]
fn a_small_file_system_fills_and_retention_makes_room() {
    struct Mount(std::path::PathBuf);
    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(dir.path())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (needs root and mount rights)");
        return;
    }
    let _mount = Mount(dir.path().to_path_buf());
    // Usage stays under the forced ratio until the disk is nearly full: the full disk itself
    // must force the pass. Index files of 16 slots and 200 entries (4 KiB).
    let retention = RetentionConfig::default()
        .delete_when([])
        .disk_space_clean_forcibly_ratio(0.85)
        .interval(Duration::from_secs(3600), Duration::from_secs(3600))
        // Four pages of tmpfs for the queue files, the registry and the checkpoint to grow in.
        .reserved_space(256 << 10);
    let store = MessageStore::open(config(dir.path(), retention).message_index(false)).unwrap();
    let mut full = 0;
    let mut next: BTreeMap<u32, u64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut written = 0u64;
    // Four times the file system's size: without retention this cannot fit.
    while written < 8 << 20 {
        if Instant::now() >= deadline {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("df {0}; ls -laR {0} | head -80", dir.path().display()))
                .output()
                .unwrap();
            panic!(
                "stuck: {:?} dispatched {} max {} min {} full {full}\n{}",
                store.last_retention_pass(),
                store.dispatched_offset(),
                store.max_commit_log_offset(),
                store.min_commit_log_offset(),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        let queue = (written / 1000 % QUEUES as u64) as u32;
        let offset = *next.get(&queue).unwrap_or(&0);
        match store.put(Message::new("orders", queue, body_of("orders", queue, offset))) {
            Ok(r) => {
                assert_eq!(r.queue_offset, offset);
                next.insert(queue, offset + 1);
                written += r.wrote_bytes as u64;
            }
            Err(mqstore::Error::DiskFull { .. }) => {
                full += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(full > 0, "the file system never filled");
    let pass = store.last_retention_pass().expect("a forced pass ran");
    assert!(pass.forced, "{pass:?}");
    assert!(store.min_commit_log_offset() > 0);
    for queue in 0..QUEUES {
        let min = store.min_offset("orders", queue);
        let g = store.get("orders", queue, min, 32).unwrap();
        assert_eq!(g.status, GetStatus::Found);
        g.messages.iter().for_each(check_message);
    }
    // The file system is as full as the puts left it: the registry or the checkpoint written at
    // close may find no room (seen about once in four loaded runs). Close then says so and keeps
    // the abort marker, so the next open recovers; any other error is a failure.
    match store.close() {
        Ok(()) => assert!(!dir.path().join("abort").exists()),
        Err(mqstore::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::StorageFull => {
            assert!(
                dir.path().join("abort").exists(),
                "a failed close must keep the abort marker"
            );
        }
        Err(e) => panic!("{e:?}"),
    }
}
