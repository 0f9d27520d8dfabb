//! The buffered policy (RocketMQ's transient store pool): appends go to write buffers and are
//! committed into the files later. Data must read back correctly at every stage — still in a
//! buffer, committed, flushed — across segment roll-overs that recycle buffers, when readers
//! hold on to buffers, and after a reopen.

mod common;

use std::time::Duration;

use common::{body, read_queue};
use mqstore::{FlushPolicy, Message, MessageStore, PutStatus, StoreConfig, StoredMessage};

const SEG: u64 = 16 * 1024;

fn config(dir: &std::path::Path, commit_every: Duration) -> StoreConfig {
    StoreConfig::new(dir)
        .flush_policy(
            FlushPolicy::buffered()
                .with_buffers(2, false)
                .with_commit_interval(commit_every),
        )
        .commit_log_segment_size(SEG)
        .consume_queue_units_per_segment(32)
}

/// The record's bytes as they sit in the segment file right now.
fn file_bytes(dir: &std::path::Path, m: &StoredMessage) -> Vec<u8> {
    let start = m.commit_log_offset() - m.commit_log_offset() % SEG;
    let file = std::fs::read(dir.join(format!("commitlog/{start:020}"))).unwrap();
    let pos = (m.commit_log_offset() - start) as usize;
    file[pos..pos + m.size() as usize].to_vec()
}

#[test]
fn readable_in_buffer_then_committed_then_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    // Commits far apart: the test decides when data moves to the file.
    let store = MessageStore::open(config(dir.path(), Duration::from_secs(3600))).unwrap();
    let mut expected = Vec::new();
    for i in 0..10u64 {
        let r = store.put(Message::new("buf", 0, body(i, 300)).with_tags("t")).unwrap();
        assert_eq!(r.status, PutStatus::Ok);
        expected.push(body(i, 300));
    }
    // Stage 1: only in the write buffer. Readable, and not yet in the file.
    let msgs = read_queue(&store, "buf", 0);
    assert_eq!(msgs.iter().map(|m| m.body().to_vec()).collect::<Vec<_>>(), expected);
    assert!(
        file_bytes(dir.path(), &msgs[0]).iter().all(|&b| b == 0),
        "data reached the file before any commit"
    );
    // Stage 2: committed and flushed. The same bytes, now in the file.
    store.flush().unwrap();
    for m in &msgs {
        assert_eq!(file_bytes(dir.path(), m), m.record(), "file differs from the buffer");
    }
    let again = read_queue(&store, "buf", 0);
    assert_eq!(again.iter().map(|m| m.body().to_vec()).collect::<Vec<_>>(), expected);
    store.close().unwrap();
    drop(store);
    // Stage 3: after a reopen, from the file.
    let store = MessageStore::open(config(dir.path(), Duration::from_secs(3600))).unwrap();
    let reopened = read_queue(&store, "buf", 0);
    assert_eq!(reopened.iter().map(|m| m.body().to_vec()).collect::<Vec<_>>(), expected);
}

#[test]
fn roll_overs_recycle_buffers_and_everything_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path(), Duration::from_millis(5))).unwrap();
    let mut expected = Vec::new();
    // ~40 segments through a pool of 2 buffers: each is reused many times.
    for i in 0..600u64 {
        let len = ((i * 131) % 1500) as usize;
        let q = (i % 3) as u32;
        store.put(Message::new("roll", q, body(i, len))).unwrap();
        expected.push((q, body(i, len)));
        if i % 50 == 0 {
            // Readers interleaved with writers see every stage.
            let got = read_queue(&store, "roll", q);
            let want: Vec<&Vec<u8>> = expected.iter().filter(|(eq, _)| *eq == q).map(|(_, b)| b).collect();
            assert_eq!(got.len(), want.len());
            for (m, b) in got.iter().zip(want) {
                assert_eq!(m.body(), b.as_slice());
            }
        }
    }
    assert!(std::fs::read_dir(dir.path().join("commitlog")).unwrap().count() > 20);
    store.close().unwrap();
    drop(store);
    let store = MessageStore::open(config(dir.path(), Duration::from_millis(5))).unwrap();
    for q in 0..3 {
        let got = read_queue(&store, "roll", q);
        let want: Vec<&Vec<u8>> = expected.iter().filter(|(eq, _)| *eq == q).map(|(_, b)| b).collect();
        assert_eq!(got.len(), want.len());
        for (m, b) in got.iter().zip(want) {
            assert_eq!(m.body(), b.as_slice());
        }
    }
}

#[test]
fn readers_holding_buffers_force_direct_writes_without_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path(), Duration::from_secs(3600))).unwrap();
    // Hold a message from each buffered segment: its buffer cannot go back to the pool, so
    // later segments are written directly to the file. Held messages must stay intact.
    let mut held = Vec::new();
    for i in 0..200u64 {
        let r = store.put(Message::new("hold", 0, body(i, 900))).unwrap();
        let g = store.get("hold", 0, r.queue_offset, 1).unwrap();
        if i % 10 == 0 {
            held.push((g.messages[0].clone(), body(i, 900)));
        }
    }
    store.flush().unwrap();
    for (m, b) in &held {
        assert_eq!(m.body(), b.as_slice(), "a held message changed under its reader");
        assert_eq!(file_bytes(dir.path(), m), m.record());
    }
    assert_eq!(read_queue(&store, "hold", 0).len(), 200);
}

#[test]
fn sync_through_write_buffers_is_in_the_file_when_put_returns() {
    let dir = tempfile::tempdir().unwrap();
    let config = |dir: &std::path::Path| {
        StoreConfig::new(dir)
            .flush_policy(FlushPolicy::sync().with_buffers(2, false))
            .commit_log_segment_size(SEG)
            .consume_queue_units_per_segment(32)
    };
    let store = MessageStore::open(config(dir.path())).unwrap();
    let mut expected = Vec::new();
    for i in 0..120u64 {
        let r = store.put(Message::new("sb", (i % 2) as u32, body(i, 700))).unwrap();
        assert_eq!(r.status, PutStatus::Ok);
        assert!(store.flushed_commit_log_offset() >= r.commit_log_offset + r.wrote_bytes as u64);
        // Durable means in the file: the leader wrote the buffered bytes through before syncing.
        let m = store.read_at(r.commit_log_offset).unwrap().unwrap();
        assert_eq!(file_bytes(dir.path(), &m), m.record());
        expected.push(((i % 2) as u32, body(i, 700)));
    }
    store.halt();
    drop(store);
    // A crash right after: every acknowledged put is there.
    let store = MessageStore::open(config(dir.path())).unwrap();
    for q in 0..2 {
        let got: Vec<Vec<u8>> = read_queue(&store, "sb", q).iter().map(|m| m.body().to_vec()).collect();
        let want: Vec<Vec<u8>> = expected
            .iter()
            .filter(|(eq, _)| *eq == q)
            .map(|(_, b)| b.clone())
            .collect();
        assert_eq!(got, want);
    }
}
