//! Every accessor of a `StoredMessage` read back through `get` and `read_at` reports what was
//! put and what the record's bytes say, for IPv4 and IPv6 hosts, from the write buffer and from
//! the file. A message keeps only where its record's parts lie and reads the other fields from
//! the bytes on demand, so each accessor is checked against what was put and against
//! `codec::decode` (whose field positions the golden tests pin to hand-built RocketMQ records).

mod common;

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};

use common::{read_queue, small_config};
use mqstore::codec::{self, Frame, Verify};
use mqstore::{FlushPolicy, Message, MessageStore, StoredMessage};

fn v6(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(ip.parse::<Ipv6Addr>().unwrap(), port, 0, 0))
}

/// What each put was, to compare with what comes back.
struct Sent {
    body: Vec<u8>,
    flag: i32,
    born_timestamp: u64,
    born_host: SocketAddr,
    tags: String,
}

fn sent(i: u64) -> Sent {
    Sent {
        body: common::body(i, 100 + (i as usize * 37) % 900),
        flag: (i as i32).wrapping_mul(-7919),
        born_timestamp: 1_700_000_000_000 + i,
        born_host: if i.is_multiple_of(2) {
            format!("192.0.2.{}:{}", i % 250, 1000 + i).parse().unwrap()
        } else {
            v6("2001:db8::7", 60000 + i as u16)
        },
        tags: format!("tag-{}", i % 3),
    }
}

fn check(m: &StoredMessage, s: &Sent, store_host: SocketAddr, what: &str) {
    assert_eq!(m.body(), s.body.as_slice(), "{what}: body");
    assert_eq!(m.flag(), s.flag, "{what}: flag");
    assert_eq!(m.born_timestamp(), s.born_timestamp, "{what}: born timestamp");
    assert_eq!(m.born_host(), s.born_host, "{what}: born host");
    assert_eq!(m.store_host(), store_host, "{what}: store host");
    assert_eq!(m.tags(), Some(s.tags.as_str()), "{what}: tags");
    assert_eq!(m.reconsume_times(), 0, "{what}: reconsume times");

    let Ok(Frame::Record(view)) = codec::decode(m.record(), Verify::RequireRecordCrc) else {
        panic!("{what}: the message's record does not decode");
    };
    assert_eq!(m.size(), view.total_size, "{what}: size");
    assert_eq!(m.record().len(), view.total_size as usize, "{what}: record length");
    assert_eq!(m.topic(), view.topic, "{what}: topic");
    assert_eq!(m.queue_id(), view.queue_id, "{what}: queue id");
    assert_eq!(m.queue_offset(), view.queue_offset, "{what}: queue offset");
    assert_eq!(m.commit_log_offset(), view.physical_offset, "{what}: commit-log offset");
    assert_eq!(m.sys_flag(), view.sys_flag, "{what}: sys flag");
    assert_eq!(m.flag(), view.flag, "{what}: flag in the record");
    assert_eq!(m.body_crc(), view.body_crc, "{what}: body crc");
    assert_eq!(m.body_crc(), codec::masked_crc32(&s.body), "{what}: body crc value");
    assert_eq!(
        m.store_timestamp(),
        view.store_timestamp as u64,
        "{what}: store timestamp"
    );
    assert_eq!(m.born_host(), view.born_host, "{what}: born host in the record");
    assert_eq!(m.store_host(), view.store_host, "{what}: store host in the record");
    assert_eq!(m.properties_raw(), view.properties, "{what}: properties");
    assert_eq!(
        m.msg_id(),
        codec::offset_msg_id(store_host, m.commit_log_offset()),
        "{what}: msg id"
    );
}

fn round_trip(policy: FlushPolicy, store_host: SocketAddr) {
    const N: u64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        small_config(dir.path())
            .flush_policy(policy.clone())
            .store_host(store_host)
    };
    let store = MessageStore::open(config()).unwrap();
    let mut stamps = Vec::new();
    for i in 0..N {
        let s = sent(i);
        let put = store
            .put(
                Message::new("fields", (i % 2) as u32, s.body.clone())
                    .with_flag(s.flag)
                    .with_born_timestamp(s.born_timestamp)
                    .with_born_host(s.born_host)
                    .with_tags(s.tags.clone()),
            )
            .unwrap();
        stamps.push((put.commit_log_offset, put.store_timestamp));
    }
    let verify_all = |store: &MessageStore, when: &str| {
        for q in 0..2u32 {
            let got = read_queue(store, "fields", q);
            assert_eq!(got.len() as u64, N / 2, "{when}: queue {q}");
            for (k, m) in got.iter().enumerate() {
                let i = k as u64 * 2 + u64::from(q);
                let what = format!("{when}: message {i}");
                check(m, &sent(i), store_host, &what);
                assert_eq!(
                    (m.commit_log_offset(), m.store_timestamp()),
                    stamps[i as usize],
                    "{what}: put result"
                );
                let again = store.read_at(m.commit_log_offset()).unwrap().unwrap();
                check(&again, &sent(i), store_host, &format!("{what} (read_at)"));
            }
        }
    };
    // Read while the latest records may still sit in a write buffer, then from the files.
    verify_all(&store, "before close");
    store.close().unwrap();
    let store = MessageStore::open(config()).unwrap();
    verify_all(&store, "after reopen");
    store.close().unwrap();
}

#[test]
fn fields_read_back_with_ipv4_store_host() {
    round_trip(FlushPolicy::asynchronous(), "10.1.2.3:10911".parse().unwrap());
}

#[test]
fn fields_read_back_with_ipv6_store_host_through_write_buffers() {
    round_trip(FlushPolicy::buffered(), v6("fe80::1:2:3:4", 10912));
}

#[test]
fn a_producers_sys_flag_and_reconsume_count_are_stored_and_other_sys_flags_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    let flags = codec::COMPRESSED | codec::COMPRESSION_ZLIB;
    let put = store
        .put(
            Message::new("flags", 0, b"deflated".to_vec())
                .with_sys_flag(flags)
                .with_reconsume_times(3),
        )
        .unwrap();
    let m = store.read_at(put.commit_log_offset).unwrap().unwrap();
    assert_eq!(m.sys_flag() & mqstore::message::PRODUCER_SYS_FLAGS, flags);
    assert_eq!(m.reconsume_times(), 3);
    let Ok(Frame::Record(view)) = codec::decode(m.record(), Verify::RequireRecordCrc) else {
        panic!("a message record");
    };
    assert_eq!(view.sys_flag & flags, flags);
    let end = store.max_commit_log_offset();
    for bad in [codec::TRANSACTION_PREPARED_TYPE, codec::BORNHOST_V6, codec::INNER_BATCH] {
        let err = store
            .put(Message::new("flags", 0, b"x".to_vec()).with_sys_flag(bad))
            .unwrap_err();
        assert!(
            matches!(err, mqstore::Error::InvalidSysFlag { sys_flag } if sys_flag == bad),
            "{err}"
        );
    }
    assert_eq!(store.max_commit_log_offset(), end, "a refused put appends nothing");
    // The dispatcher's progress past an offset is what a broker's held pulls wait for.
    let seen = store.dispatched_offset();
    let waiter = std::thread::scope(|s| {
        let w = s.spawn(|| store.wait_dispatched_past(seen, std::time::Duration::from_secs(20)));
        store.put(Message::new("flags", 1, b"wakes".to_vec())).unwrap();
        w.join().unwrap()
    });
    assert!(waiter > seen);
    assert_eq!(
        store.wait_dispatched_past(store.max_commit_log_offset(), std::time::Duration::from_millis(50)),
        store.max_commit_log_offset(),
        "nothing new: the offset as it is, after the timeout"
    );
    store.close().unwrap();
}
