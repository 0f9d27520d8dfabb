//! Every `GetStatus` a consumer can meet, with RocketMQ's meaning and next offsets.

mod common;

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};

use common::{read_queue, small_config};
use mqstore::{GetStatus, Message, MessageStore, TagFilter};

fn store_with(dir: &std::path::Path, n: u64) -> MessageStore {
    let store = MessageStore::open(small_config(dir)).unwrap();
    for i in 0..n {
        let tag = if i % 2 == 0 { "even" } else { "odd" };
        store
            .put(Message::new("st", 0, vec![i as u8; 500]).with_tags(tag))
            .unwrap();
    }
    store
}

#[test]
fn found_overflow_and_empty_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 10);

    let g = store.get("st", 0, 0, 4).unwrap();
    assert_eq!(g.status, GetStatus::Found);
    assert_eq!(g.messages.len(), 4);
    assert_eq!((g.next_offset, g.min_offset, g.max_offset), (4, 0, 10));

    let g = store.get("st", 0, 8, 32).unwrap();
    assert_eq!(g.status, GetStatus::Found);
    assert_eq!(g.messages.len(), 2);
    assert_eq!(g.next_offset, 10);

    let g = store.get("st", 0, 10, 32).unwrap();
    assert_eq!(g.status, GetStatus::OffsetOverflowOne);
    assert_eq!(g.next_offset, 10);
    assert!(g.messages.is_empty());

    let g = store.get("st", 0, 11, 32).unwrap();
    assert_eq!(g.status, GetStatus::OffsetOverflowBadly);
    assert_eq!(g.next_offset, 10);

    // A queue never written, and a topic never written.
    for (t, q) in [("st", 1), ("nothing-here", 0)] {
        let g = store.get(t, q, 0, 32).unwrap();
        assert_eq!(g.status, GetStatus::NoMessageInQueue);
        assert_eq!((g.next_offset, g.min_offset, g.max_offset), (0, 0, 0));
    }
}

#[test]
fn filtered_get_matches_tags_and_skips_whole_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 10);
    let odd = TagFilter::parse("odd");
    let g = store.get_filtered("st", 0, 0, 32, &odd).unwrap();
    assert_eq!(g.status, GetStatus::Found);
    let offsets: Vec<u64> = g.messages.iter().map(|m| m.queue_offset()).collect();
    assert_eq!(offsets, vec![1, 3, 5, 7, 9]);
    assert_eq!(g.next_offset, 10);

    let both = TagFilter::parse("odd || even");
    assert_eq!(store.get_filtered("st", 0, 0, 32, &both).unwrap().messages.len(), 10);
    assert_eq!(
        store
            .get_filtered("st", 0, 0, 32, &TagFilter::parse("*"))
            .unwrap()
            .messages
            .len(),
        10
    );

    // Nothing matches: the whole range is skipped and the consumer moves past it.
    let none = TagFilter::parse("missing");
    let g = store.get_filtered("st", 0, 2, 32, &none).unwrap();
    assert_eq!(g.status, GetStatus::NoMatchedMessage);
    assert!(g.messages.is_empty());
    assert_eq!(g.next_offset, 10);
}

#[test]
fn offset_too_small_when_the_first_consume_queue_file_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    // 64 units per consume-queue file and 64 KiB log segments: 250 messages of about 650 bytes
    // make four queue files and three log segments.
    store_with(dir.path(), 250).close().unwrap();
    // What retention does: the oldest log segment goes, and the queue file wholly below it. (A
    // queue file lost alone is rebuilt from the log: tests/derived_rebuild.rs.)
    std::fs::remove_file(dir.path().join("commitlog/00000000000000000000")).unwrap();
    std::fs::remove_file(dir.path().join("consumequeue/st/0/00000000000000000000")).unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    let min = store.min_offset("st", 0);
    assert!(min > 64 && min < 128, "the first message left in the log: {min}");
    let g = store.get("st", 0, 3, 32).unwrap();
    assert_eq!(g.status, GetStatus::OffsetTooSmall);
    assert_eq!(g.next_offset, min);
    let g = store.get("st", 0, min, 1).unwrap();
    assert_eq!(g.status, GetStatus::Found);
    assert_eq!(g.messages[0].body(), &[min as u8; 500][..]);
    assert!(g.messages[0].commit_log_offset() >= 64 * 1024);
}

#[test]
fn a_damaged_unit_is_repaired_by_the_read_that_finds_it() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 100).close().unwrap();
    // Zero unit 5 of the first (not the last) consume-queue file: a hole inside the queue, below
    // the checkpoint's mark, which recovery does not look at.
    let path = dir.path().join("consumequeue/st/0/00000000000000000000");
    let original = std::fs::read(&path).unwrap();
    let mut f = OpenOptions::new().write(true).open(&path).unwrap();
    f.seek(SeekFrom::Start(5 * 20)).unwrap();
    f.write_all(&[0u8; 20]).unwrap();
    drop(f);
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    // A read across the hole used to stop before it, and one at it to skip the rest of the
    // file (OffsetFoundNull, next offset 64): the unit is rewritten from the log instead.
    let g = store.get("st", 0, 2, 32).unwrap();
    assert_eq!(g.status, GetStatus::Found);
    assert_eq!(g.messages.len(), 32);
    assert_eq!(g.messages[3].queue_offset(), 5);
    assert_eq!(g.messages[3].body(), &[5u8; 500][..]);
    assert_eq!(g.next_offset, 34);
    store.close().unwrap();
    assert!(std::fs::read(&path).unwrap() == original, "the repair is on disk");
}

#[test]
fn min_offset_moves_past_units_whose_log_segment_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    // 500-byte bodies in 64 KiB segments: about 100 records a segment; 300 make three.
    store_with(dir.path(), 300).close().unwrap();
    std::fs::remove_file(dir.path().join("commitlog/00000000000000000000")).unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    let min = store.min_offset("st", 0);
    assert!(min > 50 && min < 150, "min offset {min}");
    let g = store.get("st", 0, 0, 8).unwrap();
    assert_eq!(g.status, GetStatus::OffsetTooSmall);
    assert_eq!(g.next_offset, min);
    let g = store.get("st", 0, min, 1).unwrap();
    assert_eq!(g.status, GetStatus::Found);
    assert!(g.messages[0].commit_log_offset() >= 64 * 1024);
    assert_eq!(g.messages[0].body(), &[(min % 256) as u8; 500][..]);
}

#[test]
fn get_sees_a_put_that_returned() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    for i in 0..200u64 {
        let r = store.put(Message::new("ryw", 0, i.to_be_bytes().to_vec())).unwrap();
        let g = store.get("ryw", 0, r.queue_offset, 1).unwrap();
        assert_eq!(g.status, GetStatus::Found, "put {i} not visible to the next get");
        assert_eq!(g.messages[0].body(), i.to_be_bytes());
    }
    assert_eq!(read_queue(&store, "ryw", 0).len(), 200);
}
