//! What the end-to-end tests share: one client runtime for the process (the client installs
//! process-wide telemetry once), brokers on 127.0.0.1 port 0, producers and push consumers of
//! RocketMQ's official Rust client, and a listener that records every delivery.

#![recursion_limit = "512"]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use mqstore::StoreConfig;
use mqstore_broker::{Broker, BrokerConfig};
use rocketmq_client_rust::{
    ClientResult, ClientRuntime, ClientRuntimeConfig, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus,
    ConsumeOrderlyContext, ConsumeOrderlyStatus, DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer,
    MessageListenerConcurrently, MessageListenerOrderly,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};

/// The client's runtime, built once.
pub struct Clients {
    _owner: RuntimeOwner,
    runtime: Arc<ClientRuntime>,
    _telemetry: rocketmq_observability::TelemetryRuntimeGuard,
}

/// The tokio runtime the tests drive the client from, and the client's own runtime.
pub fn runtimes() -> &'static (tokio::runtime::Runtime, Clients) {
    static R: OnceLock<(tokio::runtime::Runtime, Clients)> = OnceLock::new();
    R.get_or_init(|| {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let clients = tokio.block_on(async {
            let mut cfg = RuntimeConfig {
                thread_name: "e2e-client".into(),
                ..Default::default()
            };
            // The push consumer hands listener calls to this lane; its default depth (16 on two
            // cores) makes it give messages back for redelivery under load.
            cfg.blocking_lane_policies.metadata_io.max_queue_depth = 100_000;
            let owner = RuntimeOwner::plan(cfg).unwrap().build().unwrap();
            // Quiet unless asked: the client logs each connection and rebalance at info.
            let mut telemetry = rocketmq_observability::TelemetryBootstrapConfig::default();
            telemetry.logging.filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
            telemetry.logging.console.ansi = false;
            let telemetry = rocketmq_observability::install_global(&telemetry).unwrap();
            let runtime = ClientRuntime::try_new(
                owner.root_context().component("client"),
                ClientRuntimeConfig::default(),
                telemetry.handle(),
            )
            .unwrap();
            Clients {
                _owner: owner,
                runtime,
                _telemetry: telemetry,
            }
        });
        (tokio, clients)
    })
}

/// Runs one scenario at a time: they share the machine's two cores and the client runtime.
pub fn serial() -> MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    M.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on the test runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    runtimes().0.block_on(f)
}

/// A broker over a store in `dir` with small segments, listening on `listen`.
pub fn broker_config(dir: &Path, listen: SocketAddr) -> BrokerConfig {
    let store = StoreConfig::new(dir).commit_log_segment_size(16 << 20);
    BrokerConfig::new(listen, store)
}

/// Starts a broker on any free port.
pub fn start_broker(dir: &Path) -> Broker {
    Broker::start(broker_config(dir, "127.0.0.1:0".parse().unwrap())).unwrap()
}

/// A started producer of `group` against the broker's name server.
pub async fn producer(broker: SocketAddr, group: &str) -> DefaultMQProducer {
    let mut p = DefaultMQProducer::builder(Arc::clone(&runtimes().1.runtime))
        .producer_group(group.to_string())
        .name_server_addr(broker.to_string())
        .send_msg_timeout(5000)
        .build();
    p.start().await.unwrap();
    p
}

/// One delivery: which consumer got which message where.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The consumer's label.
    pub consumer: String,
    /// The queue it came from.
    pub queue_id: i32,
    /// Its offset in that queue.
    pub queue_offset: i64,
    /// Its tag.
    pub tags: Option<String>,
    /// Its body, as text.
    pub body: String,
}

/// Every delivery of a test, in the order the listeners saw them.
#[derive(Clone, Default)]
pub struct Deliveries(Arc<Mutex<Vec<Delivery>>>);

impl Deliveries {
    fn record(&self, consumer: &str, msgs: &[&MessageExt]) {
        let mut all = self.0.lock().unwrap();
        for m in msgs {
            all.push(Delivery {
                consumer: consumer.to_string(),
                queue_id: m.queue_id(),
                queue_offset: m.queue_offset(),
                tags: m.get_tags().map(|t| t.to_string()),
                body: m
                    .body()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default(),
            });
        }
    }

    /// A copy of everything delivered so far.
    pub fn all(&self) -> Vec<Delivery> {
        self.0.lock().unwrap().clone()
    }

    /// How many times each body was delivered.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for d in self.all() {
            *counts.entry(d.body).or_insert(0) += 1;
        }
        counts
    }

    /// Waits until `done` holds for the deliveries so far; panics after `limit`.
    pub async fn wait(&self, what: &str, limit: Duration, done: impl Fn(&[Delivery]) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            let all = self.all();
            if done(&all) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {} deliveries",
                all.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

struct Concurrently(Deliveries, String);

impl MessageListenerConcurrently for Concurrently {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _context: &ConsumeConcurrentlyContext,
    ) -> ClientResult<ConsumeConcurrentlyStatus> {
        self.0.record(&self.1, msgs);
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

struct Orderly(Deliveries, String);

impl MessageListenerOrderly for Orderly {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        context: &mut ConsumeOrderlyContext,
    ) -> ClientResult<ConsumeOrderlyStatus> {
        context.set_auto_commit(true);
        self.0.record(&self.1, msgs);
        Ok(ConsumeOrderlyStatus::Success)
    }
}

/// How a consumer takes its messages.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Batches in parallel.
    Concurrently,
    /// One queue at a time, in queue order, holding the queue's lock on the broker.
    Orderly,
}

/// A started push consumer of `group`, labelled `label` (also its instance name, so two in one
/// process are two clients), subscribed to `topic` with `expression`.
pub async fn consumer(
    broker: SocketAddr,
    group: &str,
    label: &str,
    topic: &str,
    expression: &str,
    mode: Mode,
    into: &Deliveries,
) -> DefaultMQPushConsumer {
    let config = rocketmq_client_rust::ClientConfig::builder()
        .instance_name(label.to_string())
        .build()
        .unwrap();
    let mut c = DefaultMQPushConsumer::builder(Arc::clone(&runtimes().1.runtime))
        .client_config(config)
        .name_server_addr(broker.to_string())
        .consumer_group(group.to_string())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build();
    c.subscribe(topic, expression).await.unwrap();
    match mode {
        Mode::Concurrently => c.register_message_listener_concurrently(Concurrently(into.clone(), label.into())),
        Mode::Orderly => c.register_message_listener_orderly(Orderly(into.clone(), label.into())),
    }
    c.start().await.unwrap();
    c
}
