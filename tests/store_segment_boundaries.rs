//! Records of many sizes across many tiny segments: every record lands whole in one segment,
//! end-of-segment fillers are skipped, and everything reads back exactly.

mod common;

use common::{body, read_queue, small_config};
use mqstore::{Error, Message, MessageStore, PutStatus, StoreConfig};

#[test]
fn round_trip_across_many_segment_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let seg = 8 * 1024u64;
    let store = MessageStore::open(
        StoreConfig::new(dir.path())
            .commit_log_segment_size(seg)
            .consume_queue_units_per_segment(7),
    )
    .unwrap();
    let mut expected = Vec::new();
    for i in 0..600u64 {
        // Sizes up to near the largest record a segment can hold, so fillers of every length occur.
        let len = ((i * 397) % 7000) as usize;
        let r = store
            .put(Message::new("boundaries", 0, body(i, len)).with_tags(format!("t{}", i % 3)))
            .unwrap();
        assert_eq!(r.status, PutStatus::Ok);
        assert_eq!(r.queue_offset, i);
        // A record never spans two segments.
        assert_eq!(
            r.commit_log_offset / seg,
            (r.commit_log_offset + r.wrote_bytes as u64 - 1) / seg,
            "record {i} spans segments"
        );
        expected.push((r.commit_log_offset, body(i, len)));
    }
    let segments = std::fs::read_dir(dir.path().join("commitlog")).unwrap().count();
    assert!(segments > 100, "expected many segments, got {segments}");
    let msgs = read_queue(&store, "boundaries", 0);
    assert_eq!(msgs.len(), expected.len());
    for (i, (m, (offset, b))) in msgs.iter().zip(&expected).enumerate() {
        assert_eq!(m.queue_offset(), i as u64);
        assert_eq!(m.commit_log_offset(), *offset);
        assert_eq!(m.body(), b.as_slice());
        assert_eq!(m.tags(), Some(format!("t{}", i % 3).as_str()));
        // read by commit-log offset finds the same record
        let direct = store.read_at(*offset).unwrap().expect("record at its offset");
        assert_eq!(direct.body(), b.as_slice());
    }
    store.close().unwrap();
}

#[test]
fn record_larger_than_a_segment_is_refused_and_nothing_is_appended() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    store.put(Message::new("t", 0, vec![1u8; 100])).unwrap();
    let before = store.max_commit_log_offset();
    let err = store.put(Message::new("t", 0, vec![0u8; 64 * 1024])).unwrap_err();
    assert!(matches!(err, Error::RecordExceedsSegment { .. }), "{err:?}");
    assert_eq!(store.max_commit_log_offset(), before);
    // The queue offset was not consumed either.
    let r = store.put(Message::new("t", 0, vec![2u8; 10])).unwrap();
    assert_eq!(r.queue_offset, 1);
    assert_eq!(read_queue(&store, "t", 0).len(), 2);
}

#[test]
fn largest_record_that_fits_fills_a_segment_exactly_but_the_slack() {
    let dir = tempfile::tempdir().unwrap();
    let seg = 64 * 1024u64;
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    // Find the encoded overhead with a first record, then fill one segment to its last 8 bytes.
    let r0 = store.put(Message::new("t", 0, Vec::<u8>::new())).unwrap();
    let overhead = r0.wrote_bytes as u64;
    let body_len = (seg - 8 - overhead - overhead) as usize;
    let r1 = store.put(Message::new("t", 0, vec![7u8; body_len])).unwrap();
    assert_eq!(r1.commit_log_offset, overhead);
    assert_eq!(store.max_commit_log_offset(), seg - 8);
    // One more byte of anything goes to the next segment.
    let r2 = store.put(Message::new("t", 0, vec![9u8; 1])).unwrap();
    assert_eq!(r2.commit_log_offset, seg);
    let msgs = read_queue(&store, "t", 0);
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[1].body().len(), body_len);
    assert_eq!(msgs[2].body(), &[9u8]);
}

/// The segment after the active one is created ahead of need, in the background: once the
/// allocation thread settles, its file is on disk before any record reaches it, and appends then
/// roll into it.
#[test]
fn next_segment_is_prepared_ahead_of_need() {
    let dir = tempfile::tempdir().unwrap();
    let seg = 64 * 1024u64;
    let store = MessageStore::open(
        StoreConfig::new(dir.path())
            .commit_log_segment_size(seg)
            .warm_up_segments(true),
    )
    .unwrap();
    let r = store.put(Message::new("ahead", 0, body(0, 100))).unwrap();
    assert_eq!(r.status, PutStatus::Ok);
    assert!(store.wait_segments_prepared(std::time::Duration::from_secs(30)));
    let next = dir.path().join(format!("commitlog/{seg:020}"));
    assert_eq!(std::fs::metadata(&next).unwrap().len(), seg, "next segment prepared");
    assert!(store.max_commit_log_offset() < seg);
    for i in 1..200u64 {
        store.put(Message::new("ahead", 0, body(i, 1000))).unwrap();
    }
    assert!(store.max_commit_log_offset() > seg);
    assert_eq!(read_queue(&store, "ahead", 0).len(), 200);
}
