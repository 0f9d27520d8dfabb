//! I/O errors injected with fail points (`cargo test --features failpoints --test failpoints`):
//! disk full at segment allocation, EIO at sync, at truncation, at checkpoint write and at
//! directory sync. Each must give a typed error or a non-Ok status, never acknowledge what is
//! not durable, never lose what was, and leave a store that reopens.
#![cfg(feature = "failpoints")]

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::read_queue;
use mqstore::{Error, FlushPolicy, Message, MessageStore, PutStatus, StoreConfig};

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
    let store = MessageStore::open(config(dir.path())).unwrap();
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
