//! `mqstore-interop [DIR]`: writes a store with mqstore (several topics and queues, bodies from
//! 1 byte to 6 KiB across segment boundaries, tags, keys, user properties, IPv4 and IPv6 born
//! hosts), closes it, then opens the same directory with RocketMQ's own store (the Rust port's
//! `rocketmq-store` 1.0.0) and checks that it reads every message back as mqstore wrote it:
//! through its consume queues (`get_message`, each record decoded by the port's decoder with its
//! body CRC checked), by commit-log offset (`look_message_by_offset`) and by key through its
//! index (`query_message`). Exit 0 when every check holds, 1 otherwise.
//!
//! Properties are compared as maps: mqstore adds RocketMQ's whole-record CRC property
//! (`__CRC32#`, which RocketMQ writes with `enabledAppendPropCRC`) and writes KEYS after the
//! user properties, both valid RocketMQ encodings that a byte-for-byte comparison of property
//! strings would flag.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cheetah_string::CheetahString;
use dashmap::DashMap;
use mqstore::{Message, MessageStore, StoreConfig};
use rocketmq_model::common::config::TopicConfig;
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};
use rocketmq_store::{
    BrokerReadStore, BrokerReplicationStore, BrokerStorePort, FlushDiskType, GetMessageStatus, LocalFileMessageStore,
    MessageStoreConfig, MicroBatchPolicy, StoreRuntimeConfig,
};

const SEGMENT: u64 = 4 << 20;
const CQ_UNITS: u64 = 1000;
const HASH_SLOTS: u32 = 4096;
const INDEX_ENTRIES: u32 = 32768;
const TOPICS: [&str; 2] = ["interop-a", "interop-b"];
const QUEUES: u32 = 3;
const MESSAGES: usize = 3000;

/// What mqstore was given and what it answered, for one message.
struct Sent {
    topic: &'static str,
    queue_id: u32,
    body: Vec<u8>,
    tags: String,
    keys: Vec<String>,
    user: (String, String),
    flag: i32,
    born_host: SocketAddr,
    queue_offset: u64,
    commit_log_offset: u64,
    store_timestamp: u64,
    unique_key: String,
}

fn body(i: usize) -> Vec<u8> {
    let len = 1 + (i * 7919) % 6144;
    (0..len).map(|k| (i.wrapping_mul(31) + k * 7) as u8).collect()
}

fn write(dir: &Path) -> Vec<Sent> {
    let config = StoreConfig::new(dir)
        .commit_log_segment_size(SEGMENT)
        .consume_queue_units_per_segment(CQ_UNITS)
        .index_size(HASH_SLOTS, INDEX_ENTRIES);
    let store = MessageStore::open(config).expect("mqstore opens");
    let mut sent = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES {
        let topic = TOPICS[i % TOPICS.len()];
        let queue_id = (i / TOPICS.len()) as u32 % QUEUES;
        let born_host: SocketAddr = if i % 5 == 0 {
            format!("[2001:db8::{:x}]:{}", i % 4096, 10000 + i % 5000)
                .parse()
                .unwrap()
        } else {
            format!("192.0.2.{}:{}", i % 250, 20000 + i % 5000).parse().unwrap()
        };
        let (tags, keys, user) = (
            format!("tag-{}", i % 4),
            vec![format!("key-{i}"), format!("group-{}", i % 10)],
            ("p".to_string(), format!("v{i}")),
        );
        let flag = (i as i32).wrapping_mul(-7);
        let msg = Message::new(topic, queue_id, body(i))
            .with_tags(tags.clone())
            .with_keys(keys.clone())
            .with_property(user.0.clone(), user.1.clone())
            .with_flag(flag)
            .with_born_host(born_host);
        let r = store.put(msg).expect("put");
        sent.push(Sent {
            topic,
            queue_id,
            body: body(i),
            tags,
            keys,
            user,
            flag,
            born_host,
            queue_offset: r.queue_offset,
            commit_log_offset: r.commit_log_offset,
            store_timestamp: r.store_timestamp,
            unique_key: r.unique_key.map(|k| k.to_string()).unwrap_or_default(),
        });
    }
    println!(
        "mqstore wrote {MESSAGES} messages, {} commit-log bytes in {} segments of {} bytes",
        store.max_commit_log_offset(),
        store.max_commit_log_offset().div_ceil(SEGMENT),
        SEGMENT
    );
    store.close().expect("clean close");
    sent
}

fn open_port(owner: &RuntimeOwner, dir: &Path) -> LocalFileMessageStore {
    let mut cfg = MessageStoreConfig {
        store_path_root_dir: dir.to_string_lossy().to_string().into(),
        flush_disk_type: FlushDiskType::AsyncFlush,
        ha_listen_port: 0,
        ..MessageStoreConfig::default()
    };
    cfg.mapped_file_size_commit_log = SEGMENT as _;
    cfg.mapped_file_size_consume_queue = (CQ_UNITS * 20) as _;
    cfg.max_hash_slot_num = HASH_SLOTS as _;
    cfg.max_index_num = INDEX_ENTRIES as _;
    // The timer wheel is no part of the format under test.
    cfg.timer_wheel_enable = false;
    let mut store = LocalFileMessageStore::new(
        Arc::new(cfg),
        MicroBatchPolicy::disabled(1).unwrap(),
        Arc::new(StoreRuntimeConfig::default()),
        Arc::new(DashMap::<CheetahString, Arc<TopicConfig>>::new()),
        None,
        false,
        owner.root_context().component("interop-store"),
    )
    .expect("the port's store is created")
    .expect("its config is valid");
    store.wire_owned_root_dependencies().expect("wire");
    store
}

/// The differences between what was sent and what the port decoded.
fn compare(s: &Sent, m: &rocketmq_model::common::message::message_ext::MessageExt) -> Vec<String> {
    let mut bad = Vec::new();
    let mut check = |what: &str, ok: bool| {
        if !ok {
            bad.push(what.to_string());
        }
    };
    check("topic", m.topic().as_str() == s.topic);
    check("queue id", m.queue_id() == s.queue_id as i32);
    check("queue offset", m.queue_offset() == s.queue_offset as i64);
    check("commit-log offset", m.commit_log_offset() == s.commit_log_offset as i64);
    check("body", m.body().as_deref() == Some(&s.body[..]));
    check("store timestamp", m.store_timestamp() == s.store_timestamp as i64);
    check("flag", m.flag() == s.flag);
    check("born host", m.born_host() == s.born_host);
    let props: HashMap<String, String> = m
        .properties()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    check("tags", props.get("TAGS") == Some(&s.tags));
    check("keys", props.get("KEYS") == Some(&s.keys.join(" ")));
    check("user property", props.get(&s.user.0) == Some(&s.user.1));
    check("unique key", props.get("UNIQ_KEY") == Some(&s.unique_key));
    check("record CRC property present", props.contains_key("__CRC32#"));
    let expected = ["TAGS", "KEYS", "UNIQ_KEY", "__CRC32#", s.user.0.as_str()];
    check(
        "no other property",
        props.keys().all(|k| expected.contains(&k.as_str())),
    );
    bad
}

fn main() {
    let scratch;
    let dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            scratch = tempfile::tempdir().unwrap();
            scratch.path().join("store")
        }
    };
    let sent = write(&dir);
    let by_offset: HashMap<u64, usize> = sent.iter().enumerate().map(|(i, s)| (s.commit_log_offset, i)).collect();

    let owner = RuntimeOwner::plan(RuntimeConfig::server_default("interop"))
        .unwrap()
        .build()
        .unwrap();
    let mut store = open_port(&owner, &dir);
    let failures = owner.block_on(async {
        store.init().await.expect("init");
        let loaded = store.load().await;
        store.start().await.expect("start");
        println!(
            "rocketmq-store 1.0.0 opened it: load() = {loaded}, commit log max {}",
            store.get_commit_log().get_max_offset()
        );
        let mut failures = 0usize;
        if !loaded {
            eprintln!("FAIL: the port's load() refused the store");
            failures += 1;
        }

        // Through the consume queues, every record decoded with its body CRC checked.
        let group = CheetahString::from_static_str("interop-group");
        let mut seen = vec![false; sent.len()];
        for topic in TOPICS {
            let t = CheetahString::from_static_str(topic);
            for q in 0..QUEUES as i32 {
                let mut off = store.get_min_offset_in_queue(&t, q);
                loop {
                    let r = store
                        .get_message(&group, &t, q, off, 32, None)
                        .await
                        .expect("get_message");
                    if r.status() != Some(GetMessageStatus::Found) || r.message_count() == 0 {
                        break;
                    }
                    for buf in r.message_mapped_list() {
                        let mut bytes = bytes::Bytes::copy_from_slice(buf.get_buffer());
                        let Some(m) = rocketmq_protocol::common::message::message_decoder::decode(
                            &mut bytes, true, false, false, false, true,
                        ) else {
                            eprintln!("FAIL: {topic}/{q} offset {off}: the port's decoder refused the record");
                            failures += 1;
                            continue;
                        };
                        let Some(&i) = by_offset.get(&(m.commit_log_offset() as u64)) else {
                            eprintln!(
                                "FAIL: {topic}/{q}: a record at {} mqstore never wrote",
                                m.commit_log_offset()
                            );
                            failures += 1;
                            continue;
                        };
                        let bad = compare(&sent[i], &m);
                        if !bad.is_empty() {
                            eprintln!("FAIL: message {i} via get_message: {}", bad.join(", "));
                            failures += 1;
                        }
                        seen[i] = true;
                    }
                    off = r.next_begin_offset();
                }
            }
        }
        let read = seen.iter().filter(|s| **s).count();
        println!(
            "get_message: {read}/{} messages read back through the consume queues",
            sent.len()
        );
        failures += sent.len() - read;

        // By commit-log offset.
        let mut looked = 0;
        for (i, s) in sent.iter().enumerate() {
            match store.look_message_by_offset(s.commit_log_offset as i64) {
                Some(m) if compare(s, &m).is_empty() => looked += 1,
                Some(m) => eprintln!(
                    "FAIL: message {i} via look_message_by_offset: {}",
                    compare(s, &m).join(", ")
                ),
                None => eprintln!("FAIL: message {i}: look_message_by_offset found nothing"),
            }
        }
        println!("look_message_by_offset: {looked}/{}", sent.len());
        failures += sent.len() - looked;

        // By key, through the index files mqstore wrote (and the port may extend as it
        // dispatches): each message's own key finds it.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut found;
        loop {
            found = 0;
            for s in &sent {
                let key = CheetahString::from_string(s.keys[0].clone());
                let t = CheetahString::from_static_str(s.topic);
                if let Some(q) = store.query_message(&t, &key, 64, 0, i64::MAX).await
                    && q.message_maped_list
                        .iter()
                        .any(|m| m.start_offset() as u64 == s.commit_log_offset)
                {
                    found += 1;
                }
            }
            if found == sent.len() || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        println!("query_message(key): {found}/{}", sent.len());
        failures += sent.len() - found;
        store.shutdown().await;
        failures
    });
    if failures == 0 {
        println!("reverse interop: OK, rocketmq-store 1.0.0 reads every message mqstore wrote");
    } else {
        println!("reverse interop: {failures} failures");
        std::process::exit(1);
    }
}
