//! Every bad input is refused with a typed error, and nothing is appended.

mod common;

use common::small_config;
use mqstore::{Error, Message, MessageStore, StoreConfig};

fn assert_nothing_appended(store: &MessageStore, f: impl FnOnce() -> mqstore::Result<mqstore::PutResult>) -> Error {
    let before = store.max_commit_log_offset();
    let err = f().expect_err("must be refused");
    assert_eq!(store.max_commit_log_offset(), before, "refused put appended bytes");
    err
}

#[test]
fn invalid_topic_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    let long = "a".repeat(128);
    for topic in [
        "",
        "..",
        ".",
        "a/b",
        "a\\b",
        "../etc",
        "a b",
        "tópico",
        "a\0b",
        "a.b",
        long.as_str(),
    ] {
        let err = assert_nothing_appended(&store, || store.put(Message::new(topic, 0, b"x".to_vec())));
        assert!(matches!(err, Error::InvalidTopic { .. }), "{topic:?}: {err:?}");
        assert!(
            matches!(store.get(topic, 0, 0, 1), Err(Error::InvalidTopic { .. })),
            "{topic:?}"
        );
    }
    // The edges that are allowed.
    for topic in ["a".repeat(127).as_str(), "%RETRY%group-1", "A_b-c|d", "0"] {
        store.put(Message::new(topic, 0, b"ok".to_vec())).unwrap();
    }
    // Nothing was created outside the store directory.
    assert!(!dir.path().join("consumequeue/..").join("etc").exists());
}

#[test]
fn queue_id_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path()).max_queues_per_topic(8)).unwrap();
    let err = assert_nothing_appended(&store, || store.put(Message::new("t", 8, b"x".to_vec())));
    assert!(
        matches!(err, Error::QueueIdOutOfRange { queue_id: 8, max: 8 }),
        "{err:?}"
    );
    assert!(matches!(
        store.get("t", u32::MAX, 0, 1),
        Err(Error::QueueIdOutOfRange { .. })
    ));
    store.put(Message::new("t", 7, b"x".to_vec())).unwrap();
}

#[test]
fn oversized_body_and_properties() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(
        StoreConfig::new(dir.path())
            .commit_log_segment_size(1 << 20)
            .max_message_size(1000),
    )
    .unwrap();
    let err = assert_nothing_appended(&store, || store.put(Message::new("t", 0, vec![0u8; 1001])));
    assert!(
        matches!(err, Error::MessageTooLarge { size: 1001, max: 1000 }),
        "{err:?}"
    );
    store.put(Message::new("t", 0, vec![0u8; 1000])).unwrap();

    let big = "v".repeat(40_000);
    let err = assert_nothing_appended(&store, || {
        store.put(Message::new("t", 0, b"x".to_vec()).with_property("k", big.as_str()))
    });
    assert!(matches!(err, Error::PropertiesTooLarge { .. }), "{err:?}");
}

#[test]
fn unrepresentable_properties_keys_and_tags() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    let cases: Vec<Message> = vec![
        Message::new("t", 0, b"x".to_vec()).with_property("k\u{1}", "v"),
        Message::new("t", 0, b"x".to_vec()).with_property("k", "v\u{2}"),
        Message::new("t", 0, b"x".to_vec()).with_property("", "v"),
        Message::new("t", 0, b"x".to_vec()).with_property("TAGS", "v"),
        Message::new("t", 0, b"x".to_vec()).with_property("KEYS", "v"),
        Message::new("t", 0, b"x".to_vec()).with_property("__CRC32#", "0"),
        Message::new("t", 0, b"x".to_vec()).with_keys(["has space"]),
        Message::new("t", 0, b"x".to_vec()).with_keys([""]),
        Message::new("t", 0, b"x".to_vec()).with_tags(""),
        Message::new("t", 0, b"x".to_vec()).with_tags("a\u{1}b"),
    ];
    for m in cases {
        let dbg = format!("{m:?}");
        let err = assert_nothing_appended(&store, || store.put(m));
        assert!(matches!(err, Error::InvalidProperty { .. }), "{dbg}: {err:?}");
    }
}

#[test]
fn a_bad_message_fails_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    let batch = vec![
        Message::new("t", 0, b"good".to_vec()),
        Message::new("bad/topic", 0, b"x".to_vec()),
    ];
    let before = store.max_commit_log_offset();
    assert!(matches!(store.put_batch(batch), Err(Error::InvalidTopic { .. })));
    assert_eq!(store.max_commit_log_offset(), before);
    assert_eq!(store.max_offset("t", 0), 0);
    let r = store.put(Message::new("t", 0, b"good".to_vec())).unwrap();
    assert_eq!(r.queue_offset, 0, "the refused batch consumed no queue offset");
}

#[test]
fn closed_store_refuses_puts() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    store.close().unwrap();
    assert!(matches!(
        store.put(Message::new("t", 0, b"x".to_vec())),
        Err(Error::Closed)
    ));
    assert!(matches!(
        store.put_batch(vec![Message::new("t", 0, b"x".to_vec())]),
        Err(Error::Closed)
    ));
    store.close().unwrap();
}

#[test]
fn invalid_configuration() {
    let dir = tempfile::tempdir().unwrap();
    for config in [
        StoreConfig::new(dir.path()).commit_log_segment_size(100),
        StoreConfig::new(dir.path()).consume_queue_units_per_segment(0),
        StoreConfig::new(dir.path()).max_message_size(0),
        StoreConfig::new(dir.path()).max_queues_per_topic(0),
    ] {
        assert!(matches!(MessageStore::open(config), Err(Error::InvalidConfig(_))));
    }
}
