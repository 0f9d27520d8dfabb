//! Simulated power loss, deterministic from a seed: random sequences of put / flush / crash /
//! reopen on the in-memory backend, where a crash keeps, drops or tears every unsynced page.
//! Checked against a model that knows which records were acknowledged as durable: those must
//! survive every crash; records never flushed may vanish, but the survivors of each queue are
//! always a prefix of what was put (never garbage, never a hole), and offsets stay dense.
//! A failing case prints its op sequence (seeds included) and replays exactly.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use mqstore::segment::sim::{SimBackend, SimDisk};
use mqstore::{FlushPolicy, GetStatus, Message, MessageStore, PutStatus, StoreConfig};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Put { queue: u32, len: usize },
    Batch { queue: u32, n: usize, len: usize },
    Flush,
    Crash { seed: u64 },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..3u32, 0..1500usize).prop_map(|(queue, len)| Op::Put { queue, len }),
        2 => (0..3u32, 1..5usize, 0..600usize).prop_map(|(queue, n, len)| Op::Batch { queue, n, len }),
        2 => Just(Op::Flush),
        2 => any::<u64>().prop_map(|seed| Op::Crash { seed }),
        1 => Just(Op::Reopen),
    ]
}

/// Per queue: bodies in order, and how many of them are known durable.
#[derive(Default)]
struct Model {
    queues: BTreeMap<u32, (Vec<Vec<u8>>, usize)>,
}

fn config(dir: &std::path::Path, sync: bool) -> StoreConfig {
    // Background flushes and checkpoints far apart: only the ops decide what is durable, so a
    // seed replays exactly.
    let policy = if sync {
        FlushPolicy::sync()
    } else {
        FlushPolicy::asynchronous().with_interval(Duration::from_secs(3600), 4, Duration::from_secs(3600))
    };
    StoreConfig::new(dir)
        .flush_policy(policy)
        .commit_log_segment_size(8 * 1024)
        .consume_queue_units_per_segment(16)
        .checkpoint_interval(Duration::from_secs(3600))
}

fn open(dir: &std::path::Path, sync: bool, backend: SimBackend) -> MessageStore<SimBackend> {
    MessageStore::open_with_backend(config(dir, sync), backend).expect("open after crash")
}

fn read_all(store: &MessageStore<SimBackend>, queue: u32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut offset = store.min_offset("sim", queue);
    loop {
        let g = store.get("sim", queue, offset, 16).expect("get after recovery");
        match g.status {
            GetStatus::Found => {
                for m in &g.messages {
                    assert_eq!(m.queue_offset(), out.len() as u64 + store.min_offset("sim", queue));
                    out.push(m.body().to_vec());
                }
                offset = g.next_offset;
            }
            GetStatus::OffsetOverflowOne | GetStatus::NoMessageInQueue => return out,
            other => panic!("queue {queue} offset {offset}: {other:?}"),
        }
    }
}

fn check_after_crash(store: &MessageStore<SimBackend>, model: &mut Model) -> Result<(), TestCaseError> {
    for (queue, (bodies, durable)) in model.queues.iter_mut() {
        let got = read_all(store, *queue);
        prop_assert!(
            got.len() >= *durable,
            "queue {}: {} survived, {} were durable",
            queue,
            got.len(),
            durable
        );
        prop_assert!(
            got.len() <= bodies.len(),
            "queue {}: more messages than were put",
            queue
        );
        for (i, b) in got.iter().enumerate() {
            prop_assert_eq!(b, &bodies[i], "queue {} offset {} differs", queue, i);
        }
        bodies.truncate(got.len());
        // Recovery made what survived durable.
        *durable = got.len();
        prop_assert_eq!(store.max_offset("sim", *queue), got.len() as u64);
    }
    Ok(())
}

fn run(sync: bool, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let disk = SimDisk::new();
    let mut store = open(dir.path(), sync, disk.backend());
    let mut model = Model::default();
    let mut counter = 0u64;
    for op in ops {
        match op {
            Op::Put { queue, len } => {
                counter += 1;
                let body = common::body(counter, len);
                let r = store.put(Message::new("sim", queue, body.clone())).unwrap();
                prop_assert_eq!(r.status, PutStatus::Ok);
                let (bodies, durable) = model.queues.entry(queue).or_default();
                prop_assert_eq!(r.queue_offset, bodies.len() as u64);
                bodies.push(body);
                if sync {
                    *durable = bodies.len();
                }
            }
            Op::Batch { queue, n, len } => {
                let batch: Vec<Vec<u8>> = (0..n)
                    .map(|k| {
                        counter += 1;
                        common::body(counter, len + k)
                    })
                    .collect();
                let rs = store
                    .put_batch(batch.iter().map(|b| Message::new("sim", queue, b.clone())).collect())
                    .unwrap();
                prop_assert!(rs.iter().all(|r| r.status == PutStatus::Ok));
                let (bodies, durable) = model.queues.entry(queue).or_default();
                bodies.extend(batch);
                if sync {
                    *durable = bodies.len();
                }
            }
            Op::Flush => {
                store.flush().unwrap();
                for (bodies, durable) in model.queues.values_mut() {
                    *durable = bodies.len();
                }
            }
            Op::Crash { seed } => {
                store.halt();
                drop(store);
                disk.power_loss(seed);
                store = open(dir.path(), sync, disk.backend());
                prop_assert!(!store.recovery_report().clean_shutdown);
                check_after_crash(&store, &mut model)?;
            }
            Op::Reopen => {
                store.close().unwrap();
                drop(store);
                store = open(dir.path(), sync, disk.backend());
                prop_assert!(store.recovery_report().clean_shutdown);
                for (queue, (bodies, _)) in &model.queues {
                    prop_assert_eq!(&read_all(&store, *queue), bodies);
                }
            }
        }
    }
    // A final crash with every page of unsynced data dropped or torn.
    store.halt();
    drop(store);
    disk.power_loss(counter);
    let store = open(dir.path(), sync, disk.backend());
    check_after_crash(&store, &mut model)?;
    // And the store goes on: new puts continue each queue densely.
    for (queue, (bodies, _)) in &model.queues {
        let r = store.put(Message::new("sim", *queue, b"after".to_vec())).unwrap();
        prop_assert_eq!(r.queue_offset, bodies.len() as u64);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
    #[test]
    fn sync_acknowledged_records_survive_power_loss(ops in prop::collection::vec(op(), 1..60)) {
        run(true, ops)?;
    }

    #[test]
    fn async_flushed_records_survive_and_the_rest_is_a_clean_prefix(ops in prop::collection::vec(op(), 1..60)) {
        run(false, ops)?;
    }
}
