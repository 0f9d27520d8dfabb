//! The index by key and the message id: collisions and roll-over of small index files, a key
//! with many messages, non-ASCII keys, time ranges, `get_by_id` and bad ids, the unique key a
//! message gets, and the index after a clean reopen, a crash, a deleted or damaged index file.

mod common;

use std::path::Path;
use std::time::Duration;

use mqstore::{Error, Message, MessageStore, PutResult, StoreConfig};

fn config(dir: &Path) -> StoreConfig {
    StoreConfig::new(dir)
        .commit_log_segment_size(64 * 1024)
        .consume_queue_units_per_segment(64)
        // Five slots: every bucket holds many keys. 50 entries: a new file every dozen puts.
        .index_size(5, 50)
}

fn own_key(i: usize) -> String {
    // Non-ASCII, and of several UTF-16 lengths, for the Java hash.
    match i % 3 {
        0 => format!("key-{i}"),
        1 => format!("ключ-{i}"),
        _ => format!("键🔑{i}"),
    }
}

fn put_many(store: &MessageStore, n: usize) -> Vec<PutResult> {
    (0..n)
        .map(|i| {
            let msg = Message::new("idx", (i % 3) as u32, format!("body {i}").into_bytes()).with_keys([
                own_key(i),
                format!("grp-{}", i % 7),
                "hot".to_string(),
            ]);
            store.put(msg).unwrap()
        })
        .collect()
}

/// Every message is found by its own key, exactly once; each group and the hot key find their
/// newest messages, newest first.
fn check_all(store: &MessageStore, puts: &[PutResult]) {
    for (i, r) in puts.iter().enumerate() {
        let found = store.query_by_key("idx", &own_key(i), 16).unwrap();
        assert_eq!(found.len(), 1, "message {i} by {}", own_key(i));
        assert_eq!(found[0].commit_log_offset(), r.commit_log_offset);
        assert_eq!(found[0].body(), format!("body {i}").as_bytes());
    }
    for g in 0..7 {
        let want: Vec<u64> = puts
            .iter()
            .enumerate()
            .rev()
            .filter(|(i, _)| i % 7 == g)
            .map(|(_, r)| r.commit_log_offset)
            .take(64)
            .collect();
        let got: Vec<u64> = store
            .query_by_key("idx", &format!("grp-{g}"), 64)
            .unwrap()
            .iter()
            .map(|m| m.commit_log_offset())
            .collect();
        assert_eq!(got, want, "grp-{g}");
    }
    let hot: Vec<u64> = store
        .query_by_key("idx", "hot", 10)
        .unwrap()
        .iter()
        .map(|m| m.commit_log_offset())
        .collect();
    let want: Vec<u64> = puts.iter().rev().take(10).map(|r| r.commit_log_offset).collect();
    assert_eq!(hot, want);
    assert_eq!(
        store.query_by_key("idx", "hot", 1000).unwrap().len(),
        64.min(puts.len()),
        "capped at 64"
    );
    assert!(store.query_by_key("idx", "no-such-key", 16).unwrap().is_empty());
    assert!(store.query_by_key("other", "hot", 16).unwrap().is_empty());
}

#[test]
fn collisions_roll_over_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    let puts = put_many(&store, 300);
    check_all(&store, &puts);
    let files = store.index_files();
    // 300 messages x 4 entries (3 keys and the unique key), 49 entries a file, whole messages
    // only: 12 per file.
    assert_eq!(files.len(), 25, "{files:?}");
    assert!(files.iter().all(|f| f.header.index_count == 49));
    assert!(
        files.windows(2).all(|w| w[0].path < w[1].path),
        "names sort by creation"
    );
    store.close().unwrap();
    drop(store);

    let store = MessageStore::open(config(dir.path())).unwrap();
    let report = store.recovery_report().index.clone().unwrap();
    assert_eq!((report.entries_checked, report.entries_cut), (0, 0), "{report:?}");
    check_all(&store, &puts);
    let more = put_many(&store, 20);
    let found = store.query_by_key("idx", "hot", 1).unwrap();
    assert_eq!(found[0].commit_log_offset(), more[19].commit_log_offset);
}

#[test]
fn time_ranges_select_by_store_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    let early = put_many(&store, 10);
    // Entries keep seconds: a gap of more than one between the two groups.
    std::thread::sleep(Duration::from_millis(2100));
    let late: Vec<PutResult> = (0..5)
        .map(|i| {
            store
                .put(Message::new("idx", 0, b"late".to_vec()).with_keys(["hot", &format!("late-{i}")]))
                .unwrap()
        })
        .collect();
    let (e0, e1) = (early[0].store_timestamp, early[9].store_timestamp);
    let (l0, l1) = (late[0].store_timestamp, late[4].store_timestamp);
    let offsets = |begin, end| -> Vec<u64> {
        store
            .query_by_key_between("idx", "hot", begin, end, 64)
            .unwrap()
            .iter()
            .map(|m| m.commit_log_offset())
            .collect()
    };
    let want_early: Vec<u64> = early.iter().rev().map(|r| r.commit_log_offset).collect();
    let want_late: Vec<u64> = late.iter().rev().map(|r| r.commit_log_offset).collect();
    assert_eq!(offsets(e0, e1), want_early);
    assert_eq!(offsets(l0, l1), want_late);
    assert_eq!(offsets(l0, u64::MAX).len(), 5);
    assert_eq!(offsets(0, e1).len(), 10);
    assert!(offsets(e1 + 1, l0 - 1).is_empty());
    assert!(offsets(l1 + 1, u64::MAX).is_empty());
    assert!(offsets(l1, e0).is_empty(), "an empty range");
    // Exact to the millisecond at the edges.
    assert_eq!(offsets(l1, l1).first(), Some(&late[4].commit_log_offset));
}

#[test]
fn message_ids_round_trip_and_bad_ids_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    let puts = put_many(&store, 30);
    for (i, r) in puts.iter().enumerate() {
        let id = r.msg_id();
        assert_eq!(id.len(), 32);
        let m = store.get_by_id(&id).unwrap().expect("found by id");
        assert_eq!(m.body(), format!("body {i}").as_bytes());
        assert_eq!(m.msg_id(), id);
        assert_eq!(
            store
                .get_by_id(&id.to_lowercase())
                .unwrap()
                .unwrap()
                .commit_log_offset(),
            r.commit_log_offset
        );
    }
    for bad in [
        "",
        "xyz",
        "7F00000100002A9F000000000000000",
        "7F00000100002A9F00000000000000G0",
    ] {
        assert!(
            matches!(store.get_by_id(bad), Err(Error::InvalidMessageId { .. })),
            "{bad:?}"
        );
    }
    let host: std::net::SocketAddr = "127.0.0.1:10911".parse().unwrap();
    let id = |offset: u64| mqstore::codec::offset_msg_id(host, offset);
    // Inside a record, past the end, or another host's: no message, not an error.
    assert!(store.get_by_id(&id(puts[3].commit_log_offset + 1)).unwrap().is_none());
    assert!(store.get_by_id(&id(store.max_commit_log_offset())).unwrap().is_none());
    assert!(store.get_by_id(&id(1 << 40)).unwrap().is_none());
    let other = mqstore::codec::offset_msg_id("10.0.0.9:10911".parse().unwrap(), puts[3].commit_log_offset);
    assert!(store.get_by_id(&other).unwrap().is_none());
}

#[test]
fn unique_keys_are_assigned_indexed_and_respected() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    let r = store.put(Message::new("idx", 0, b"a".to_vec())).unwrap();
    let uniq = r.unique_key.expect("the store gives one").to_string();
    let found = store.query_by_key("idx", &uniq, 4).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].unique_key(), Some(uniq.as_str()));
    assert_eq!(found[0].commit_log_offset(), r.commit_log_offset);
    let r2 = store.put(Message::new("idx", 0, b"b".to_vec())).unwrap();
    assert_ne!(r2.unique_key, r.unique_key);
    // The producer's own id is kept, indexed, and none is added.
    let own = store
        .put(Message::new("idx", 0, b"c".to_vec()).with_property("UNIQ_KEY", "producer-id-1"))
        .unwrap();
    assert_eq!(own.unique_key, None);
    let found = store.query_by_key("idx", "producer-id-1", 4).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].unique_key(), Some("producer-id-1"));
    store.close().unwrap();
    drop(store);

    let off = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(off.path()).unique_keys(false)).unwrap();
    let r = store
        .put(Message::new("idx", 0, b"a".to_vec()).with_keys(["k"]))
        .unwrap();
    assert_eq!(r.unique_key, None);
    assert_eq!(store.query_by_key("idx", "k", 4).unwrap().len(), 1);
    store.close().unwrap();
    drop(store);

    let none = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(none.path()).message_index(false)).unwrap();
    store
        .put(Message::new("idx", 0, b"a".to_vec()).with_keys(["k"]))
        .unwrap();
    assert!(store.query_by_key("idx", "k", 4).unwrap().is_empty());
    assert!(store.index_files().is_empty());
    assert!(!none.path().join("index").exists());
}

#[test]
fn bad_queries_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    assert!(matches!(
        store.query_by_key("idx", "", 4),
        Err(Error::InvalidKey { .. })
    ));
    assert!(matches!(
        store.query_by_key("idx", "a b", 4),
        Err(Error::InvalidKey { .. })
    ));
    assert!(matches!(
        store.query_by_key("../x", "a", 4),
        Err(Error::InvalidTopic { .. })
    ));
    assert!(store.query_by_key("idx", "a", 0).unwrap().is_empty());
}

#[test]
fn index_is_rebuilt_after_a_crash_a_deleted_directory_or_a_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    // Checkpoints while the puts run: the crash finds a mark taken under load.
    let store = MessageStore::open(config(dir.path()).checkpoint_interval(Duration::from_millis(1))).unwrap();
    let puts = put_many(&store, 120);
    // A crash: nothing flushed at the end, the checkpoint possibly behind.
    store.halt();
    drop(store);
    let store = MessageStore::open(config(dir.path())).unwrap();
    check_all(&store, &puts);
    // Replay after the crash added nothing twice: four entries per message.
    let entries: i64 = store
        .index_files()
        .iter()
        .map(|f| i64::from(f.header.index_count) - 1)
        .sum();
    assert_eq!(entries, 4 * 120);
    store.close().unwrap();
    drop(store);

    // The whole directory deleted.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    check_all(&store, &puts);
    let files = store.index_files();
    store.close().unwrap();
    drop(store);

    // The last file garbled past its first entries, the store crashed: its tail is cut and
    // rebuilt from the log, the answers stay exact.
    let last = &files.last().unwrap().path;
    let mut rng = common::Rng::new(7);
    let entries_at = 40 + 5 * 4 + 20 * 5;
    common::garble_range(last, entries_at, std::fs::metadata(last).unwrap().len(), &mut rng);
    std::fs::write(dir.path().join("abort"), b"").unwrap();
    // The checkpoint's mark still trusts the garbled entries: zero the checkpoint's slots so that
    // only a check against the log can tell.
    common::zero_range(&dir.path().join("checkpoint"), 1024, 4096);
    let store = MessageStore::open(config(dir.path())).unwrap();
    let report = store.recovery_report().index.clone().unwrap();
    assert!(report.entries_cut > 0, "{report:?}");
    check_all(&store, &puts);
    store.close().unwrap();
    drop(store);

    // A file of a shape no layout explains (cut short): removed and rebuilt.
    let first = &files[0].path;
    let f = std::fs::OpenOptions::new().write(true).open(first).unwrap();
    f.set_len(333).unwrap();
    drop(f);
    let store = MessageStore::open(config(dir.path())).unwrap();
    check_all(&store, &puts);
}

#[test]
fn a_deleted_index_is_rebuilt_from_the_start_of_the_log_not_from_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let small = |d: &Path| config(d).commit_log_segment_size(4096);
    let store = MessageStore::open(small(dir.path())).unwrap();
    let puts = put_many(&store, 200);
    store.close().unwrap();
    drop(store);
    assert!(common::commit_log_files(dir.path()).len() > 5);
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let store = MessageStore::open(small(dir.path())).unwrap();
    let report = store.recovery_report();
    assert!(
        report.dispatched_from > 0,
        "a clean reopen re-dispatches only the last segment"
    );
    assert_eq!(report.indexed_from, Some(0));
    check_all(&store, &puts);
}

#[test]
fn verify_checks_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    let puts = put_many(&store, 30);
    let files = store.index_files();
    store.close().unwrap();
    drop(store);
    let report = mqstore::verify::verify_store(dir.path()).unwrap();
    assert!(report.consistent, "{report}");
    assert_eq!((report.index_files, report.index_entries), (files.len(), 4 * 30));

    // An entry below the durable mark moved into the middle of its record: damage, in that file.
    let file = &files[0].path;
    let entry1 = 40 + 5 * 4 + 20;
    common::write_at(file, entry1 + 4, &(puts[0].commit_log_offset as i64 + 3).to_be_bytes());
    let report = mqstore::verify::verify_store(dir.path()).unwrap();
    assert!(!report.consistent, "{report}");
    assert_eq!(report.damage.len(), 1, "{report}");
    assert!(report.damage[0].file.starts_with("index"), "{report}");
    assert!(report.damage[0].what.contains("entry 1"), "{report}");
}

#[test]
fn offset_for_timestamp_at_the_edges_and_with_equal_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    assert_eq!(store.offset_for_timestamp("idx", 0, 123).unwrap(), 0, "no queue");
    let mut puts = Vec::new();
    for i in 0..60 {
        // Bursts within one millisecond, then gaps: equal timestamps and distinct ones.
        if i % 20 == 0 {
            std::thread::sleep(Duration::from_millis(3));
        }
        puts.push(store.put(Message::new("idx", 0, vec![i as u8; 10])).unwrap());
    }
    let first_at_or_after = |t: u64| puts.iter().position(|r| r.store_timestamp >= t).unwrap_or(puts.len()) as u64;
    assert_eq!(
        store.offset_for_timestamp("idx", 0, 0).unwrap(),
        0,
        "before the first: the min offset"
    );
    assert_eq!(
        store.offset_for_timestamp("idx", 0, u64::MAX).unwrap(),
        60,
        "after the last: the max offset"
    );
    let last = puts[59].store_timestamp;
    assert_eq!(store.offset_for_timestamp("idx", 0, last + 1).unwrap(), 60);
    for r in &puts {
        for t in [r.store_timestamp - 1, r.store_timestamp, r.store_timestamp + 1] {
            assert_eq!(
                store.offset_for_timestamp("idx", 0, t).unwrap(),
                first_at_or_after(t),
                "t = {t}"
            );
        }
    }
    assert!(
        puts.windows(2).any(|w| w[0].store_timestamp == w[1].store_timestamp),
        "some equal timestamps"
    );
}
