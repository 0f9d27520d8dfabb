//! Produces ten messages to a running mqstore-broker with RocketMQ's official Rust client, then
//! consumes them with a push consumer and prints each:
//! `cargo run --release --example quickstart -- 127.0.0.1:10911`.

#![recursion_limit = "512"]

use std::time::Duration;

use mqstore_broker_e2e::{Deliveries, Mode, block_on, consumer, producer};
use rocketmq_model::common::message::message_single::Message;

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:10911".into())
        .parse()
        .expect("usage: quickstart HOST:PORT (the broker's address)");
    block_on(async {
        let producer = producer(addr, "QuickstartProducers").await;
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        for i in 0..10 {
            let msg = Message::builder()
                .topic("Quickstart")
                .tags("Hello")
                .key(format!("quickstart-{run}-{i}"))
                .body(format!("hello {i} from run {run}").into_bytes())
                .build_unchecked();
            let sent = producer
                .send_with_timeout(msg, 5000)
                .await
                .expect("send")
                .expect("a result");
            println!(
                "sent {i}: {:?} queue {:?} offset {}",
                sent.send_status, sent.message_queue, sent.queue_offset
            );
        }
        let deliveries = Deliveries::default();
        let group = format!("QuickstartConsumers{run}");
        let mut c = consumer(
            addr,
            &group,
            "quickstart",
            "Quickstart",
            "Hello",
            Mode::Concurrently,
            &deliveries,
        )
        .await;
        let mine = format!("from run {run}");
        deliveries
            .wait("this run's ten messages", Duration::from_secs(60), |d| {
                d.iter().filter(|m| m.body.ends_with(&mine)).count() >= 10
            })
            .await;
        for d in deliveries.all() {
            println!(
                "received from queue {} offset {}: {}",
                d.queue_id, d.queue_offset, d.body
            );
        }
        c.shutdown().await;
    });
}
