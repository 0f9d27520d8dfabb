//! Stores written by `rocketmq-store` 1.0.0 (the Rust port of Apache RocketMQ's store) open and read back exactly.
//!
//! The fixtures and their manifests are described in `tests/fixtures/README.md`. Each test works on a copy, because
//! opening a store takes its lock, writes the abort marker and may recover files.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mqstore::{GetStatus, Message, MessageStore, PutStatus, StoreConfig};

/// One row of `<fixture>.manifest.tsv`: a message as the RocketMQ writer put it.
#[derive(Debug)]
struct Entry {
    i: usize,
    topic: String,
    queue_id: u32,
    queue_offset: u64,
    commit_log_offset: u64,
    size: u32,
    tags: Option<String>,
    keys: Vec<String>,
    p: String,
    store_timestamp: u64,
    born_timestamp: u64,
    born_host: SocketAddr,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The body of message `i`, as the fixture writer generated it (see the README).
fn body(i: usize) -> Vec<u8> {
    (0..1 + (i * 97) % 3000)
        .map(|j| ((i * 31 + j * 7) % 251) as u8)
        .collect()
}

fn load_manifest(name: &str) -> Vec<Entry> {
    let text = std::fs::read_to_string(fixtures().join(format!("{name}.manifest.tsv"))).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "i\ttopic\tqueue_id\tqueue_offset\tcommit_log_offset\tsize\tbody_len\tbody_crc32\ttags\tkeys\tp\t\
         store_timestamp\tborn_timestamp\tborn_host"
    );
    let entries: Vec<Entry> = lines
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 14, "bad manifest line {line:?}");
            let n = |k: usize| f[k].parse::<u64>().unwrap();
            let i = n(0) as usize;
            // the regenerated body is the one the manifest describes (length and RocketMQ's masked body CRC)
            let b = body(i);
            assert_eq!(
                (b.len() as u64, (crc32fast::hash(&b) & 0x7FFF_FFFF) as u64),
                (n(6), n(7)),
                "body of {i}"
            );
            Entry {
                i,
                topic: f[1].to_string(),
                queue_id: n(2) as u32,
                queue_offset: n(3),
                commit_log_offset: n(4),
                size: n(5) as u32,
                tags: (f[8] != "-").then(|| f[8].to_string()),
                keys: f[9].split(' ').map(str::to_string).collect(),
                p: f[10].to_string(),
                store_timestamp: n(11),
                born_timestamp: n(12),
                born_host: f[13].parse().unwrap(),
            }
        })
        .collect();
    assert_eq!(entries.len(), 400);
    entries
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Copies fixture `name` into a fresh temporary directory; returns (guard, store dir).
fn copy_fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    copy_dir(&fixtures().join(name), &dir);
    assert!(
        !dir.join("mqstore.meta").exists(),
        "a RocketMQ-written store has no mqstore.meta"
    );
    (tmp, dir)
}

/// Every manifest message reads back exactly through `get`, paging by `next_offset`. `added` lists the queues that
/// got one extra message after the fixture was written; `end` is the expected end of the commit log.
fn check_store(store: &MessageStore, manifest: &[Entry], added: &[(&str, u32)], end: u64) {
    let mut queues: BTreeMap<(&str, u32), Vec<&Entry>> = BTreeMap::new();
    for e in manifest {
        queues.entry((e.topic.as_str(), e.queue_id)).or_default().push(e);
    }
    assert_eq!(queues.len(), 6);
    for (&(topic, q), entries) in &queues {
        let n = entries.len() as u64;
        // manifest rows are in put order, so a queue's rows are its dense offsets from 0
        assert!(entries.iter().zip(0..).all(|(e, k)| e.queue_offset == k));
        let max = n + added.iter().filter(|&&a| a == (topic, q)).count() as u64;
        assert_eq!(store.min_offset(topic, q), 0, "{topic}/{q}");
        assert_eq!(store.max_offset(topic, q), max, "{topic}/{q}");
        let mut offset = 0;
        while offset < n {
            let g = store.get(topic, q, offset, 32).unwrap();
            assert_eq!(g.status, GetStatus::Found, "{topic}/{q} at {offset}");
            assert!(
                !g.messages.is_empty() && g.messages.len() <= 32,
                "{topic}/{q} at {offset}"
            );
            assert_eq!((g.min_offset, g.max_offset), (0, max), "{topic}/{q} at {offset}");
            for (m, k) in g.messages.iter().zip(offset..) {
                // a message added after the fixture is checked by the caller
                let Some(e) = entries.get(k as usize) else {
                    break;
                };
                let what = format!("message {} ({topic}/{q} offset {k})", e.i);
                assert_eq!(m.body(), body(e.i).as_slice(), "{what}: body");
                assert_eq!((m.topic(), m.queue_id(), m.queue_offset()), (topic, q, k), "{what}");
                assert_eq!(
                    (m.commit_log_offset(), m.size()),
                    (e.commit_log_offset, e.size),
                    "{what}"
                );
                assert_eq!(m.tags(), e.tags.as_deref(), "{what}: tags");
                assert_eq!(
                    m.keys(),
                    e.keys.iter().map(String::as_str).collect::<Vec<_>>(),
                    "{what}: keys"
                );
                assert_eq!(m.property("p"), Some(e.p.as_str()), "{what}: property p");
                assert_eq!(m.store_timestamp(), e.store_timestamp, "{what}: store timestamp");
                assert_eq!(m.born_timestamp(), e.born_timestamp, "{what}: born timestamp");
                assert_eq!(m.born_host(), e.born_host, "{what}: born host");
            }
            assert_eq!(
                g.next_offset,
                offset + g.messages.len() as u64,
                "{topic}/{q} at {offset}"
            );
            offset = g.next_offset;
        }
        assert_eq!(
            store.get(topic, q, max, 32).unwrap().status,
            GetStatus::OffsetOverflowOne,
            "{topic}/{q}"
        );
    }
    assert_eq!(store.max_commit_log_offset(), end);
}

/// Waits (bounded) until the dispatcher has made queue offset `offset` visible.
fn wait_dispatched(store: &MessageStore, topic: &str, q: u32, offset: u64) {
    let start = Instant::now();
    while store.max_offset(topic, q) <= offset {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{topic}/{q} offset {offset} never dispatched"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Opens a copy of fixture `name`, reads everything, appends one message to orders/0, and reads it all again after a
/// close and reopen.
fn open_check_put_reopen(name: &str) {
    let manifest = load_manifest(name);
    let end = manifest
        .iter()
        .map(|e| e.commit_log_offset + e.size as u64)
        .max()
        .unwrap();
    let (_tmp, dir) = copy_fixture(name);

    let store = MessageStore::open(StoreConfig::new(&dir)).unwrap();
    check_store(&store, &manifest, &[], end);

    let next = manifest
        .iter()
        .filter(|e| (e.topic.as_str(), e.queue_id) == ("orders", 0))
        .count() as u64;
    let r = store
        .put(
            Message::new("orders", 0, b"written by mqstore".to_vec())
                .with_tags("TagC")
                .with_keys(["k-mqstore"]),
        )
        .unwrap();
    assert_eq!(r.status, PutStatus::Ok);
    assert_eq!(
        (r.queue_offset, r.commit_log_offset),
        (next, end),
        "appended right after the RocketMQ records"
    );
    wait_dispatched(&store, "orders", 0, next);
    let new_end = store.max_commit_log_offset();
    assert!(new_end > end);
    store.close().unwrap();
    drop(store);

    let store = MessageStore::open(StoreConfig::new(&dir)).unwrap();
    check_store(&store, &manifest, &[("orders", 0)], new_end);
    let g = store.get("orders", 0, next, 32).unwrap();
    assert_eq!(g.status, GetStatus::Found);
    assert_eq!((g.messages.len(), g.next_offset), (1, next + 1));
    let m = &g.messages[0];
    assert_eq!(m.body(), b"written by mqstore");
    assert_eq!((m.queue_offset(), m.commit_log_offset()), (next, end));
    assert_eq!((m.tags(), m.keys()), (Some("TagC"), vec!["k-mqstore"]));
    assert_eq!(end + m.size() as u64, new_end);
    store.close().unwrap();
}

/// Written by `rocketmq-bench fixture DIR clean`: the writer shut down cleanly (no abort marker).
#[test]
fn reads_rocketmq_clean_store() {
    open_check_put_reopen("rocketmq-1.0.0-clean");
}

/// Written by `rocketmq-bench fixture DIR crash`: everything flushed, then the process exited without shutdown, so the
/// abort marker is present and opening goes through crash recovery, which must keep all 400 messages.
#[test]
fn recovers_rocketmq_crashed_store() {
    assert!(fixtures().join("rocketmq-1.0.0-crash/abort").exists());
    open_check_put_reopen("rocketmq-1.0.0-crash");
}

/// Opens a copy of fixture `name` and finds every message through RocketMQ's own index file: each by its `key-<i>`,
/// each group by `grp-<n>` (newest first), then by its store-assigned id; then a message mqstore adds is found in
/// the same file, before and after a reopen.
fn finds_by_key(name: &str, checked_on_open: bool) {
    let manifest = load_manifest(name);
    let (_tmp, dir) = copy_fixture(name);
    let report = mqstore::verify::verify_store(&dir).unwrap();
    assert_eq!((report.index_files, report.index_entries), (1, 1160), "{report}");
    assert!(report.damage.iter().all(|d| !d.file.starts_with("index")), "{report}");
    let index_dir = dir.join("index");
    let original: Vec<_> = std::fs::read_dir(&index_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(original.len(), 1);

    let store = MessageStore::open(StoreConfig::new(&dir)).unwrap();
    let report = store.recovery_report().index.clone().expect("the store keeps an index");
    assert_eq!(report.files, 1);
    assert!(report.files_removed.is_empty(), "{report:?}");
    if checked_on_open {
        // After a crash nothing is trusted: every entry (keys and RocketMQ 5's tag entries) is checked, all pass;
        // the last message's three entries are cut (they could be partial) and it is indexed again, without the
        // tag entry mqstore does not write.
        assert_eq!((report.entries_checked, report.entries_cut), (1160, 3), "{report:?}");
    } else {
        assert_eq!(report.entries_checked, 0, "{report:?}");
    }
    let files = store.index_files();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].path.file_name(), Some(original[0].as_os_str()));
    let count = if checked_on_open { 1160 } else { 1161 };
    assert_eq!(
        (files[0].slots, files[0].capacity, files[0].header.index_count),
        (512, 2048, count)
    );

    for e in &manifest {
        let found = store.query_by_key(&e.topic, &format!("key-{}", e.i), 8).unwrap();
        assert_eq!(found.len(), 1, "key-{}", e.i);
        assert_eq!(found[0].commit_log_offset(), e.commit_log_offset);
        assert_eq!(found[0].property("p"), Some(e.p.as_str()));
        let by_id = store.get_by_id(&found[0].msg_id()).unwrap().expect("found by id");
        assert_eq!(
            (by_id.commit_log_offset(), by_id.queue_offset()),
            (e.commit_log_offset, e.queue_offset)
        );
        // Another topic never answers for it.
        let other = if e.topic == "orders" { "audit-log" } else { "orders" };
        assert!(
            store
                .query_by_key(other, &format!("key-{}", e.i), 8)
                .unwrap()
                .is_empty()
        );
    }
    for topic in ["orders", "audit-log"] {
        for g in 0..7 {
            let key = format!("grp-{g}");
            let mut want: Vec<u64> = manifest
                .iter()
                .filter(|e| e.topic == topic && e.keys.contains(&key))
                .map(|e| e.commit_log_offset)
                .collect();
            want.sort_unstable_by(|a, b| b.cmp(a));
            want.truncate(64);
            let got: Vec<u64> = store
                .query_by_key(topic, &key, 64)
                .unwrap()
                .iter()
                .map(|m| m.commit_log_offset())
                .collect();
            assert_eq!(got, want, "{topic} {key}");
        }
    }

    let r = store
        .put(Message::new("orders", 0, b"after".to_vec()).with_keys(["grp-3"]))
        .unwrap();
    let newest = store.query_by_key("orders", "grp-3", 1).unwrap();
    assert_eq!(newest[0].commit_log_offset(), r.commit_log_offset);
    store.close().unwrap();
    drop(store);
    let store = MessageStore::open(StoreConfig::new(&dir)).unwrap();
    let newest = store.query_by_key("orders", "grp-3", 2).unwrap();
    assert_eq!(newest[0].commit_log_offset(), r.commit_log_offset);
    assert_eq!(store.index_files().len(), 1, "the entry went into RocketMQ's file");
    let found = store
        .query_by_key("orders", &r.unique_key.expect("a unique key").to_string(), 2)
        .unwrap();
    assert_eq!(found.len(), 1);
    store.close().unwrap();
}

#[test]
fn finds_rocketmq_clean_store_messages_by_key() {
    finds_by_key("rocketmq-1.0.0-clean", false);
}

#[test]
fn finds_rocketmq_crashed_store_messages_by_key() {
    finds_by_key("rocketmq-1.0.0-crash", true);
}
