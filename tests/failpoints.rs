//! I/O errors injected with fail points (`cargo test --features failpoints --test failpoints`):
//! disk full at segment allocation, EIO at sync, at truncation, at checkpoint write and at
//! directory sync. Each must give a typed error or a non-Ok status, never acknowledge what is
//! not durable, never lose what was, and leave a store that reopens.
#![cfg(feature = "failpoints")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::read_queue;
use mqstore::{DiskUsage, Error, FlushPolicy, Message, MessageStore, PutStatus, RetentionConfig, StoreConfig};

/// Fail points are process-global: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig::new(dir)
        .commit_log_segment_size(16 * 1024)
        .consume_queue_units_per_segment(64)
}

fn body(i: u64) -> Vec<u8> {
    common::body(i, 700)
}

/// Puts until the first error, returning the bodies acknowledged before it and the error.
fn put_until_error(store: &MessageStore, start: u64, limit: u64) -> (Vec<Vec<u8>>, Option<Error>) {
    let mut acked = Vec::new();
    for i in start..start + limit {
        match store.put(Message::new("fp", 0, body(i))) {
            Ok(r) => {
                assert_eq!(r.status, PutStatus::Ok);
                acked.push(body(i));
            }
            Err(e) => return (acked, Some(e)),
        }
    }
    (acked, None)
}

#[test]
fn disk_full_at_segment_allocation() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    // Retention off: nothing frees space but the operator.
    let store = MessageStore::open(config(dir.path()).retention(RetentionConfig::default().enabled(false))).unwrap();
    fail::cfg("segment-allocate", "return").unwrap();
    // The segment allocated ahead of need may still be used; the one after it cannot be had.
    let (acked, err) = put_until_error(&store, 0, 200);
    let err = err.expect("allocation must fail within 200 puts of 16 KiB segments");
    assert!(matches!(err, Error::DiskFull { .. }), "{err:?}");
    let end = store.max_commit_log_offset();
    // Still full: refused again, nothing appended, no queue offset consumed.
    assert!(matches!(
        store.put(Message::new("fp", 0, body(999))),
        Err(Error::DiskFull { .. })
    ));
    assert_eq!(store.max_commit_log_offset(), end);
    fail::remove("segment-allocate");
    // Space is back: appends resume with the next dense offset.
    let r = store.put(Message::new("fp", 0, body(1000))).unwrap();
    assert_eq!(r.queue_offset, acked.len() as u64);
    store.close().unwrap();
    drop(store);
    let store = MessageStore::open(config(dir.path())).unwrap();
    let msgs = read_queue(&store, "fp", 0);
    assert_eq!(msgs.len(), acked.len() + 1);
    for (m, b) in msgs.iter().zip(&acked) {
        assert_eq!(m.body(), b.as_slice());
    }
    scenario.teardown();
}

/// A full disk wakes a forced retention pass at once: it recycles the oldest segments, and puts
/// succeed again by themselves, with no file allocated and no reopen, while the disk is still full
/// (down to the reserve the consume queues and the index grow in).
#[test]
fn disk_full_wakes_retention_and_puts_resume_by_themselves() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    // Nothing expires for days and the disk looks empty: only the full disk forces deletion.
    let retention = RetentionConfig::default()
        .delete_when([])
        .interval(Duration::from_secs(3600), Duration::from_secs(3600))
        .disk_usage(DiskUsage::Custom(Arc::new(|_| Ok(0.1))));
    let store = MessageStore::open(config(dir.path()).retention(retention)).unwrap();
    let (acked, err) = put_until_error(&store, 0, 100);
    assert!(err.is_none());
    store.flush().unwrap();
    assert!(store.last_retention_pass().is_none());
    // The file system is down to the reserve kept for the derived files: the log may not grow.
    fail::cfg("commit-log-reserve", "return").unwrap();
    let (more, err) = put_until_error(&store, 100, 400);
    assert!(matches!(err, Some(Error::DiskFull { .. })), "{err:?}");
    // Puts resume within moments, still with no file to be allocated.
    let deadline = Instant::now() + Duration::from_secs(20);
    let resumed = loop {
        match store.put(Message::new("fp", 0, body(9000))) {
            Ok(r) => break r,
            Err(Error::DiskFull { .. }) => {
                assert!(
                    Instant::now() < deadline,
                    "puts never resumed: {:?}",
                    store.last_retention_pass()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{e:?}"),
        }
    };
    assert_eq!(
        resumed.queue_offset,
        (acked.len() + more.len()) as u64,
        "no offset lost to the failures"
    );
    // The pass that freed room may be followed by others that found nothing more to take.
    let pass = store.last_retention_pass().expect("a pass ran");
    assert!(pass.forced, "{pass:?}");
    assert!(store.min_commit_log_offset() > 0, "segments were deleted");
    assert!(
        store.stats().segments_recycled > 0,
        "the next segment was a recycled one"
    );
    assert!(store.min_offset("fp", 0) > 0);
    fail::remove("commit-log-reserve");
    // What is left reads back intact, from the new minimum to the last put.
    let msgs = read_queue(&store, "fp", 0);
    let all: Vec<&Vec<u8>> = acked.iter().chain(&more).collect();
    let min = store.min_offset("fp", 0) as usize;
    assert_eq!(msgs.len(), all.len() - min + 1);
    for (m, b) in msgs.iter().zip(&all[min..]) {
        assert_eq!(m.body(), b.as_slice());
    }
    assert_eq!(msgs.last().unwrap().body(), body(9000).as_slice());
    store.close().unwrap();
    scenario.teardown();
}

#[test]
fn failed_sync_is_never_acknowledged_and_stops_writes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path()).flush_policy(FlushPolicy::sync())).unwrap();
    let (acked, err) = put_until_error(&store, 0, 20);
    assert!(err.is_none());
    fail::cfg("segment-flush", "return").unwrap();
    let r = store.put(Message::new("fp", 0, body(20))).unwrap();
    assert_ne!(r.status, PutStatus::Ok, "a put whose sync failed was acknowledged");
    // After a failed fsync nothing can be trusted to reach the disk: writes stop.
    assert!(matches!(
        store.put(Message::new("fp", 0, body(21))),
        Err(Error::NotWriteable(_))
    ));
    fail::remove("segment-flush");
    assert!(matches!(
        store.put(Message::new("fp", 0, body(22))),
        Err(Error::NotWriteable(_))
    ));
    // Close cannot confirm durability: the abort marker stays and the next open recovers.
    let _ = store.close();
    assert!(dir.path().join("abort").exists());
    drop(store);
    let store = MessageStore::open(config(dir.path())).unwrap();
    assert!(!store.recovery_report().clean_shutdown);
    let msgs = read_queue(&store, "fp", 0);
    assert!(msgs.len() >= acked.len());
    for (m, b) in msgs.iter().zip(&acked) {
        assert_eq!(m.body(), b.as_slice());
    }
    scenario.teardown();
}

#[test]
fn failed_sync_of_puts_in_flight_is_never_acknowledged_and_stops_writes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path()).flush_policy(FlushPolicy::sync())).unwrap();
    let acked: Vec<_> = (0..20)
        .map(|i| store.put_async(Message::new("fp", 0, body(i))).unwrap())
        .collect();
    for p in acked {
        assert_eq!(p.wait().status, PutStatus::Ok);
    }
    fail::cfg("segment-flush", "return").unwrap();
    let failing: Vec<_> = (20..30)
        .map(|i| store.put_async(Message::new("fp", 0, body(i))))
        .collect();
    let mut refused = 0;
    for p in failing {
        match p {
            // Listed before the failure showed: resolved, never with Ok.
            Ok(p) => assert_ne!(
                p.wait().status,
                PutStatus::Ok,
                "a put whose sync failed was acknowledged"
            ),
            Err(Error::NotWriteable(_)) => refused += 1,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert!(refused < 10, "the first put after the failure point was appended");
    fail::remove("segment-flush");
    assert!(matches!(
        store.put_async(Message::new("fp", 0, body(30))),
        Err(Error::NotWriteable(_))
    ));
    let _ = store.close();
    assert!(dir.path().join("abort").exists());
    drop(store);
    let store = MessageStore::open(config(dir.path())).unwrap();
    let msgs = read_queue(&store, "fp", 0);
    assert!(msgs.len() >= 20);
    for (i, m) in msgs.iter().take(20).enumerate() {
        assert_eq!(m.body(), body(i as u64).as_slice());
    }
    scenario.teardown();
}

#[test]
fn failed_checkpoint_write_loses_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let cfg = || {
        config(dir.path())
            .flush_policy(FlushPolicy::sync())
            .checkpoint_interval(Duration::from_millis(20))
    };
    let store = MessageStore::open(cfg()).unwrap();
    let (first, _) = put_until_error(&store, 0, 30);
    fail::cfg("checkpoint-write", "return").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let (second, _) = put_until_error(&store, 30, 30);
    // The checkpoint cannot be written at close either: the close reports it and keeps the
    // abort marker.
    assert!(store.close().is_err());
    drop(store);
    fail::remove("checkpoint-write");
    let store = MessageStore::open(cfg()).unwrap();
    let msgs = read_queue(&store, "fp", 0);
    let all: Vec<Vec<u8>> = first.into_iter().chain(second).collect();
    assert_eq!(msgs.len(), all.len());
    for (m, b) in msgs.iter().zip(&all) {
        assert_eq!(m.body(), b.as_slice());
    }
    scenario.teardown();
}

#[test]
fn failed_truncation_fails_the_open_cleanly() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path()).flush_policy(FlushPolicy::sync())).unwrap();
    let (acked, _) = put_until_error(&store, 0, 10);
    let end = store.max_commit_log_offset();
    store.halt();
    drop(store);
    // A torn tail after the last record: recovery must cut (zero) it.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("commitlog/00000000000000000000"))
            .unwrap();
        f.seek(SeekFrom::Start(end)).unwrap();
        f.write_all(&[0xAB; 300]).unwrap();
    }
    fail::cfg("segment-truncate", "return").unwrap();
    let err = MessageStore::open(config(dir.path()))
        .err()
        .expect("open must fail when the cut cannot be made");
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    fail::remove("segment-truncate");
    let store = MessageStore::open(config(dir.path())).unwrap();
    assert_eq!(store.max_commit_log_offset(), end);
    assert_eq!(read_queue(&store, "fp", 0).len(), acked.len());
    scenario.teardown();
}

#[test]
fn failed_directory_sync_at_segment_creation() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    fail::cfg("dir-sync", "return").unwrap();
    let (acked, err) = put_until_error(&store, 0, 200);
    let err = err.expect("a new segment's directory entry cannot be made durable");
    assert!(matches!(err, Error::Io { .. } | Error::DiskFull { .. }), "{err:?}");
    fail::remove("dir-sync");
    let r = store.put(Message::new("fp", 0, body(500))).unwrap();
    assert_eq!(r.queue_offset, acked.len() as u64);
    store.close().unwrap();
    scenario.teardown();
}

#[test]
fn a_file_system_without_fallocate_still_takes_puts_and_recovers_them() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    // Every fallocate answers EOPNOTSUPP, as on some FUSE file systems: segments are allocated by
    // writing zeros instead, for the commit log and the consume queues alike.
    fail::cfg("segment-fallocate", "return").unwrap();
    let config = || config(dir.path()).flush_policy(FlushPolicy::sync());
    let store = MessageStore::open(config()).unwrap();
    let (acked, err) = put_until_error(&store, 0, 150);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(read_queue(&store, "fp", 0).len(), acked.len());
    store.close().unwrap();
    let segments = common::segment_files(&dir.path().join("commitlog"));
    assert!(segments.len() >= 5, "the puts filled several segments");
    assert!(
        segments.iter().all(|(_, _, len)| *len == 16 * 1024),
        "every segment whole"
    );
    // Recovered after a crash (the abort marker makes the open check every record again)...
    std::fs::File::create(dir.path().join("abort")).unwrap();
    let store = MessageStore::open(config()).unwrap();
    assert!(!store.recovery_report().clean_shutdown);
    let got = read_queue(&store, "fp", 0);
    assert_eq!(got.len(), acked.len());
    assert!(got.iter().zip(&acked).all(|(m, b)| m.body() == b.as_slice()));
    // ...and the store goes on taking puts.
    let r = store.put(Message::new("fp", 0, body(999))).unwrap();
    assert_eq!(r.queue_offset, acked.len() as u64);
    store.close().unwrap();
    scenario.teardown();
}
