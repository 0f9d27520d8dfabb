//! I/O errors injected with fail points (`cargo test --features failpoints --test failpoints`):
//! disk full at segment allocation, EIO at sync, at truncation, at checkpoint write and at
//! directory sync. Each must give a typed error or a non-Ok status, never acknowledge what is
//! not durable, never lose what was, and leave a store that reopens.
#![cfg(feature = "failpoints")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::read_queue;
use mqstore::segment::sim::{SimBackend, SimDisk};
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

/// Polls `done` until it holds, failing the test after a generous bound (a hang is the bug).
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Every body of queue `q` of topic "fp" with its queue offset.
fn read_sim_queue(store: &MessageStore<SimBackend>, q: u32) -> Vec<(u64, Vec<u8>)> {
    assert!(store.wait_dispatched(Duration::from_secs(10)), "dispatch stalled");
    let mut out = Vec::new();
    let mut offset = store.min_offset("fp", q);
    loop {
        let g = store.get("fp", q, offset, 32).expect("get");
        match g.status {
            mqstore::GetStatus::Found => {
                out.extend(g.messages.iter().map(|m| (m.queue_offset(), m.body().to_vec())));
                offset = g.next_offset;
            }
            mqstore::GetStatus::OffsetOverflowOne | mqstore::GetStatus::NoMessageInQueue => return out,
            other => panic!("unexpected status {other:?} at offset {offset}"),
        }
    }
}

/// Three puts in other threads: the first held at the fail point with its space reserved and
/// nothing written (released by `release`, then running `then` there), the other two let
/// through once it holds, and the call returns when both have written their records.
struct HeldPuts {
    release: std::sync::mpsc::Sender<()>,
    held: std::thread::JoinHandle<mqstore::Result<mqstore::PutResult>>,
    behind: Vec<std::thread::JoinHandle<mqstore::Result<mqstore::PutResult>>>,
}

fn hold_a_put_with_two_behind(store: &Arc<MessageStore<SimBackend>>, then: fn()) -> HeldPuts {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = Mutex::new(released);
    let holding = Arc::new(AtomicBool::new(false));
    let first = AtomicBool::new(true);
    let holding_in = Arc::clone(&holding);
    fail::cfg_callback("commit-log-fill", move || {
        if first.swap(false, SeqCst) {
            holding_in.store(true, SeqCst);
            let _ = released.lock().unwrap().recv();
            then();
        }
    })
    .unwrap();
    let filled = Arc::new(AtomicUsize::new(0));
    let filled_in = Arc::clone(&filled);
    fail::cfg_callback("commit-log-filled", move || {
        filled_in.fetch_add(1, SeqCst);
    })
    .unwrap();
    let put_in_thread = |i: u64| {
        let store = Arc::clone(store);
        std::thread::spawn(move || store.put(Message::new("fp", 0, common::body(1000 + i, 700))))
    };
    let held = put_in_thread(0);
    wait_for("the first producer to hold", || holding.load(SeqCst));
    let behind = (1..3).map(put_in_thread).collect();
    wait_for("the producers behind to fill", || filled.load(SeqCst) == 2);
    fail::remove("commit-log-filled");
    HeldPuts { release, held, behind }
}

fn behind_bodies() -> [Vec<u8>; 2] {
    [common::body(1001, 700), common::body(1002, 700)]
}

/// After a crash with a producer held between reservation and publish (queue 0 of "fp"): the
/// puts acknowledged before it, exactly, at their offsets; the held put's space is a hole; and
/// the puts that filled their records behind it were not acknowledged, so each may be lost or
/// kept, but only whole, at the queue offset it was given (a hole is skipped as a page lost in
/// the middle is, so nothing after it is lost that could have been acknowledged). New puts go
/// on after whatever was kept.
fn check_after_held_crash(store: &MessageStore<SimBackend>, acked: &[Vec<u8>], hole: u64, behind: &[Vec<u8>]) {
    let got = read_sim_queue(store, 0);
    let n = acked.len();
    assert!(got.len() >= n, "an acknowledged put was lost");
    for (i, (offset, body)) in got[..n].iter().enumerate() {
        assert!(*offset == i as u64 && *body == acked[i], "acknowledged put {i} changed");
    }
    // The held put took queue offset n; those behind it, in whichever order they reserved, the
    // offsets after it.
    for (offset, body) in &got[n..] {
        assert!(
            behind.contains(body),
            "only the puts that were in flight may follow the acknowledged ones"
        );
        assert!(
            *offset > n as u64 && *offset <= (n + behind.len()) as u64,
            "a kept put keeps the queue offset it was given"
        );
    }
    let end = store.max_commit_log_offset();
    assert!(end == hole || !store.recovery_report().damaged.is_empty());
    if end > hole {
        let hole_report = &store.recovery_report().damaged[0];
        assert_eq!(hole_report.start, hole, "the hole is reported where it is");
    }
    let r = store.put(Message::new("fp", 0, common::body(9999, 500))).unwrap();
    let next = got.last().map_or(0, |(o, _)| o + 1);
    assert_eq!((r.commit_log_offset, r.queue_offset), (end, next));
}

/// Appends reserve their bytes under the lock and fill them outside it. A producer held with its
/// space reserved and nothing written yet, two more that filled their records behind it and wait
/// to publish (so nothing past the hole is published, synced or acknowledged), then a power loss
/// that keeps, drops or tears each unsynced page: see [`check_after_held_crash`].
#[test]
fn power_loss_between_reservation_and_publish_with_several_producers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scenario = fail::FailScenario::setup();
    for seed in 0..12u64 {
        let dir = tempfile::tempdir().unwrap();
        let disk = SimDisk::new();
        // Sync: an acknowledged put is a durable one. Segments large enough that the three puts
        // in flight never roll the log (a roll waits, under the append lock, for the held one).
        let config = config(dir.path())
            .flush_policy(FlushPolicy::sync())
            .commit_log_segment_size(256 * 1024);
        let store = Arc::new(MessageStore::open_with_backend(config.clone(), disk.backend()).unwrap());
        let mut acked = Vec::new();
        for i in 0..40 {
            let b = common::body(i, 300 + (i as usize * 37) % 500);
            let r = store.put(Message::new("fp", 0, b.clone())).unwrap();
            assert_eq!(r.status, PutStatus::Ok);
            acked.push(b);
        }
        let hole = store.max_commit_log_offset();

        let puts = hold_a_put_with_two_behind(&store, || {});
        assert_eq!(
            store.max_commit_log_offset(),
            hole,
            "nothing past the hole is published"
        );

        store.halt();
        disk.power_loss(seed);
        // The halted store's threads finish into memory that no longer backs any file.
        puts.release.send(()).unwrap();
        puts.held.join().unwrap().ok();
        for t in puts.behind {
            t.join().unwrap().ok();
        }
        fail::remove("commit-log-fill");
        drop(store);

        let store = MessageStore::open_with_backend(config, disk.backend()).unwrap();
        check_after_held_crash(&store, &acked, hole, &behind_bodies());
        store.close().unwrap();
    }
    scenario.teardown();
}

/// A producer that panics with its space reserved and unwritten (a bug, say): the producers
/// behind it must not hang, the store refuses writes from then on, and a reopen keeps every
/// put acknowledged before or behind the hole (see [`check_after_held_crash`]).
#[test]
fn an_append_abandoned_half_written_stops_writes_and_loses_nothing_acknowledged() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let disk = SimDisk::new();
    let config = config(dir.path()).commit_log_segment_size(256 * 1024);
    let store = Arc::new(MessageStore::open_with_backend(config.clone(), disk.backend()).unwrap());
    let acked: Vec<Vec<u8>> = (0..25).map(|i| common::body(i, 600)).collect();
    for b in &acked {
        assert_eq!(
            store.put(Message::new("fp", 0, b.clone())).unwrap().status,
            PutStatus::Ok
        );
    }
    let hole = store.max_commit_log_offset();

    let puts = hold_a_put_with_two_behind(&store, || panic!("a bug while filling a reservation"));
    puts.release.send(()).unwrap();
    assert!(puts.held.join().is_err(), "the held producer panics");
    // Under the async policy the puts behind did not wait for the held one: their records are
    // whole, and they were acknowledged.
    let behind_acked: Vec<u64> = puts
        .behind
        .into_iter()
        .map(|t| {
            t.join()
                .unwrap()
                .expect("a put behind an unfilled one is not failed by it")
        })
        .map(|r| r.queue_offset)
        .collect();
    let err = store.put(Message::new("fp", 0, common::body(7, 100))).unwrap_err();
    assert!(
        matches!(err, Error::NotWriteable(why) if why.contains("abandoned")),
        "{err:?}"
    );
    fail::remove("commit-log-fill");
    // As a process that dies of the panic: no clean close, the page cache kept.
    store.halt();
    drop(store);

    let store = MessageStore::open_with_backend(config, disk.backend()).unwrap();
    let kept: Vec<u64> = read_sim_queue(&store, 0).iter().map(|(o, _)| *o).collect();
    for q in &behind_acked {
        assert!(kept.contains(q), "acknowledged put at queue offset {q} lost: {kept:?}");
    }
    check_after_held_crash(&store, &acked, hole, &behind_bodies());
    store.close().unwrap();
    scenario.teardown();
}
