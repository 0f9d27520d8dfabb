//! mqstore-broker with RocketMQ's official Rust client (rocketmq-client-rust 1.0.0): what a
//! RocketMQ user does, and what must hold when they do it.

#![recursion_limit = "512"]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mqstore::replication::{ReplicationConfig, Role};
use mqstore::{MessageStore, StoreConfig};
use mqstore_broker::Broker;
use mqstore_broker_e2e::{Deliveries, Mode, block_on, broker_config, consumer, producer, serial, start_broker};
use rocketmq_client_rust::SendStatus;
use rocketmq_model::common::message::message_single::Message;

const PATIENCE: Duration = Duration::from_secs(90);

fn msg(topic: &str, tag: &str, key: &str, body: &str) -> Message {
    Message::builder()
        .topic(topic)
        .tags(tag)
        .key(key)
        .body(body.as_bytes().to_vec())
        .build_unchecked()
}

/// Every body delivered exactly once, and each queue's messages in queue order.
fn exactly_once_in_queue_order(deliveries: &Deliveries, expected: &BTreeSet<String>) {
    let counts = deliveries.counts();
    let got: BTreeSet<String> = counts.keys().cloned().collect();
    assert_eq!(&got, expected, "every message delivered, nothing else");
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for d in deliveries.all() {
        if let Some(prev) = last.insert(d.queue_id, d.queue_offset) {
            assert!(
                d.queue_offset > prev,
                "queue {} went from {prev} to {}",
                d.queue_id,
                d.queue_offset
            );
        }
    }
}

#[test]
fn sync_async_and_batch_sends_are_consumed_exactly_once_in_queue_order() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path());
    let addr = broker.addr();
    block_on(async {
        let producer = producer(addr, "PG-all").await;
        let mut expected = BTreeSet::new();
        for i in 0..40 {
            let body = format!("sync-{i}");
            let r = producer
                .send_with_timeout(msg("E2E", ["TagA", "TagB"][i % 2], &format!("key-{i}"), &body), 5000)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(r.send_status, SendStatus::SendOk);
            expected.insert(body);
        }
        let acked = Arc::new(AtomicUsize::new(0));
        for i in 0..20 {
            let body = format!("async-{i}");
            let acked = Arc::clone(&acked);
            producer
                .send_with_callback(msg("E2E", "TagA", &format!("akey-{i}"), &body), move |r, e| {
                    if e.is_none() && r.is_some_and(|r| r.send_status == SendStatus::SendOk) {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .await
                .unwrap();
            expected.insert(body);
        }
        let batch: Vec<Message> = (0..10)
            .map(|i| {
                let body = format!("batch-{i}");
                expected.insert(body.clone());
                msg("E2E", "TagB", &format!("bkey-{i}"), &body)
            })
            .collect();
        let r = producer.send_batch(batch).await.unwrap();
        assert_eq!(r.send_status, SendStatus::SendOk);
        for _ in 0..200 {
            if acked.load(Ordering::SeqCst) == 20 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(acked.load(Ordering::SeqCst), 20, "every async send acknowledged");
        assert_eq!(
            (0..4).map(|q| broker.store().max_offset("E2E", q)).sum::<u64>(),
            70,
            "all 70 messages are in the store"
        );

        let deliveries = Deliveries::default();
        let mut c = consumer(addr, "G-all", "c1", "E2E", "*", Mode::Orderly, &deliveries).await;
        deliveries.wait("all 70 messages", PATIENCE, |d| d.len() >= 70).await;
        // Linger: a second delivery of anything would show now.
        tokio::time::sleep(Duration::from_secs(2)).await;
        exactly_once_in_queue_order(&deliveries, &expected);
        let tagged: BTreeMap<String, Option<String>> = deliveries.all().into_iter().map(|d| (d.body, d.tags)).collect();
        assert_eq!(tagged["sync-1"].as_deref(), Some("TagB"));
        assert_eq!(tagged["batch-3"].as_deref(), Some("TagB"));
        c.shutdown().await;
    });
    broker.stop().unwrap();
}

#[test]
fn a_sent_message_is_found_by_key_and_viewed_by_its_id() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path());
    let addr = broker.addr();
    block_on(async {
        let mut producer = producer(addr, "PG-query").await;
        for i in 0..5 {
            let r = producer
                .send_with_timeout(msg("Q", "T", &format!("order-{i}"), &format!("body-{i}")), 5000)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(r.send_status, SendStatus::SendOk);
        }
        let sent = producer
            .send_with_timeout(msg("Q", "T", "order-42", "the one"), 5000)
            .await
            .unwrap()
            .unwrap();
        let found = producer
            .query_message("Q", "order-42", 32, 0, u64::MAX / 2)
            .await
            .unwrap();
        let list = found.message_list();
        assert_eq!(list.len(), 1, "exactly the keyed message");
        assert_eq!(list[0].body().as_deref(), Some(&b"the one"[..]));
        let id = sent.offset_msg_id.clone().expect("an offset message id");
        let viewed = producer.view_message("Q", &id).await.unwrap();
        assert_eq!(viewed.body().as_deref(), Some(&b"the one"[..]));
        assert_eq!(viewed.get_tags().as_deref(), Some("T"));
    });
    broker.stop().unwrap();
}

#[test]
fn a_tag_subscription_receives_only_its_tags() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path());
    let addr = broker.addr();
    block_on(async {
        let producer = producer(addr, "PG-tags").await;
        for i in 0..30 {
            let tag = ["Red", "Green", "Blue"][i % 3];
            producer
                .send_with_timeout(msg("Tags", tag, &format!("k{i}"), &format!("{tag}-{i}")), 5000)
                .await
                .unwrap();
        }
        let deliveries = Deliveries::default();
        let mut c = consumer(
            addr,
            "G-tags",
            "c1",
            "Tags",
            "Red || Blue",
            Mode::Concurrently,
            &deliveries,
        )
        .await;
        deliveries
            .wait("the 20 red and blue messages", PATIENCE, |d| d.len() >= 20)
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let all = deliveries.all();
        assert_eq!(all.len(), 20, "nothing else, nothing twice");
        assert!(all.iter().all(|d| matches!(d.tags.as_deref(), Some("Red" | "Blue"))));
        c.shutdown().await;
    });
    broker.stop().unwrap();
}

#[test]
fn two_consumers_of_one_group_split_the_queues() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path());
    let addr = broker.addr();
    block_on(async {
        let producer = producer(addr, "PG-split").await;
        // The topic exists (and its route) before the consumers come.
        producer
            .send_with_timeout(msg("Split", "t", "k", "warm-up"), 5000)
            .await
            .unwrap();
        let deliveries = Deliveries::default();
        let mut one = consumer(addr, "G-split", "one", "Split", "*", Mode::Concurrently, &deliveries).await;
        let mut two = consumer(addr, "G-split", "two", "Split", "*", Mode::Concurrently, &deliveries).await;
        deliveries
            .wait("the warm-up message", PATIENCE, |d| !d.is_empty())
            .await;
        // Both members rebalance on the broker's notification; give them a moment to settle.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let mut expected = BTreeSet::from(["warm-up".to_string()]);
        for i in 0..80 {
            let body = format!("m-{i}");
            producer
                .send_with_timeout(msg("Split", "t", "k", &body), 5000)
                .await
                .unwrap();
            expected.insert(body);
        }
        deliveries
            .wait("all 80", PATIENCE, |d| {
                d.iter().map(|x| x.body.as_str()).collect::<BTreeSet<_>>().len() >= 81
            })
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let all = deliveries.all();
        let got: BTreeSet<String> = all.iter().map(|d| d.body.clone()).collect();
        assert_eq!(got, expected);
        let queues_of = |who: &str| -> BTreeSet<i32> {
            all.iter()
                .filter(|d| d.consumer == who && d.body != "warm-up")
                .map(|d| d.queue_id)
                .collect()
        };
        let (q1, q2) = (queues_of("one"), queues_of("two"));
        assert!(!q1.is_empty() && !q2.is_empty(), "both consume: {q1:?} {q2:?}");
        assert!(q1.is_disjoint(&q2), "each queue has one consumer: {q1:?} {q2:?}");
        assert_eq!(q1.len() + q2.len(), 4);
        one.shutdown().await;
        two.shutdown().await;
    });
    broker.stop().unwrap();
}

#[test]
fn after_a_broker_restart_the_group_resumes_from_its_committed_offsets() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path());
    let addr: SocketAddr = broker.addr();
    let first: BTreeSet<String> = (0..30).map(|i| format!("before-{i}")).collect();
    block_on(async {
        let producer = producer(addr, "PG-resume").await;
        for body in &first {
            producer
                .send_with_timeout(msg("Resume", "t", "k", body), 5000)
                .await
                .unwrap();
        }
        let deliveries = Deliveries::default();
        let mut c = consumer(addr, "G-resume", "c1", "Resume", "*", Mode::Concurrently, &deliveries).await;
        deliveries.wait("the first 30", PATIENCE, |d| d.len() >= 30).await;
        // Shutting down commits the consumer's offsets to the broker.
        c.shutdown().await;
    });
    broker.stop().unwrap();

    // Same store, same address: the clients find it where they left it.
    let broker = Broker::start(broker_config(dir.path(), addr)).unwrap();
    let second: BTreeSet<String> = (0..20).map(|i| format!("after-{i}")).collect();
    block_on(async {
        let producer = producer(addr, "PG-resume-2").await;
        for body in &second {
            let r = producer
                .send_with_timeout(msg("Resume", "t", "k", body), 5000)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(r.send_status, SendStatus::SendOk);
        }
        let deliveries = Deliveries::default();
        let mut c = consumer(addr, "G-resume", "c2", "Resume", "*", Mode::Concurrently, &deliveries).await;
        deliveries
            .wait("the 20 new messages", PATIENCE, |d| d.len() >= 20)
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let got: BTreeSet<String> = deliveries.all().into_iter().map(|d| d.body).collect();
        assert_eq!(got, second, "only what came after the committed offsets, nothing lost");
        c.shutdown().await;
    });
    broker.stop().unwrap();
}

#[test]
fn every_send_a_sync_master_acknowledged_is_on_its_slave() {
    let _one = serial();
    let (mdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut cfg = broker_config(mdir.path(), "127.0.0.1:0".parse().unwrap());
    cfg.store = cfg
        .store
        .role(Role::sync_master())
        .replication(ReplicationConfig::default().listen("127.0.0.1:0".parse().unwrap()));
    let broker = Broker::start(cfg).unwrap();
    let ha = broker.store().replication_addr().expect("the master serves slaves");
    let slave = MessageStore::open(
        StoreConfig::new(sdir.path())
            .commit_log_segment_size(16 << 20)
            .role(Role::Slave { master: ha }),
    )
    .unwrap();
    let addr = broker.addr();
    let deadline = std::time::Instant::now() + PATIENCE;
    while broker.store().stats().replicas.is_empty() {
        assert!(std::time::Instant::now() < deadline, "the slave never connected");
        std::thread::sleep(Duration::from_millis(20));
    }
    let acked = block_on(async {
        let producer = producer(addr, "PG-ha").await;
        let mut acked = Vec::new();
        for i in 0..60 {
            let body = format!("replicated-{i}");
            let r = producer
                .send_with_timeout(msg("HA", "t", "k", &body), 5000)
                .await
                .unwrap()
                .unwrap();
            if r.send_status == SendStatus::SendOk {
                acked.push((r.offset_msg_id.clone().unwrap(), body));
            }
        }
        acked
    });
    assert_eq!(
        acked.len(),
        60,
        "with its slave connected, the master acknowledges every send"
    );
    // Read the slave at once, before anything else can catch it up: acknowledged means there.
    for (id, body) in &acked {
        let (_, offset) = mqstore::decode_offset_msg_id(id).unwrap();
        let on_slave = slave
            .read_at(offset)
            .unwrap()
            .unwrap_or_else(|| panic!("{body} missing on the slave"));
        assert_eq!(on_slave.body(), body.as_bytes());
    }
    broker.stop().unwrap();
    slave.close().unwrap();
}
